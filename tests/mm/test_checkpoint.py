"""OpenMMLab checkpoints: ``read_mm_state_dict`` loads mmengine files, malicious pickles run nothing,
errors are one line; ``is_mm_checkpoint`` tells them apart, so ``--backbone``, ``timm:NAME=PATH`` and
``saip convert`` accept them."""

from __future__ import annotations

import builtins
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from saip_bench.errors import CheckpointError
from saip_bench.mm import checkpoint as mm_checkpoint
from saip_bench.mm.checkpoint import read_mm_state_dict


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(backbone=nn.Linear(3, 4), neck=nn.BatchNorm1d(4), head=nn.Linear(4, 2)))


def _save_mm_checkpoint(model: nn.Module, path: Path) -> None:
    """What an mmengine Runner writes: state dict, meta with numpy objects, message hub, optimizer."""
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    history = HistoryBuffer()
    history.update(1.5)
    history.update(2.0)
    hub = MessageHub.get_instance("saip_test_checkpoint")
    hub.update_scalar("train/loss", 0.25)
    meta = {
        "epoch": 3,
        "iter": 120,
        "seed": np.int64(7),
        "dataset_meta": {"sigmas": np.linspace(0.1, 0.9, 17), "dtype": np.dtype("float32")},
        "loss_history": history,
    }
    checkpoint = {
        "meta": meta,
        "state_dict": weights_to_cpu(get_state_dict(model)),
        "optimizer": optimizer.state_dict(),
        "message_hub": hub.state_dict(),
    }
    save_checkpoint(checkpoint, str(path))


def test_mmengine_checkpoint_loads_its_state_dict(tmp_path: Path) -> None:
    model = _small_model()
    path = tmp_path / "epoch_3.pth"
    _save_mm_checkpoint(model, path)
    with pytest.raises(pickle.UnpicklingError):  # what torch's own safe loading makes of it
        torch.load(path, map_location="cpu", weights_only=True)

    state = read_mm_state_dict(path)
    expected = model.state_dict()
    assert list(state) == list(expected)  # order kept, optimizer/meta tensors not mixed in
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
        assert state[key].dtype == value.dtype
    assert state["neck.num_batches_tracked"].item() == 1


def test_prefix_keeps_and_strips(tmp_path: Path) -> None:
    model = _small_model()
    path = tmp_path / "ckpt.pth"
    _save_mm_checkpoint(model, path)
    state = read_mm_state_dict(path, prefix="neck.")
    assert set(state) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    torch.testing.assert_close(state["running_var"], model.neck.running_var)


class _RunsCode:
    """A pickle payload: unpickling calls ``func(*args)``."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args

    def __call__(self, *args: object) -> None:  # lets pickle accept a payload as another one's callable
        raise AssertionError("never called: pickle calls what __reduce__ names")


def _marker_payloads(marker: Path) -> dict[str, _RunsCode]:
    return {
        "system": _RunsCode(os.system, f"touch {marker}"),
        "exec": _RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "eval": _RunsCode(builtins.eval, f"open({str(marker)!r}, 'w')"),
        # getattr(__import__("os"), "system")("touch marker"): the usual way around a module allow-list
        "chain": _RunsCode(_RunsCode(getattr, _RunsCode(__import__, "os"), "system"), f"touch {marker}"),
    }


@pytest.mark.parametrize("kind", ["system", "exec", "eval", "chain"])
def test_payloads_are_live_under_plain_pickle(tmp_path: Path, kind: str) -> None:
    """The payloads really run code under plain pickle (so the tests below mean something)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_marker_payloads(marker)[kind], protocol=2))
    assert marker.exists()


def test_malicious_checkpoint_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    weights = {"backbone.w": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": weights, "meta": _marker_payloads(marker)}, path)
    assert not marker.exists()

    state = read_mm_state_dict(path)
    assert not marker.exists()
    assert state.keys() == weights.keys()
    assert torch.equal(state["backbone.w"], weights["backbone.w"])


def test_malicious_payload_inside_state_dict_is_dropped(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "hook": _RunsCode(os.system, f"touch {marker}")}, path)
    state = read_mm_state_dict(path)
    assert not marker.exists()
    assert list(state) == ["w"]


