"""What the report's plots share: paper sizes and fonts, one style per row, row labels, atomic saving.

Figures are sized for a paper: :data:`COLUMN_WIDTH_IN` (one column of a two-column paper) by default, with
fonts of at least 7 pt at that size, so a figure pasted at 100 % stays legible. Every row (backbone) keeps
one colour, marker, line style and hatch in every plot, drawn from the Okabe-Ito palette (distinct for
colour-blind readers), and the line style and marker tell rows apart in greyscale print too. matplotlib is
used through its object API on an Agg canvas (no GUI, no pyplot state), imported lazily, when a plot is drawn.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.errors import SaipError
from saip_bench.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure

    from saip_bench.report.table import Row

#: One column of a two-column paper (IEEE/CVF: 3.3-3.5 in), the default figure width.
COLUMN_WIDTH_IN = 3.4
#: The full text width of such a paper.
PAGE_WIDTH_IN = 7.0
#: Formats a plot file may have, by suffix.
PLOT_FORMATS = ("png", "pdf", "svg")
#: Raster resolution: print quality at the figure's own size.
DEFAULT_DPI = 300

# Okabe & Ito (2008), without the yellow that vanishes on white; black last.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", "-.", ":")
_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "++++", "oooo")

#: rcParams of every plot: 7-8 pt text at column width, thin lines, no top/right frame.
STYLE: dict[str, object] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "hatch.linewidth": 0.5,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by paper submission checks
    "svg.fonttype": "none",
}


@dataclass(frozen=True)
class RowStyle:
    """How one row is drawn: colour, marker and line style for lines, colour and hatch for bars."""

    color: str
    marker: str
    linestyle: str
    hatch: str

    def line(self) -> dict[str, str]:
        """Keyword arguments of ``Axes.plot`` / ``Axes.errorbar``."""
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


def row_style(index: int) -> RowStyle:
    """The style of the ``index``-th row: no two of the first 56 rows share colour, marker and line style."""
    return RowStyle(
        color=_COLOURS[index % len(_COLOURS)],
        marker=_MARKERS[index % len(_MARKERS)],
        linestyle=_LINESTYLES[index % len(_LINESTYLES)],
        hatch=_HATCHES[index % len(_HATCHES)],
    )


def row_label(row: Row) -> str:
    """The legend entry of ``row``: its backbone name, plus the method when the name does not say it.

    ``("saip_tiny", "saip")`` is ``"saip_tiny"``; ``("ckpt_042", "mae")`` is ``"ckpt_042 (mae)"``.
    """
    name = row.labels[0]
    method = row.labels[1] if len(row.labels) > 1 else ""
    if not method or method.lower() in name.lower():
        return name
    return f"{name} ({method})"


def text_width(text: str, size: float = 7.0) -> float:
    """Roughly how wide ``text`` is, in points, in DejaVu Sans (matplotlib's default font) at ``size`` pt."""
    # Capitals and digits about 0.7 em, the rest about 0.56 em.
    return sum(0.7 if ch.isupper() or ch.isdigit() else 0.56 for ch in text) * size


def legend_columns(labels: Sequence[str], width: float, *, handlelength: float = 2.0) -> int:
    """How many legend entries fit side by side in ``width`` inches (at least one)."""
    size = float(STYLE["legend.fontsize"])  # type: ignore[arg-type]
    entry = max(text_width(label, size) for label in labels) + (handlelength + 0.8 + 1.2) * size
    return max(1, min(len(labels), int(width * 72 / entry)))


def add_legend(
    fig: Figure, handles: Sequence[Artist], labels: Sequence[str], width: float, *, handlelength: float = 2.0
) -> None:
    """The figure's one legend, below its panels, in as many columns as fit in ``width`` inches."""
    fig.legend(
        list(handles),
        list(labels),
        loc="outside lower center",
        ncols=legend_columns(labels, width, handlelength=handlelength),
        frameon=False,
        handlelength=handlelength,
        handletextpad=0.8,
        columnspacing=1.2,
    )


def plot_format(path: str | Path) -> str:
    """The format of plot file ``path`` from its suffix; checks it can be written before anything is drawn.

    Raises:
        SaipError: for a suffix other than .png, .pdf or .svg, or a folder that does not exist.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in PLOT_FORMATS:
        raise SaipError(f"{path}: plot files must end in .png, .pdf or .svg")
    if not path.parent.is_dir():
        raise SaipError(f"{path}: folder {path.parent} does not exist")
    return fmt


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply :data:`STYLE` while figures are built and saved (rcParams are read when artists are made)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path`` (format by suffix) atomically: a failed save leaves no file.

    Raises:
        SaipError: see :func:`plot_format`.
    """
    path = Path(path)
    fmt = plot_format(path)
    with paper_style(), _quiet("fontTools"), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.02)
    return path


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    # fontTools logs one INFO line per font table it subsets into a PDF (about 50 per file).
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
