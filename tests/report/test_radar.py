"""Plots: the radar PNG and the scale plot are real images, written atomically."""

from __future__ import annotations

import pytest
from PIL import Image

from saip_bench.errors import SaipError
from saip_bench.report import build_report_table, build_scale_table, plot_radar, plot_scales
from saip_bench.report.radar import radar_axes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes  # a blank canvas is a few kB; polygons, labels and legend are more
    with Image.open(path) as image:
        assert image.width > 400 and image.height > 400


def test_radar_png_is_written(sample_records, tmp_path):
    out = plot_radar(build_report_table(sample_records), tmp_path / "sub" / "radar.png")
    assert out == tmp_path / "sub" / "radar.png"
    _assert_png(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["radar.png"]  # no temporary left behind


def test_radar_has_the_twelve_axes_in_paper_order(sample_records):
    axes = radar_axes(build_report_table(sample_records))
    assert len(axes) == 12
    assert axes[0] == ("Market-1501", "market1501")
    assert dict(axes)["MSMT17"] is None  # no data: drawn at the centre


def test_radar_refuses_two_protocols_for_one_dataset(tmp_path, make, numbered):
    records = numbered(
        [make("a", "market1501", 1.0, protocol="frozen"), make("a", "market1501", 2.0, protocol="finetune")]
    )
    with pytest.raises(SaipError, match="--protocol"):
        plot_radar(build_report_table(records), tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


def test_bad_suffix_is_refused(sample_records, tmp_path):
    with pytest.raises(SaipError, match=r"\.png"):
        plot_radar(build_report_table(sample_records), tmp_path / "r.jpg")


def test_scale_plot_is_written(sample_records, tmp_path):
    out = plot_scales(build_scale_table(sample_records), tmp_path / "scales.png")
    _assert_png(out, min_bytes=5_000)
