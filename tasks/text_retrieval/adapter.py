"""The text-retrieval task's adapter for ``saip evaluate``: protocols ``finetune`` and ``linear``.

Every test caption queries the gallery of all test images (IRRA's protocol); metrics are text-to-image
``R1`` (primary), ``R5``, ``R10``, ``mAP`` and ``mINP`` in percent (:mod:`.metrics`).

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    text_encoder: null        # or a local Hugging Face model folder (never downloaded)
    eval:   {batch_size: 128, num_workers: 2, train_split: train, test_split: test}
    text:   {max_len: 64, min_freq: 1, width: 256, depth: 2, heads: 4}   # from-scratch encoder
    embed:  {dim: 256}
    loss:   {itc: 1.0, sdm: 1.0, id: 1.0, temperature: 0.05}
    loader: {batch_size: 64}                      # finetune training batch (captions)
    augment: {pad: 10, flip: 0.5}                 # finetune training augmentation
    linear: {steps: 300, lr: 0.001, weight_decay: 0.01, batch_size: 128}
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from saip_bench.engine import make_train_loader
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.images import eval_transform, train_transform
from saip_bench.evaluate.protocols import AugmentSettings, LoaderSettings, recipe_settings
from saip_bench.io import atomic_path, atomic_write_json
from saip_bench.tasks.text_retrieval.data.common import PedesData
from saip_bench.tasks.text_retrieval.images import CaptionPairs, GalleryImages, extract_features
from saip_bench.tasks.text_retrieval.linear import train_on_features
from saip_bench.tasks.text_retrieval.losses import retrieval_loss
from saip_bench.tasks.text_retrieval.metrics import rank_metrics
from saip_bench.tasks.text_retrieval.model import RetrievalModel, embed_batched
from saip_bench.tasks.text_retrieval.text_encoder import HFTextEncoder, TransformerTextEncoder
from saip_bench.tasks.text_retrieval.tokenizer import WordTokenizer

log = logging.getLogger(__name__)

PRIMARY_METRIC = "R1"


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 128
    num_workers: int = 2
    train_split: str = "train"
    test_split: str = "test"


@dataclass(frozen=True)
class TextSettings:
    max_len: int = 64
    min_freq: int = 1
    width: int = 256
    depth: int = 2
    heads: int = 4


@dataclass(frozen=True)
class EmbedSettings:
    dim: int = 256


@dataclass(frozen=True)
class LossSettings:
    itc: float = 1.0
    sdm: float = 1.0
    id: float = 1.0
    temperature: float = 0.05


@dataclass(frozen=True)
class LinearSettings:
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 128


def load_dataset(name: str, root: Path) -> PedesData:
    """The PEDES dataset ``name`` (``cuhk_pedes`` or ``icfg_pedes``) read from ``root``."""
    if name == "cuhk_pedes":
        from saip_bench.tasks.text_retrieval.data.cuhk_pedes import load_cuhk_pedes

        return load_cuhk_pedes(root)
    if name == "icfg_pedes":
        from saip_bench.tasks.text_retrieval.data.icfg_pedes import load_icfg_pedes

        return load_icfg_pedes(root)
    raise ConfigError(f"the text_retrieval task has no dataset {name!r}; valid: cuhk_pedes, icfg_pedes")


def _is_main() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized() and dist.get_rank())


class _Split:
    """One split flattened: image paths, and per caption its image row, tokens, identity and label."""

    def __init__(self, data: PedesData, split: str, tokenize: Any) -> None:
        items = data.split(split)
        self.paths = [item.path for item in items]
        self.image_pids = torch.as_tensor([item.pid for item in items])
        captions, self.image_index = [], []
        for row, item in enumerate(items):
            captions += item.captions
            self.image_index += [row] * len(item.captions)
        self.captions = captions
        self.tokens = tokenize(captions) if tokenize is not None else torch.zeros(0, dtype=torch.long)
        self.caption_pids = self.image_pids[torch.as_tensor(self.image_index, dtype=torch.long)]
        relabel = {int(p): i for i, p in enumerate(sorted(set(self.image_pids.tolist())))}
        self.labels = torch.as_tensor([relabel[int(p)] for p in self.caption_pids])
        self.num_classes = len(relabel)

    def tokenize(self, tokenize: Any) -> None:
        """Token ids of the captions, once the tokenizer exists (it is built from the training split)."""
        self.tokens = tokenize(self.captions)


class TextRetrievalAdapter:
    """Text-based person retrieval on CUHK-PEDES and ICFG-PEDES."""

    task = "text_retrieval"
    protocols = ("finetune", "linear")

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Evaluate ``backbone`` on ``request.dataset`` with ``request.protocol`` (see module docstring)."""
        check_request(self, request)
        recipe = request.recipe
        settings = recipe_settings(recipe, "eval", EvalSettings)
        data = load_dataset(request.dataset, request.data_dir)
        train = _Split(data, settings.train_split, None)
        if len(train.captions) < 2:
            raise DataFormatError(
                request.data_dir, f"split {settings.train_split!r} has fewer than 2 captions"
            )
        with torch.random.fork_rng(devices=[]):  # a seeded model without resetting the caller's global RNG
            torch.manual_seed(request.seed)
            text_encoder, tokenize = self._text_side(recipe, train.captions, request.run_dir)
            train.tokenize(tokenize)
            test = _Split(data, settings.test_split, tokenize)
            model = RetrievalModel(
                text_encoder, image_dim=int(backbone.embed_dim),
                dim=recipe_settings(recipe, "embed", EmbedSettings).dim, num_classes=train.num_classes,
            )  # fmt: skip
        loss = recipe_settings(recipe, "loss", LossSettings)
        if request.protocol == "linear":
            metrics, extra = self._linear(request, backbone, model, train, test, settings, loss)
        else:
            metrics, extra = self._finetune(request, backbone, model, train, test, settings, loss)
        extra.update(train_images=len(train.paths), train_captions=len(train.captions),
                     test_images=len(test.paths), test_captions=len(test.captions))  # fmt: skip
        log.info("%s %s: R1 %.2f mAP %.2f", request.dataset, request.protocol, metrics["R1"], metrics["mAP"])
        return EvalResult(metrics=metrics, primary_metric=PRIMARY_METRIC, extra=extra)

    @staticmethod
    def _text_side(recipe: dict[str, Any], captions: list[str], run_dir: Path) -> tuple[Any, Any]:
        """Text encoder and tokenizer: a local HF folder if the recipe names one, else from scratch."""
        text = recipe_settings(recipe, "text", TextSettings)
        hf_path = recipe.get("text_encoder")
        if hf_path:
            encoder = HFTextEncoder(Path(str(hf_path)), max_len=text.max_len)
            return encoder, encoder.tokenize
        tokenizer = WordTokenizer.build(captions, min_freq=text.min_freq, max_len=text.max_len)
        if _is_main():
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            tokenizer.save(Path(run_dir) / "tokenizer.json")
        encoder = TransformerTextEncoder(
            len(tokenizer), max_len=text.max_len, width=text.width, depth=text.depth, heads=text.heads
        )
        return encoder, tokenizer

    @staticmethod
    def _gallery_loader(paths: list[Path], img_size: tuple[int, int], settings: EvalSettings, device: str):
        return DataLoader(
            GalleryImages(paths, eval_transform(img_size)), batch_size=settings.batch_size,
            num_workers=settings.num_workers, pin_memory=torch.device(device).type == "cuda",
        )  # fmt: skip

    def _linear(
        self, request: EvalRequest, backbone: Any, model: RetrievalModel, train: _Split, test: _Split,
        settings: EvalSettings, loss: LossSettings,
    ) -> tuple[dict[str, float], dict[str, Any]]:  # fmt: skip
        probe = recipe_settings(request.recipe, "linear", LinearSettings)
        device = torch.device(request.device)
        backbone.requires_grad_(False)
        feats = {}
        for name, split in (("train", train), ("test", test)):
            feats[name] = extract_features(
                backbone, self._gallery_loader(split.paths, request.img_size, settings, request.device),
                device=device, progress=request.progress, description=f"features {name}",
            )  # fmt: skip
        # Standardised features (train statistics): frozen backbones differ wildly in feature scale, and the
        # projection then trains with one learning rate for all of them.
        mean, std = feats["train"].mean(0), feats["train"].std(0).clamp_min(1e-6)
        feats = {name: (value - mean) / std for name, value in feats.items()}
        model.to(device)
        losses = train_on_features(
            model, feats["train"], torch.as_tensor(train.image_index), train.tokens, train.labels,
            steps=probe.steps, lr=probe.lr, weight_decay=probe.weight_decay, batch_size=probe.batch_size,
            temperature=loss.temperature, weights=_weights(loss), seed=request.seed, device=device,
            progress=request.progress,
        )  # fmt: skip
        metrics = _evaluate(model, feats["test"], test, device=device, batch_size=settings.batch_size)
        if _is_main():
            run_dir = Path(request.run_dir)
            with atomic_path(run_dir / "text_retrieval_head.pt") as tmp:
                torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
            atomic_write_json(run_dir / "metrics.json", {"metrics": metrics, "linear": asdict(probe)})
        return metrics, {"steps": probe.steps, "final_loss": losses[-1] if losses else None}

    def _finetune(
        self, request: EvalRequest, backbone: Any, model: RetrievalModel, train: _Split, test: _Split,
        settings: EvalSettings, loss: LossSettings,
    ) -> tuple[dict[str, float], dict[str, Any]]:  # fmt: skip
        from saip_bench.engine import EngineConfig, fit

        if "train" not in request.recipe:
            raise ConfigError("the finetune protocol needs a 'train' section in its recipe")
        config = EngineConfig.from_dict(request.recipe["train"])
        loader_settings = recipe_settings(request.recipe, "loader", LoaderSettings)
        augment = recipe_settings(request.recipe, "augment", AugmentSettings)
        device = torch.device(request.device)
        model.backbone = backbone
        model.to(device)
        train_set = CaptionPairs(
            train.paths, train.image_index, train.tokens, train.labels.tolist(),
            train_transform(request.img_size, pad=augment.pad, flip=augment.flip),
        )  # fmt: skip
        train_loader = make_train_loader(
            train_set, batch_size=loader_settings.batch_size, seed=request.seed, min_batch=2,
            num_workers=settings.num_workers, device=device,
        )  # fmt: skip
        gallery = self._gallery_loader(test.paths, request.img_size, settings, request.device)
        weights = _weights(loss)

        def step_fn(train_model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
            images, tokens, labels = batch
            image, text, image_logits, text_logits = train_model(images, tokens)
            return retrieval_loss(
                image, text, labels, image_logits=image_logits, text_logits=text_logits,
                temperature=loss.temperature, weights=weights,
            )  # fmt: skip

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            inner = getattr(eval_model, "module", eval_model)
            image_emb = torch.cat(
                [inner.embed_image(images.to(device)).float().cpu() for images, _ in gallery]
            )
            return _evaluate(inner, image_emb, test, device=device, batch_size=settings.batch_size,
                             projected=True)  # fmt: skip

        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", resume=request.resume,
            progress=request.progress,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        return metrics, {"selected_epoch": result.selected_epoch, "best_epoch": result.best_epoch}


def _weights(loss: LossSettings) -> dict[str, float]:
    return {"itc": loss.itc, "sdm": loss.sdm, "id": loss.id}


@torch.no_grad()
def _evaluate(
    model: RetrievalModel, images: torch.Tensor, test: _Split, *, device: torch.device, batch_size: int,
    projected: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Text-to-image metrics: test captions against the test images (features, or embeddings if projected)."""
    model.eval()
    if projected:
        image_emb = torch.nn.functional.normalize(images.float(), dim=1)
    else:
        image_emb = embed_batched(model.embed_image, images, device=device, batch_size=batch_size)
    text_emb = embed_batched(model.embed_text, test.tokens, device=device, batch_size=batch_size)
    similarity = (text_emb @ image_emb.t()).numpy()
    return rank_metrics(similarity, test.caption_pids.numpy(), test.image_pids.numpy())
