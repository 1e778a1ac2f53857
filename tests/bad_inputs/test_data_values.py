"""Bad input table, part "corrupt data never gets through" (issue 14): values, not only structure.

Each row corrupts one file of a synthetic dataset (NaN or infinite coordinates, negative box sizes, a
visibility flag outside {0, 1, 2}, a label png of the wrong size, mode or ids, a label outside 0/1, a camera
outside the dataset's, an empty caption) and runs both ``saip data check`` and ``saip evaluate`` on it. Both
must refuse it in one line that names the file; evaluate must refuse it before the first training step, so
nothing is written to the workspace.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saip_bench.dataset_spec import SynthOptions
from saip_bench.datasets import DATASETS

Corrupt = Callable[[Path], str]  # data root -> the bad file's name, as the error must name it


@dataclass(frozen=True)
class Case:
    id: str
    dataset: str
    task: str
    protocol: str
    corrupt: Corrupt


def _edit_json(path: Path, edit: Callable[[object], None]) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")  # json.dumps writes NaN / Infinity as Python does
    return path.name


def _coco_annotation(root: Path, json_rel: str, key: str, index: int, value: float, field: int = 0) -> str:
    """Set value ``field`` of ``key`` in the first trainable person of the val json."""

    def edit(data):
        ann = next(a for a in data["annotations"] if not a["iscrowd"] and any(a["keypoints"][2::3]))
        ann[key][index * 3 + field if key.endswith("kpts") or key == "keypoints" else index] = value

    return _edit_json(root / json_rel, edit)


def _odgt_box(root: Path, key: str, index: int, value: float) -> str:
    path = root / "CrowdHuman/annotation_train.odgt"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    box = next(b for b in record["gtboxes"] if b["tag"] == "person")
    box[key][index] = value
    lines[0] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.name


def _label_png(root: Path, folder: str, edit: Callable[[Image.Image], Image.Image]) -> str:
    path = sorted((root / folder).glob("*.png"))[0]
    with Image.open(path) as img:
        img.load()
        edit(img).save(path)
    return path.name


def _resized(img: Image.Image) -> Image.Image:
    return img.resize((img.width + 3, img.height))


def _id_out_of_range(img: Image.Image) -> Image.Image:
    ids = np.array(img)
    ids[0, 0] = 37
    return Image.fromarray(ids, mode="L")


def _fashion_bbox(root: Path, index: int, value: float) -> str:
    def edit(data):
        data["annotations"][0]["bbox"][index] = value

    return _edit_json(root / "Fashionpedia/instances_attributes_train2020.json", edit)


def _pa100k_label(root: Path) -> str:
    from scipy.io import loadmat, savemat

    path = root / "PA-100K/annotation.mat"
    mat = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    mat["train_label"] = mat["train_label"].astype(np.float64)
    mat["train_label"][0, 3] = 0.5
    savemat(str(path), mat)
    return path.name


def _peta_label(root: Path) -> str:
    path = root / "PETA/dataset_zs_run0.pkl"
    with path.open("rb") as fh:
        data = pickle.load(fh)
    labels = np.asarray(data["label"]).astype(np.float64)
    labels[1, 0] = np.nan
    data["label"] = labels
    with path.open("wb") as fh:
        pickle.dump(data, fh)
    return path.name


def _market_camera(root: Path) -> str:
    folder = root / "Market-1501-v15.09.15/bounding_box_train"
    path = sorted(folder.glob("*.jpg"))[0]
    pid, _, rest = path.name.partition("_c")
    bad = folder / f"{pid}_c9{rest[1:]}"
    path.rename(bad)
    return bad.name


def _msmt_camera(root: Path) -> str:
    path = root / "MSMT17_V1/list_train.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    name, label = lines[0].rsplit(" ", 1)
    parts = Path(name).name.split("_")
    parts[2] = "99"
    lines[0] = f"{Path(name).parent / '_'.join(parts)} {label}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.name


def _pedes_caption(root: Path, rel: str) -> str:
    def edit(data):
        data[0]["captions"][0] = "   "

    return _edit_json(root / rel, edit)


COCO_VAL = "coco/annotations/person_keypoints_val2017.json"
COCO_TRAIN = "coco/annotations/person_keypoints_train2017.json"
WB_VAL = "coco_wholebody/annotations/coco_wholebody_val_v1.0.json"
NAN, INF = float("nan"), float("inf")

CASES = [
    Case("lip-label-size-mismatch", "lip", "parsing", "linear",
         lambda r: _label_png(r, "LIP/val_segmentations", _resized)),
    Case("lip-label-id-out-of-range", "lip", "parsing", "linear",
         lambda r: _label_png(r, "LIP/train_segmentations", _id_out_of_range)),
    Case("cihp-label-rgb", "cihp", "parsing", "linear",
         lambda r: _label_png(r, "instance-level_human_parsing/Validation/Category_ids",
                              lambda img: img.convert("RGB"))),
    Case("cihp-label-size-mismatch", "cihp", "parsing", "linear",
         lambda r: _label_png(r, "instance-level_human_parsing/Training/Category_ids", _resized)),
    Case("crowdhuman-fbox-negative-width", "crowdhuman", "detection", "finetune",
         lambda r: _odgt_box(r, "fbox", 2, -5)),
    Case("crowdhuman-vbox-nan", "crowdhuman", "detection", "finetune",
         lambda r: _odgt_box(r, "vbox", 0, NAN)),
    Case("crowdhuman-hbox-inf", "crowdhuman", "detection", "finetune",
         lambda r: _odgt_box(r, "hbox", 1, INF)),
    Case("coco-keypoints-nan", "coco_keypoints", "pose", "linear",
         lambda r: _coco_annotation(r, COCO_VAL, "keypoints", 5, NAN)),
    Case("coco-bbox-nan", "coco_keypoints", "pose", "linear",
         lambda r: _coco_annotation(r, COCO_VAL, "bbox", 1, NAN)),
    Case("coco-bbox-negative-width", "coco_keypoints", "pose", "linear",
         lambda r: _coco_annotation(r, COCO_TRAIN, "bbox", 2, -10.0)),
    Case("coco-visibility-3", "coco_keypoints", "pose", "linear",
         lambda r: _coco_annotation(r, COCO_TRAIN, "keypoints", 5, 3, field=2)),
    Case("wholebody-face-keypoints-nan", "coco_wholebody", "pose", "linear",
         lambda r: _coco_annotation(r, WB_VAL, "face_kpts", 0, NAN)),
    Case("wholebody-hand-keypoints-inf", "coco_wholebody", "pose", "linear",
         lambda r: _coco_annotation(r, WB_VAL, "lefthand_kpts", 3, INF, field=1)),
    Case("fashionpedia-bbox-negative-height", "fashionpedia", "fashion", "finetune",
         lambda r: _fashion_bbox(r, 3, -4.0)),
    Case("fashionpedia-bbox-inf", "fashionpedia", "fashion", "finetune", lambda r: _fashion_bbox(r, 0, INF)),
    Case("pa100k-label-not-binary", "pa100k", "attribute", "linear", _pa100k_label),
    Case("peta-label-nan", "peta_zs", "attribute", "linear", _peta_label),
    Case("market1501-camera-9", "market1501", "reid", "frozen", _market_camera),
    Case("msmt17-camera-99", "msmt17", "reid", "frozen", _msmt_camera),
    Case("cuhk-pedes-caption-empty", "cuhk_pedes", "text_retrieval", "linear",
         lambda r: _pedes_caption(r, "CUHK-PEDES/reid_raw.json")),
    Case("icfg-pedes-caption-empty", "icfg_pedes", "text_retrieval", "linear",
         lambda r: _pedes_caption(r, "ICFG-PEDES/ICFG-PEDES.json")),
]  # fmt: skip


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 12 synthetic datasets under one data root, written once for the module."""
    root = tmp_path_factory.mktemp("clean") / "data"
    for _, spec in DATASETS.items():
        out = root / spec.folder
        out.mkdir(parents=True)
        spec.write_synth(out, SynthOptions(ids=4, images=24, seed=0))
    return root


