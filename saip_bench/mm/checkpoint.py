"""Read the tensors of an OpenMMLab checkpoint without executing anything the file asks for.

An mmengine ``.pth`` (``mmengine.runner.checkpoint.save_checkpoint``, Runner ``save_checkpoint``) is a torch
zip archive whose pickle holds ``{"meta": ..., "state_dict": ..., "optimizer": ..., "message_hub": ...}``.
``meta`` and ``message_hub`` pickle numpy objects and ``mmengine.logging.history_buffer.HistoryBuffer``,
which ``torch.load(weights_only=True)`` (the default under torch >= 2.6) refuses; allow-listing them would
need ``builtins.getattr`` and so would re-open arbitrary code execution.

:func:`read_mm_state_dict` therefore

1. tries ``torch.load(weights_only=True)`` (plain tensor dicts, and mm checkpoints whose meta is plain);
2. otherwise unpickles with a restricted unpickler, passed as ``torch.load``'s ``pickle_module``. Its
   ``find_class`` resolves only an allow-list of harmless callables (torch's tensor rebuild functions,
   storages, ``torch.Size``/``device``/dtypes, ``collections.OrderedDict`` and a few builtins); every other
   global (``HistoryBuffer``, numpy, ``builtins.getattr``/``exec``, ``os.system``, ...) becomes an inert
   placeholder class that records its name and ignores its arguments and state. A pickle can only call
   what ``find_class`` returns, so nothing else runs. Before the first such load, a probe file checks that
   torch really routes ``find_class`` through the restricted unpickler (torch subclasses it);
3. keeps only the tensors, from ``state_dict`` (or the top level of a bare state dict), optionally those
   under a key prefix (stripped), detached from any hooks or state the pickle attached.

:func:`is_mm_checkpoint` tells such a file from the other checkpoint layouts by reading its pickle's opcodes
(``pickletools.genops``), which executes nothing; ``saip_bench.checkpoints`` uses it so that any
``--backbone`` path, ``timm:NAME=PATH`` and ``saip convert`` accept an OpenMMLab checkpoint.
"""

from __future__ import annotations

import functools
import io
import logging
import pickle
import pickletools
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from saip_bench.errors import CheckpointError

log = logging.getLogger(__name__)

_TORCH_REBUILDS = (
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
)


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """``(module, name) -> object`` a checkpoint pickle may resolve; everything else is a placeholder."""
    import codecs
    import collections

    import torch._tensor
    import torch._utils

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
        # Pickle protocol 2 (torch.save's default) writes bytes as _codecs.encode(text, "latin1").
        ("_codecs", "encode"): codecs.encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
    }
    for name in _TORCH_REBUILDS:
        allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for name, value in vars(torch).items():
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
    return allowed


class _Inert:
    """Base of the placeholders: takes any arguments and state, does nothing, calls nothing.

    Instances are callable too and return another placeholder, so a call chain in the pickle stays inert.
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        # A pickle may call what a placeholder "returned" (getattr(os, "system")(...)): answer inertly, so
        # a checkpoint with exotic metadata still yields its tensors.
        return type(self)()

    # Pickle's APPENDS/SETITEMS opcodes fill list- and dict-like objects through these.
    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not loaded: {self.global_name}>"


def _restricted_pickle_module(skipped: set[str]) -> types.ModuleType:
    """A ``pickle``-like module whose unpickler resolves only :func:`_allowed_globals`.

    Args:
        skipped: receives the dotted name of every global that became a placeholder.
    """
    allowed = _allowed_globals()
    placeholders: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found = allowed.get((module, name))
            if found is not None:
                return found
            dotted = f"{module}.{name}"
            skipped.add(dotted)
            if dotted not in placeholders:
                placeholders[dotted] = type(f"Inert[{dotted}]", (_Inert,), {"global_name": dotted})
            return placeholders[dotted]

    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

    module = types.ModuleType("saip_bench_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return module


class _RoutingProbe:
    """Pickled by :func:`_check_routing`; must come back as a placeholder, never as itself."""


def _restricted_load(source: Any, skipped: set[str]) -> Any:
    return torch.load(
        source,
        map_location="cpu",
        weights_only=False,  # the restricted unpickler is the safety net, not torch's allow-list
        pickle_module=_restricted_pickle_module(skipped),
    )


@functools.cache
def _check_routing() -> None:
    """Refuse to unpickle if this torch no longer sends ``find_class`` through our unpickler."""
    buffer = io.BytesIO()
    torch.save({"probe": _RoutingProbe(), "t": torch.zeros(1)}, buffer)
    buffer.seek(0)
    skipped: set[str] = set()
    loaded = _restricted_load(buffer, skipped)
    if isinstance(loaded["probe"], _RoutingProbe) or f"{__name__}._RoutingProbe" not in skipped:
        raise RuntimeError(
            "torch.load no longer routes find_class through a custom pickle_module's Unpickler; "
            "saip_bench.mm.checkpoint refuses to unpickle non-tensor checkpoints on this torch version"
        )


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refusals are UnpicklingError; corrupt files raise many types
        log.debug("%s: weights_only load failed (%s); using the restricted unpickler", path, err)
    _check_routing()
    skipped: set[str] = set()
    try:
        obj = _restricted_load(path, skipped)
    except Exception as err:  # noqa: BLE001  (any failure means "cannot read this file")
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint ({first[:200]})") from None
    if skipped:
        log.info("%s: ignored non-tensor objects of %s", path, ", ".join(sorted(skipped)))
    return obj


#: Packages whose classes only an OpenMMLab checkpoint pickles (mmengine's meta and message hub).
MM_PACKAGES = ("mmengine", "mmcv", "mmdet", "mmpose", "mmpretrain", "mmseg")


def _pickle_bytes(path: Path) -> bytes | None:
    """The object pickle of a torch zip checkpoint (``<archive>/data.pkl``), or None for other files."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return archive.read(names[0]) if names else None
    except (OSError, zipfile.BadZipFile):
        return None


