"""The text-retrieval task for ``saip evaluate``: protocols ``finetune`` and ``linear``, on the task template.

Every test caption queries the gallery of all test images (IRRA's protocol); metrics are text-to-image
``R1`` (primary), ``R5``, ``R10``, ``mAP`` and ``mINP`` in percent (:mod:`.metrics`). Every key the task
reads is in ``configs/evaluate/defaults/text_retrieval.yaml``. ``finetune`` trains the backbone, the text
encoder and both projections through the engine; ``linear`` is the shared feature probe
(:mod:`saip_bench.evaluate.linear`): image features of the frozen backbone cached once, the text side and
the projections trained on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf
from torch import nn

from saip_bench.datasets import DATASETS
from saip_bench.engine import is_main
from saip_bench.errors import DataFormatError
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.images import eval_transform, train_transform
from saip_bench.evaluate.linear import extract_features, save_head, train_head
from saip_bench.evaluate.task import Task
from saip_bench.tasks.text_retrieval.data.common import PedesData
from saip_bench.tasks.text_retrieval.images import CaptionPairs, GalleryImages
from saip_bench.tasks.text_retrieval.losses import retrieval_loss
from saip_bench.tasks.text_retrieval.metrics import rank_metrics
from saip_bench.tasks.text_retrieval.model import RetrievalModel, embed_batched
from saip_bench.tasks.text_retrieval.text_encoder import HFTextEncoder, TransformerTextEncoder
from saip_bench.tasks.text_retrieval.tokenizer import WordTokenizer

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone


class CaptionSplit:
    """One split flattened: image paths, and per caption its image row, tokens, identity and label."""

    def __init__(self, data: PedesData, split: str, tokenize: Callable[[list[str]], torch.Tensor]) -> None:
        items = data.split(split)
        self.paths = [item.path for item in items]
        self.image_pids = torch.as_tensor([item.pid for item in items])
        self.captions: list[str] = []
        self.image_index: list[int] = []
        for row, item in enumerate(items):
            self.captions += item.captions
            self.image_index += [row] * len(item.captions)
        self.tokens = tokenize(self.captions)
        self.caption_pids = self.image_pids[torch.as_tensor(self.image_index, dtype=torch.long)]
        relabel = {int(p): i for i, p in enumerate(sorted(set(self.image_pids.tolist())))}
        self.labels = torch.as_tensor([relabel[int(p)] for p in self.caption_pids])
        self.num_classes = len(relabel)


@dataclass
class RetrievalData:
    """Both splits, tokenized, and the text side's tokenizer (with the Hugging Face encoder that owns it)."""

    train: CaptionSplit
    test: CaptionSplit
    tokenizer: WordTokenizer | None
    hf_encoder: HFTextEncoder | None