@pytest.mark.slow  # two CLI processes a case, about 6 s
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_value_is_refused(case: Case, clean_data: Path, tmp_path: Path, saip_run, refused, snap) -> None:
    data = tmp_path / "data"
    shutil.copytree(clean_data, data)
    name = case.corrupt(data)

    # saip data check prints its table of the 12 datasets, then the problem once, unwrapped, on one line.
    check = saip_run(["data", "check", "--root", "data"], cwd=tmp_path)
    assert check.returncode == 1, check.output
    assert "Traceback" not in check.output, check.output
    problems = [line for line in check.lines if line.startswith(f"{DATASETS.get(case.dataset).title}:")]
    assert len(problems) == 1 and name in problems[0], check.output
    assert "1 malformed" in check.output, check.output

    ws = tmp_path / "ws"
    before_data, before_ws = snap(data), snap(ws)
    run = saip_run(
        ["evaluate", "--task", case.task, "--dataset", case.dataset, "--backbone", "random:test_vit",
         "--data-root", "data", "--workspace", "ws", "--budget", "smoke", "--protocol", case.protocol,
         "--device", "cpu"],
        cwd=tmp_path,
    )  # fmt: skip
    refused(run, names=[name], before=before_data, after_roots=[data])
    assert not any(" step " in line for line in run.lines), f"refused only after training:\n{run.output}"
    assert snap(ws) == before_ws, "the refused evaluation left its fresh workspace behind"


def test_coco_box_outside_the_image_is_clipped_with_a_counted_warning(
    clean_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not every odd value is an error: mmpose clips a person box to its image, and so does the loader."""
    root = Path(shutil.copytree(clean_data / "coco", tmp_path / "coco"))

    def edit(data):
        ann = data["annotations"][0]
        ann["bbox"][2] = 2.0 * next(img["width"] for img in data["images"] if img["id"] == ann["image_id"])

    _edit_json(root / "annotations/person_keypoints_val2017.json", edit)
    with caplog.at_level("WARNING"):
        split = DATASETS.get("coco_keypoints").load(root, "val")
    assert "person_keypoints_val2017.json: 1 person boxes reach outside their image; clipped" in caplog.text
    width = {img["id"]: img["width"] for img in split.coco["images"]}
    assert all(inst.bbox[0] + inst.bbox[2] <= width[inst.image_id] - 1 for inst in split.instances)


def test_parsing_label_ids_are_checked_when_read(clean_data: Path, tmp_path: Path) -> None:
    """A label png changed after loading is still one error naming it, never a shape error in the metric."""
    from saip_bench.errors import DataFormatError
    from saip_bench.tasks.parsing.data import read_label

    root = Path(shutil.copytree(clean_data / "LIP", tmp_path / "LIP"))
    data = DATASETS.get("lip").load(root)
    png = data.val.labels[0]
    with Image.open(png) as img:
        img.load()
        _id_out_of_range(img).save(png)
    with pytest.raises(DataFormatError, match=rf"{png.name}: label id 37 is outside 0\.\.19 and 255"):
        read_label(png)
