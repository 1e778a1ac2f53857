"""Image-text matching losses: symmetric InfoNCE, IRRA's SDM, and an identity (ID) classification loss.

Which and why:

* **InfoNCE** (CLIP's symmetric contrastive loss): each caption's own image is its positive, every other
  image in the batch a negative, and vice versa. It is the standard objective for aligning two encoders.
* **SDM** (similarity distribution matching, Jiang & Ye, IRRA, CVPR 2023): the softmax over a row of scaled
  cosine similarities is pulled (KL divergence) towards the *true matching distribution* of the row, uniform
  over every batch entry of the same identity. Unlike InfoNCE it does not treat another image of the same
  person as a negative, which matters in person retrieval where a batch often holds several images of one
  identity; IRRA reports it as its strongest single loss.
* **ID loss** (cross-entropy of a shared classifier on both modalities' embeddings, as in IRRA and
  Zheng et al.'s dual-path CNN): it clusters each identity's images and captions together in one space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _similarity(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return F.normalize(text.float(), dim=1) @ F.normalize(image.float(), dim=1).t()


def infonce_loss(image: torch.Tensor, text: torch.Tensor, *, temperature: float = 0.02) -> torch.Tensor:
    """Symmetric InfoNCE: row ``i`` of ``image`` and ``text`` is a matching pair.

    Args:
        image: ``(B, D)`` image embeddings.
        text: ``(B, D)`` text embeddings.
        temperature: softmax temperature of the cosine similarities.
    """
    logits = _similarity(image, text) / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def sdm_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    pids: torch.Tensor,
    *,
    temperature: float = 0.02,
    eps: float = 1e-8,
) -> torch.Tensor:
    """IRRA's similarity distribution matching: ``KL(softmax(sim / t) || same-identity distribution)``.

    Both directions (image-to-text and text-to-image) are summed, each a mean over the batch rows.

    Args:
        image: ``(B, D)`` image embeddings.
        text: ``(B, D)`` text embeddings.
        pids: ``(B,)`` identity labels; equal labels are matches.
        temperature: softmax temperature of the cosine similarities.
        eps: keeps the log of the target finite where it is 0.
    """
    sim = _similarity(image, text)  # text x image
    match = (pids.view(-1, 1) == pids.view(1, -1)).float()
    target = match / match.sum(1, keepdim=True)
    total = sim.new_zeros(())
    for logits in (sim.t() / temperature, sim / temperature):  # image->text, text->image
        log_p = F.log_softmax(logits, dim=1)
        total = total + (log_p.exp() * (log_p - torch.log(target + eps))).sum(1).mean()
    return total


def id_loss(image_logits: torch.Tensor, text_logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of one identity classifier's logits on the image and on the text embeddings."""
    return 0.5 * (F.cross_entropy(image_logits.float(), pids) + F.cross_entropy(text_logits.float(), pids))


def retrieval_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    pids: torch.Tensor,
    *,
    image_logits: torch.Tensor | None = None,
    text_logits: torch.Tensor | None = None,
    temperature: float = 0.02,
    weights: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """The weighted sum of the three losses, and each term, as the engine's ``step_fn`` returns them.

    Args:
        image: ``(B, D)`` image embeddings.
        text: ``(B, D)`` text embeddings of the matching captions.
        pids: ``(B,)`` identity labels (0..C-1 for the ID loss).
        image_logits: ``(B, C)`` identity logits of the image embeddings (None: no ID loss).
        text_logits: ``(B, C)`` identity logits of the text embeddings.
        temperature: softmax temperature of the InfoNCE and SDM similarities.
        weights: ``{"itc": w, "sdm": w, "id": w}``; a zero weight skips the term (default 1, 1, 1).
    """
    w = {"itc": 1.0, "sdm": 1.0, "id": 1.0, **(weights or {})}
    terms: dict[str, torch.Tensor] = {}
    if w["itc"]:
        terms["itc"] = infonce_loss(image, text, temperature=temperature)
    if w["sdm"]:
        terms["sdm"] = sdm_loss(image, text, pids, temperature=temperature)
    if w["id"] and image_logits is not None and text_logits is not None:
        terms["id"] = id_loss(image_logits, text_logits, pids)
    if not terms:
        raise ValueError("every retrieval loss weight is zero")
    loss = sum(w[name] * value for name, value in terms.items())
    return {"loss": loss, **terms}  # type: ignore[dict-item]
