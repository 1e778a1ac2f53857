"""``random:NAME@SEED`` and the run's seed of a bare ``random:NAME``: one network per seed, one report row."""

from __future__ import annotations

import pytest
import torch

from saip_bench.backbones import load_backbone
from saip_bench.backbones.spec import follows_run_seed, parse_random_spec
from saip_bench.errors import ConfigError
from saip_bench.io import digest_obj, random_init_digest
from saip_bench.report.table import build_report_table, row_key
from saip_bench.results import EvalRecord

SPEC = "random:test_vit"  # timm's tiny test ViT: built in milliseconds
SIZE = (32, 16)


def _weights(spec: str, **kwargs: object) -> dict[str, torch.Tensor]:
    return load_backbone(spec, img_size=SIZE, **kwargs).model.state_dict()  # type: ignore[arg-type]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_init_seed_is_its_own_network_and_reloads_identically() -> None:
    seed0, seed3 = load_backbone(SPEC, img_size=SIZE), load_backbone(f"{SPEC}@3", img_size=SIZE)
    assert not _same(seed0.model.state_dict(), seed3.model.state_dict())
    assert seed3.digest != seed0.digest and seed3.meta["seed"] == 3 and seed0.meta["seed"] == 0
    assert seed3.name == f"{SPEC}@3" and seed0.name == SPEC  # a fixed init is named so in reports
    assert _same(seed3.model.state_dict(), _weights(f"{SPEC}@3"))  # the same network on every load
    assert load_backbone(f"{SPEC}@3", img_size=SIZE).digest == seed3.digest


def test_the_run_seed_initialises_a_bare_random_spec_only() -> None:
    by_run = load_backbone(SPEC, img_size=SIZE, seed=3)
    assert _same(by_run.model.state_dict(), _weights(f"{SPEC}@3"))  # seed=3 is @3's network...
    assert by_run.digest == load_backbone(f"{SPEC}@3", img_size=SIZE).digest  # ...so its digest
    assert by_run.name == SPEC  # ...but keeps the row's name
    assert _same(_weights(f"{SPEC}@1", seed=3), _weights(f"{SPEC}@1"))  # an explicit @SEED wins
    # Seed 0 is the network and the digest random:NAME always had: records made before stay valid.
    assert _same(_weights(SPEC, seed=0), _weights(SPEC))
    assert load_backbone(SPEC, img_size=SIZE, seed=0).digest == digest_obj({"spec": SPEC, "seed": 0})
    # The report's torch-free digest of a seed's random row is the loader's, with or without @SEED.
    at3 = load_backbone(f"{SPEC}@3", img_size=SIZE).digest
    assert random_init_digest(SPEC, 3) == at3 == random_init_digest(f"{SPEC}@3", 3)
    assert random_init_digest("test_vit", 0) == load_backbone(SPEC, img_size=SIZE).digest
    assert follows_run_seed(SPEC) and not follows_run_seed(f"{SPEC}@0") and not follows_run_seed("timm:x")
    assert parse_random_spec(f" {SPEC}@12 ") == ("test_vit", 12) and parse_random_spec("a/b.pt") is None


@pytest.mark.parametrize("seed", ["x", "", "-1", "1.5", "²"])
def test_a_bad_init_seed_is_one_line_naming_the_spec(seed: str) -> None:
    with pytest.raises(ConfigError, match=rf"backbone 'random:test_vit@{seed}': the init seed") as err:
        load_backbone(f"{SPEC}@{seed}", img_size=SIZE)
    assert "\n" not in str(err.value)


def _record(name: str, digest: str, seed: int, value: float) -> EvalRecord:
    return EvalRecord(
        backbone_digest=digest, backbone_name=name, pretrain_method="random", task="reid",
        dataset="market1501", protocol="frozen", budget="smoke", metrics={"mAP": value},
        primary_metric="mAP", primary_value=value, config_digest=f"cfg{seed}", seed=seed,
        package_version="0", git_revision=None, duration_s=1.0, started_at="t", ended_at="t",
    )  # fmt: skip


def test_the_seeds_of_a_bare_random_spec_are_one_report_row() -> None:
    digests = {s: load_backbone(SPEC, img_size=SIZE, seed=s).digest for s in (0, 1)}
    fixed = load_backbone(f"{SPEC}@3", img_size=SIZE).digest
    records = [
        _record(SPEC, digests[0], 0, 2.0),
        _record(SPEC, digests[1], 1, 4.0),
        _record(f"{SPEC}@3", fixed, 0, 1.0),  # one init evaluated at two seeds: a row of its own
        _record(f"{SPEC}@3", fixed, 1, 3.0),
    ]
    for i, rec in enumerate(records, start=1):
        rec.id = i
    assert row_key(records[1]) == digests[0]  # keyed by the seed-0 init's digest, as before seeds varied it
    table = build_report_table(records)
    rows = {row.labels[0]: row for row in table.rows}
    assert sorted(rows) == [SPEC, f"{SPEC}@3"]
    cell = rows[SPEC].cells["market1501"]
    assert cell.n == 2 and cell.seeds == (0, 1) and cell.mean == pytest.approx(3.0)
    assert {r.backbone_digest for r in cell.records} == set(digests.values())  # two inits, one row
    assert rows[f"{SPEC}@3"].cells["market1501"].n == 2