class TextRetrievalAdapter(Task):
    """Text-based person retrieval on CUHK-PEDES and ICFG-PEDES."""

    name = "text_retrieval"
    protocols = ("finetune", "linear")
    engine_protocols = ("finetune",)
    min_batch = 2  # in-batch contrastive losses need pairs

    def build_data(self, request: EvalRequest) -> RetrievalData:
        """The dataset through the registry, and its captions tokenized.

        The tokenizer is a word vocabulary of the training captions (saved to the run folder), or the
        tokenizer of a local Hugging Face encoder (``text_encoder``).
        """
        cfg = request.config
        data: PedesData = DATASETS.get(request.dataset).load(request.data_dir)
        captions = [caption for item in data.split(cfg.eval.train_split) for caption in item.captions]
        if len(captions) < 2:
            raise DataFormatError(
                request.data_dir, f"split {cfg.eval.train_split!r} has fewer than 2 captions"
            )
        hf_encoder, tokenizer = None, None
        if cfg.text_encoder:
            hf_encoder = HFTextEncoder(Path(str(cfg.text_encoder)), max_len=int(cfg.text.max_len))
            tokenize = hf_encoder.tokenize
        else:
            tokenizer = WordTokenizer.build(
                captions, min_freq=int(cfg.text.min_freq), max_len=int(cfg.text.max_len)
            )
            if is_main():
                Path(request.run_dir).mkdir(parents=True, exist_ok=True)
                tokenizer.save(Path(request.run_dir) / "tokenizer.json")
            tokenize = tokenizer
        train = CaptionSplit(data, cfg.eval.train_split, tokenize)
        test = CaptionSplit(data, cfg.eval.test_split, tokenize)
        return RetrievalData(train, test, tokenizer, hf_encoder)

    def build_model(self, request: EvalRequest, backbone: Backbone, data: RetrievalData) -> nn.Module:
        """The text encoder (from scratch unless ``text_encoder``), both projections, the ID classifier."""
        text = request.config.text
        encoder = data.hf_encoder
        if encoder is None:
            assert data.tokenizer is not None
            encoder = TransformerTextEncoder(
                len(data.tokenizer), max_len=int(text.max_len), width=int(text.width), depth=int(text.depth),
                heads=int(text.heads),
            )  # fmt: skip
        return RetrievalModel(
            encoder, image_dim=int(backbone.embed_dim), dim=int(request.config.embed.dim),
            num_classes=data.train.num_classes, backbone=backbone,
        )  # fmt: skip

    def train_set(self, request: EvalRequest, data: RetrievalData) -> CaptionPairs:
        """One sample per training caption: its augmented image, its tokens, its identity label."""
        augment, train = request.config.augment, data.train
        transform = train_transform(request.img_size, pad=int(augment.pad), flip=float(augment.flip))
        return CaptionPairs(train.paths, train.image_index, train.tokens, train.labels.tolist(), transform)

    def train_step(
        self, request: EvalRequest, model: nn.Module, batch: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        """InfoNCE + SDM + ID loss of one batch, weighted by ``loss.*``."""
        images, tokens, labels = batch
        return self._loss(request, model(images, tokens), labels)

    def evaluate(self, request: EvalRequest, model: nn.Module, data: RetrievalData) -> dict[str, float]:
        """Test captions against the embedded test images."""
        image_emb = extract_features(
            model.embed_image, GalleryImages(data.test.paths, eval_transform(request.img_size)),
            device=request.device, batch_size=int(request.config.eval.batch_size),
            workers=int(request.config.data.workers),
        )  # fmt: skip
        return _rank(request, model, torch.nn.functional.normalize(image_emb, dim=1), data.test)

    def linear(self, request: EvalRequest, model: nn.Module, data: RetrievalData) -> tuple[dict, None]:
        """The feature probe: image features of the frozen backbone cached once (standardised with the
        training split's statistics), the text encoder and both projections trained on them.

        The statistics are set in the model (:meth:`RetrievalModel.set_feature_stats`), so :meth:`evaluate`
        on images (the scale probe) standardises the backbone's features as the probe did.
        """
        cfg = request.config
        device = torch.device(request.device)
        backbone = self.backbone_of(model).requires_grad_(False)
        feats = {}
        for name, split in (("train", data.train), ("test", data.test)):
            feats[name] = extract_features(
                backbone, GalleryImages(split.paths, eval_transform(request.img_size)), device=device,
                batch_size=int(cfg.eval.batch_size), workers=int(cfg.data.workers), progress=request.progress,
                description=f"features {name}",
            )  # fmt: skip
        # Standardised features (train statistics): frozen backbones differ wildly in feature scale, and the
        # projection then trains with one learning rate for all of them. The model applies them.
        model.set_feature_stats(feats["train"].mean(0), feats["train"].std(0).clamp_min(1e-6))
        train, image_index = data.train, torch.as_tensor(data.train.image_index)

        def loss_fn(head: nn.Module, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            out = head(feats["train"][image_index[rows]].to(device), train.tokens[rows].to(device))
            return self._loss(request, out, train.labels[rows].to(device))

        probe = cfg.linear
        losses = train_head(
            model, loss_fn, len(image_index), steps=int(probe.steps), lr=float(probe.lr),
            weight_decay=float(probe.weight_decay), batch_size=int(probe.batch_size), seed=request.seed,
            progress=request.progress, description="text retrieval head",
        )  # fmt: skip
        image_emb = embed_batched(
            model.embed_image, feats["test"], device=device, batch_size=int(cfg.eval.batch_size)
        )
        metrics = _rank(request, model, image_emb, data.test)
        head_state = {k: v for k, v in model.state_dict().items() if not k.startswith(self.backbone_prefix)}
        save_head(
            request.run_dir, "text_retrieval_head.pt", head_state,
            {"metrics": metrics, "linear": OmegaConf.to_container(probe),
             "final_loss": losses[-1] if losses else None},
        )  # fmt: skip
        return metrics, None

    def describe(self, request: EvalRequest, data: RetrievalData) -> dict[str, Any]:
        return {
            "train_images": len(data.train.paths), "train_captions": len(data.train.captions),
            "test_images": len(data.test.paths), "test_captions": len(data.test.captions),
        }  # fmt: skip

    @staticmethod
    def _loss(
        request: EvalRequest, outputs: tuple[torch.Tensor, ...], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        image, text, image_logits, text_logits = outputs
        loss = request.config.loss
        return retrieval_loss(
            image, text, labels, image_logits=image_logits, text_logits=text_logits,
            temperature=float(loss.temperature),
            weights={"itc": float(loss.itc), "sdm": float(loss.sdm), "id": float(loss.id)},
        )  # fmt: skip


@torch.no_grad()
def _rank(request: EvalRequest, model: RetrievalModel, image_emb: torch.Tensor, test: CaptionSplit) -> dict:
    """Text-to-image metrics of the test captions against L2-normalised test image embeddings."""
    model.eval()
    text_emb = embed_batched(
        model.embed_text, test.tokens, device=torch.device(request.device),
        batch_size=int(request.config.eval.batch_size),
    )  # fmt: skip
    similarity = (text_emb @ image_emb.t()).numpy()
    return rank_metrics(similarity, test.caption_pids.numpy(), test.image_pids.numpy())
