"""Tokenizer, from-scratch text encoder, the optional local Hugging Face encoder, and the three losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saip_bench.errors import ConfigError
from saip_bench.tasks.text_retrieval.losses import infonce_loss, retrieval_loss, sdm_loss
from saip_bench.tasks.text_retrieval.model import RetrievalModel
from saip_bench.tasks.text_retrieval.text_encoder import HFTextEncoder, TransformerTextEncoder
from saip_bench.tasks.text_retrieval.tokenizer import WordTokenizer

CAPTIONS = ["A man in a red T-shirt.", "The woman wears a red dress, and black shoes.", "A man with a bag"]


def test_tokenizer_vocabulary_encoding_and_round_trip(tmp_path: Path) -> None:
    tok = WordTokenizer.build(CAPTIONS, max_len=8)
    assert tok.vocab[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"] and tok.vocab[4] == "a"  # most frequent
    assert "t-shirt" in tok.vocab and "," not in tok.vocab
    ids = tok(["a red hat", "a man in a red t-shirt and black shoes"])
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert ids[0, :5].tolist() == [2, tok.index["a"], tok.index["red"], 1, 3] and ids[0, 5:].eq(0).all()
    assert ids[1, -1].item() == 3  # truncated, <eos> kept
    tok.save(tmp_path / "tokenizer.json")
    again = WordTokenizer.load(tmp_path / "tokenizer.json")
    assert again.vocab == tok.vocab and torch.equal(again(CAPTIONS), tok(CAPTIONS))
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ConfigError, match="bad.json: not a saved word tokenizer"):
        WordTokenizer.load(tmp_path / "bad.json")


def test_text_encoder_ignores_padding() -> None:
    torch.manual_seed(0)
    tok = WordTokenizer.build(CAPTIONS, max_len=16)
    encoder = TransformerTextEncoder(len(tok), max_len=16, width=32, depth=1, heads=2).eval()
    short = tok(["a man in a red dress"])
    longer = torch.zeros(1, 16, dtype=torch.long)
    longer[0, :8] = short[0, :8]
    with torch.no_grad():
        a, b = encoder(short), encoder(longer[:, :12])  # same tokens, different amounts of padding
    assert a.shape == (1, 32) and torch.allclose(a, b, atol=1e-5)


def test_missing_hf_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="text_encoder folder does not exist"):
        HFTextEncoder(tmp_path / "bert-base-uncased")


def test_infonce_and_sdm_prefer_aligned_pairs() -> None:
    torch.manual_seed(0)
    image = torch.randn(6, 16)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    aligned, shuffled = image + 0.01 * torch.randn(6, 16), image[torch.tensor([3, 5, 0, 4, 1, 2])]
    assert infonce_loss(image, aligned) < infonce_loss(image, shuffled)
    assert sdm_loss(image, aligned, pids) < sdm_loss(image, shuffled, pids)
    # InfoNCE is symmetric in its two inputs.
    assert infonce_loss(image, shuffled) == pytest.approx(float(infonce_loss(shuffled, image)), rel=1e-5)


def test_sdm_does_not_punish_same_identity_matches() -> None:
    """Two images of one person and their captions all alike: SDM near 0, InfoNCE still pays log 2."""
    base = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    pids = torch.tensor([7, 7, 8, 8])
    assert float(sdm_loss(base, base, pids)) < 1e-3
    assert float(infonce_loss(base, base)) == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-3)


def test_retrieval_loss_combines_weighted_terms() -> None:
    torch.manual_seed(0)
    tok = WordTokenizer.build(CAPTIONS, max_len=16)
    model = RetrievalModel(
        TransformerTextEncoder(len(tok), max_len=16, width=32, depth=1, heads=2), image_dim=8, dim=16,
        num_classes=2,
    )  # fmt: skip
    image, text, il, tl = model(torch.randn(3, 8), tok(CAPTIONS))
    assert image.shape == text.shape == (3, 16) and il.shape == tl.shape == (3, 2)
    pids = torch.tensor([0, 1, 0])
    out = retrieval_loss(image, text, pids, image_logits=il, text_logits=tl, weights={"sdm": 0.5})
    assert set(out) == {"loss", "itc", "sdm", "id"}
    terms = {k: float(v.detach()) for k, v in out.items()}
    assert terms["loss"] == pytest.approx(terms["itc"] + 0.5 * terms["sdm"] + terms["id"], rel=1e-5)
    out["loss"].backward()
    assert model.text.token.weight.grad is not None and model.classifier.weight.grad is not None
    assert set(retrieval_loss(image, text, pids, weights={"sdm": 0, "id": 0})) == {"loss", "itc"}
    with pytest.raises(ValueError, match="zero"):
        retrieval_loss(image, text, pids, weights={"itc": 0, "sdm": 0, "id": 0})


def test_feature_stats_standardise_images_and_older_states_load() -> None:
    """The buffers standardise every image feature; a fine-tune state saved before them still loads."""
    torch.manual_seed(0)
    tok = WordTokenizer.build(CAPTIONS, max_len=16)

    def model(backbone: torch.nn.Module | None) -> RetrievalModel:
        encoder = TransformerTextEncoder(len(tok), max_len=16, width=32, depth=1, heads=2)
        return RetrievalModel(encoder, image_dim=3, dim=16, backbone=backbone)

    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net = model(pool).eval()
    images = torch.randn(4, 3, 8, 4)
    identity = net.embed_image(images)
    assert torch.equal(identity, net.image_proj(pool(images)))  # the default changes nothing
    mean, std = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 4.0])
    net.set_feature_stats(mean, std)
    assert torch.allclose(net.embed_image(images), net.image_proj((pool(images) - mean) / std))
    assert torch.allclose(net.embed_image(pool(images)), net.embed_image(images))  # cached features too
    assert torch.equal(net.state_dict()["feature_std"], std)

    # A fine-tune's model or checkpoint from before the buffers: strict load, the identity filled in.
    older_finetune = {
        k: v for k, v in model(torch.nn.Linear(3, 3)).state_dict().items() if not k.startswith("feature_")
    }
    again = model(torch.nn.Linear(3, 3))
    again.set_feature_stats(mean, std)
    again.load_state_dict(older_finetune)
    assert again.feature_mean.eq(0).all() and again.feature_std.eq(1).all()
    older_head = {k: v for k, v in model(None).state_dict().items() if not k.startswith("feature_")}
    with pytest.raises(RuntimeError, match="feature_mean.*feature_std"):
        model(None).load_state_dict(older_head)  # a linear head's statistics were never saved