def test_malicious_raw_pickle_fails_cleanly(tmp_path: Path) -> None:
    """A legacy (non-zip) torch file is a raw pickle: its very first object must not run either."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_RunsCode(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(CheckpointError, match="unreadable checkpoint") as err:
        read_mm_state_dict(path)
    assert not marker.exists()
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_bare_tensor_dict_uses_the_weights_only_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the restricted unpickler must not be needed for a plain tensor dict")

    monkeypatch.setattr(mm_checkpoint, "_restricted_load", refuse)
    weights = {"a.weight": torch.randn(3, 2), "a.bias": torch.zeros(3, dtype=torch.float64)}
    path = tmp_path / "bare.pth"
    torch.save(weights, path)
    state = read_mm_state_dict(path)
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[k], v) and state[k].dtype == v.dtype for k, v in weights.items())
    assert read_mm_state_dict(path, prefix="a.").keys() == {"weight", "bias"}


def test_loaded_tensors_carry_no_pickled_state(tmp_path: Path) -> None:
    """Parameters come back as plain tensors, without requires_grad or hooks from the file."""
    param = nn.Parameter(torch.ones(2))
    path = tmp_path / "p.pth"
    torch.save({"state_dict": {"p": param}, "meta": np.arange(3)}, path)
    state = read_mm_state_dict(path)
    assert type(state["p"]) is torch.Tensor and not state["p"].requires_grad


def test_restricted_unpickler_allows_only_the_list() -> None:
    skipped: set[str] = set()
    module = mm_checkpoint._restricted_pickle_module(skipped)
    unpickler = module.Unpickler(__import__("io").BytesIO(b""))
    assert unpickler.find_class("collections", "OrderedDict") is OrderedDict
    assert unpickler.find_class("torch._utils", "_rebuild_tensor_v2") is torch._utils._rebuild_tensor_v2
    assert unpickler.find_class("torch", "float16") is torch.float16
    for module_name, name in [
        ("posix", "system"),
        ("builtins", "getattr"),
        ("builtins", "eval"),
        ("torch.storage", "_load_from_bytes"),
        ("numpy", "load"),
        ("torch", "load"),
    ]:
        placeholder = unpickler.find_class(module_name, name)
        assert issubclass(placeholder, mm_checkpoint._Inert)
        assert placeholder("rm -rf /", key=1).global_name == f"{module_name}.{name}"
    assert "posix.system" in skipped and "torch.load" in skipped


def test_torch_routes_find_class_through_the_restricted_unpickler(monkeypatch: pytest.MonkeyPatch) -> None:
    mm_checkpoint._check_routing.cache_clear()
    mm_checkpoint._check_routing()  # raises if torch.load bypassed our Unpickler.find_class
    # The probe notices an unpickler that resolves globals for real (what a bypass would amount to).
    mm_checkpoint._check_routing.cache_clear()
    monkeypatch.setattr(mm_checkpoint, "_restricted_pickle_module", lambda skipped: pickle)
    with pytest.raises(RuntimeError, match="no longer routes find_class"):
        mm_checkpoint._check_routing()
    mm_checkpoint._check_routing.cache_clear()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such checkpoint file"),
        (b"not a checkpoint at all", "not a torch checkpoint"),
        ("truncated", "unreadable checkpoint"),
        ({"epoch": 3, "meta": {"a": 1}}, "no tensors in a dict"),
        ({"state_dict": {"x": 1}, "meta": np.zeros(2)}, "no tensors in its state_dict"),
        ({"backbone.w": torch.ones(1)}, "no key starts with 'head.' (keys start with backbone.)"),
    ],
    ids=["missing", "text", "truncated", "no-tensors", "empty-state-dict", "prefix"],
)
def test_errors_are_one_line_naming_the_file(tmp_path: Path, content: object, problem: str) -> None:
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        torch.save({"w": torch.ones(100)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        read_mm_state_dict(path, prefix="head." if problem.startswith("no key") else None)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert problem in text


def _mm_checkpoint_of_saip_backbone(path: Path, size: tuple[int, int], *, out: str = "last") -> nn.Module:
    """What an mmengine Runner writes for an mm model built on ``SaipBackbone``: returns the trained model."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    from saip_bench.backbones import load_backbone
    from saip_bench.mm.backbone import SaipMMBackbone

    class Detector(nn.Module):  # an mm model: backbone / (neck) / head
        def __init__(self) -> None:
            super().__init__()
            backbone = load_backbone("random:saip_vit_tiny_patch16", img_size=size)
            self.backbone = SaipMMBackbone.wrap(backbone, out=out, out_channels=16)
            self.head = nn.Conv2d(192, 2, 1)

    detector = Detector()
    with torch.no_grad():  # "training" moved the weights away from the seed-0 initialisation
        for p in detector.parameters():
            p.add_(0.01 * torch.randn_like(p))
    meta = {"epoch": 12, "history": HistoryBuffer([0.5], [1]), "img_shape": np.array(size)}
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(detector.state_dict())}, str(path))
    return detector.eval()