def is_mm_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is an OpenMMLab (mmengine) checkpoint, told from its pickle without running it.

    mmengine's ``save_checkpoint`` writes ``{"meta", "state_dict", "message_hub", "optimizer", ...}`` with
    model keys ``backbone.`` / ``neck.`` / ``head.``. The file is one when its pickle names a class of an
    OpenMMLab package (``mmengine.logging.history_buffer.HistoryBuffer`` in the message hub), or, for a
    checkpoint saved with plain metadata, when it holds both a ``meta`` and a ``state_dict`` entry and a
    ``backbone.`` key. Legacy (non-zip) torch files are never mm checkpoints here.
    """
    data = _pickle_bytes(Path(path))
    if data is None:
        return False
    strings: set[str] = set()
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if not isinstance(arg, str):
                continue
            if opcode.name in ("GLOBAL", "INST"):  # the argument is "module name"
                if arg.split(".", 1)[0].split(" ", 1)[0] in MM_PACKAGES:
                    return True
                continue
            # Protocol >= 4 (STACK_GLOBAL) pushes the dotted module name as a plain string.
            if "." in arg and arg.split(".", 1)[0] in MM_PACKAGES:
                return True
            strings.add(arg)
    except (ValueError, EOFError):  # a truncated or corrupt pickle: let the reader report it
        return False
    return {"meta", "state_dict"} <= strings and any(s.startswith("backbone.") for s in strings)


def _tensors(obj: Any) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        return {}
    return {str(k): v.detach() for k, v in obj.items() if isinstance(v, torch.Tensor)}


def read_mm_state_dict(path: str | Path, *, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of an OpenMMLab (mmengine) checkpoint, read without running code from the file.

    Args:
        path: a ``.pth`` written by mmengine (``state_dict`` + ``meta``/``message_hub``/``optimizer``) or a
            bare ``{name: tensor}`` dict saved with ``torch.save``.
        prefix: keep only keys starting with it (e.g. ``"backbone."``), with the prefix removed.

    Returns:
        ``{key: tensor}`` on the CPU; non-tensor entries are dropped.

    Raises:
        CheckpointError: the file is missing or unreadable, holds no tensors, or no key has ``prefix``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(4)
    # torch.save writes a zip archive (legacy files: a raw pickle, first byte 0x80).
    if not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):
        raise CheckpointError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle)")
    obj = _load(path)
    inner = obj.get("state_dict") if isinstance(obj, Mapping) else None
    state = _tensors(inner) if isinstance(inner, Mapping) else _tensors(obj)
    if not state:
        what = "its state_dict" if isinstance(inner, Mapping) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{path}: no tensors in {what}")
    if prefix:
        matched = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not matched:
            heads = sorted({k.split(".", 1)[0] + "." for k in state})
            raise CheckpointError(
                f"{path}: no key starts with {prefix!r} (keys start with {', '.join(heads[:8])})"
            )
        state = matched
    return state


__all__ = ["MM_PACKAGES", "is_mm_checkpoint", "read_mm_state_dict"]