def test_mm_checkpoint_of_saip_backbone_is_a_backbone_spec(tmp_path: Path) -> None:
    """``--backbone epoch_12.pth`` of an mm-trained SaipBackbone: detected, read safely, loaded strictly."""
    from saip_bench.backbones import create_model, load_backbone

    size = (64, 32)
    path = tmp_path / "epoch_12.pth"
    detector = _mm_checkpoint_of_saip_backbone(path, size, out="pyramid")
    assert mm_checkpoint.is_mm_checkpoint(path)
    bb = load_backbone(str(path), img_size=size)
    assert bb.meta["format"] == "openmmlab" and bb.arch == "saip_vit_tiny_patch16"
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        trained = detector.backbone.backbone.model.forward_features(x)
        fresh = create_model("saip_vit_tiny_patch16", size, seed=1).eval()
        assert not torch.allclose(fresh.forward_features(x), trained)
        torch.testing.assert_close(bb.model.forward_features(x), trained)
    # The same file through timm:NAME=PATH, at another input size (pos_embed resampled in 2-D).
    other = load_backbone(f"timm:saip_vit_tiny_patch16={path}", img_size=(128, 64))
    assert other.meta["format"] == "openmmlab" and other.model.pos_embed.shape == (1, 1 + 8 * 4, 192)


def test_mm_checkpoint_converts_to_our_format(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from saip_bench.backbones import load_backbone
    from saip_bench.cli.app import app

    size = (64, 32)
    src, dst = tmp_path / "epoch_12.pth", tmp_path / "converted.safetensors"
    detector = _mm_checkpoint_of_saip_backbone(src, size)
    result = CliRunner().invoke(app, ["convert", str(src), str(dst), "--img-size", "64x32"])
    assert result.exit_code == 0, result.output
    assert "detected openmmlab checkpoint" in result.output and "dropped 2 non-backbone keys" in result.output
    bb = load_backbone(str(dst), img_size=size)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(
            bb.model.forward_features(x), detector.backbone.backbone.model.forward_features(x)
        )


def test_mm_checkpoint_of_another_backbone_fails_strictly(tmp_path: Path) -> None:
    """An mm backbone whose keys are not timm's: one line naming the file and the keys, nothing loaded."""
    from saip_bench.backbones import load_backbone

    path = tmp_path / "resnet.pth"
    _save_mm_checkpoint(_small_model(), path)  # backbone.weight / backbone.bias: not a ViT
    with pytest.raises(CheckpointError) as err:
        load_backbone(str(path))
    text = str(err.value)
    assert text.startswith(f"{path}: does not fit the saip_vit_tiny_patch16 backbone") and "\n" not in text
    assert "unexpected key(s): weight, bias" in text and "missing key(s)" in text
    head_only = tmp_path / "head_only.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": {"head.w": torch.ones(1)}, "x": "backbone.w"}, head_only)
    with pytest.raises(CheckpointError, match="OpenMMLab checkpoint without 'backbone.' weights"):
        load_backbone(str(head_only))


def test_is_mm_checkpoint_reads_the_format_not_the_name(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    runner = tmp_path / "runner.pth"
    _save_mm_checkpoint(_small_model(), runner)  # pickles mmengine's HistoryBuffer and numpy objects
    plain_meta = tmp_path / "plain.pth"  # saved with plain metadata: told by its layout
    torch.save({"meta": {"epoch": 1}, "state_dict": {"backbone.w": torch.ones(1)}}, plain_meta)
    timm_sd = tmp_path / "mmdet_named_but_timm.pth"
    torch.save({"state_dict": {"blocks.0.w": torch.ones(1)}, "epoch": 3}, timm_sd)
    saipv1 = tmp_path / "checkpoint.pth"
    torch.save({"teacher": {"backbone.w": torch.ones(1)}, "student": {}, "epoch": 1}, saipv1)
    safetensors = tmp_path / "w.safetensors"
    save_file({"backbone.w": torch.ones(1)}, str(safetensors))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(runner.read_bytes()[:300])
    assert mm_checkpoint.is_mm_checkpoint(runner) and mm_checkpoint.is_mm_checkpoint(plain_meta)
    for other in (timm_sd, saipv1, safetensors, truncated, tmp_path / "missing.pth"):
        assert not mm_checkpoint.is_mm_checkpoint(other), other.name
