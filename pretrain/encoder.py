"""Access to a timm ``VisionTransformer`` for pretraining: any grid, masking, early stop, last q/k/v.

The pretraining objectives need more from the backbone than ``forward_features`` gives: the intermediate
tokens after block 7 (index 6) under a LayerNorm the pretraining model owns, the final tokens, the q/k/v of
the last block only (the attention-relation term; no other block materialises attention maps, they all run
timm's fused ``scaled_dot_product_attention``), MAE-style dropping of hidden patches, and stopping after the
block a caller needs (the teacher encodes the composite only up to the intermediate block).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

__all__ = [
    "TokenOutput",
    "block_rows",
    "create_vit",
    "forward_tokens",
    "grid_of",
    "pos_embed_for_grid",
    "random_keep_indices",
    "tokens_to_map",
]

# (old grid, new grid, device, dtype) -> (new_n, old_n) resampling matrix. Resampling is linear in the
# embedding, so one small matrix per grid pair serves every step, keeps gradients flowing to pos_embed and
# stays correct while the optimizer and the EMA change the embedding.
_RESAMPLE_CACHE: dict[tuple, torch.Tensor] = {}


@dataclass
class TokenOutput:
    """What :func:`forward_tokens` returns.

    Attributes:
        inter: ``(B, P+N, D)`` tokens after block ``inter_index`` (through ``inter_norm`` if given), or None.
        final: ``(B, P+N, D)`` tokens after the last block and ``vit.norm`` (``(B, final_rows, D)`` when
            asked for fewer); None when ``upto`` stopped early.
        qkv: ``(q, k, v)`` of the last block, each ``(B, heads, P+N, head_dim)``, or None.
        grid: The patch grid ``(gh, gw)`` of the input (before any masking).
    """

    inter: torch.Tensor | None
    final: torch.Tensor | None
    qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    grid: tuple[int, int]


def create_vit(
    name: str = "saip_vit_tiny_patch16", *, img_size: tuple[int, int] = (256, 128), **kwargs
) -> VisionTransformer:
    """Build a randomly initialised timm ViT for pretraining (nothing is downloaded).

    Args:
        name: A timm model name. ``saip_vit_tiny_patch16`` falls back to timm's ``vit_tiny_patch16_224``
            geometry (192-d, 12 blocks, 3 heads) when the SAIP entrypoint is not registered.
        img_size: Base input size ``(H, W)``; its grid is the one ``pos_embed`` is stored at.
        **kwargs: Passed to ``timm.create_model`` (e.g. ``depth``, ``embed_dim`` for tiny test models).

    Returns:
        The model, ``num_classes=0``.
    """
    import timm

    import saip_bench  # noqa: F401  (registers the SAIP entrypoints with timm)

    if name == "saip_vit_tiny_patch16" and not timm.is_model(name):
        name = "vit_tiny_patch16_224"
    model = timm.create_model(name, pretrained=False, img_size=tuple(img_size), num_classes=0, **kwargs)
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"{name} is a {type(model).__name__}, not a timm VisionTransformer")
    return model


def grid_of(vit: VisionTransformer, hw: tuple[int, int]) -> tuple[int, int]:
    """Patch grid of an ``(H, W)`` input; both sides must be multiples of the patch size."""
    ph, pw = vit.patch_embed.patch_size
    h, w = int(hw[0]), int(hw[1])
    if h % ph or w % pw:
        raise ValueError(f"input {h}x{w} is not a multiple of the patch size {ph}x{pw}")
    return h // ph, w // pw


def _resample_matrix(
    old: tuple[int, int], new: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    key = (old, new, device, dtype)
    mat = _RESAMPLE_CACHE.get(key)
    if mat is None:
        from timm.layers import resample_abs_pos_embed

        n_old = old[0] * old[1]
        # Resampling the identity gives the operator's columns. timm's own resampling, so the tokens equal
        # what ``vit.forward_features`` computes for the same input when the model is dynamic_img_size.
        eye = torch.eye(n_old, dtype=torch.float32).unsqueeze(0)
        mat = resample_abs_pos_embed(eye, list(new), list(old), num_prefix_tokens=0)[0]
        mat = mat.to(device=device, dtype=dtype)
        _RESAMPLE_CACHE[key] = mat
    return mat


def pos_embed_for_grid(
    vit: VisionTransformer, grid: tuple[int, int]
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The position embedding of ``vit`` for a patch grid, resampled in 2-D when it differs.

    The resampling is timm's ``resample_abs_pos_embed`` (bicubic, antialiased), the one a
    ``dynamic_img_size`` ViT applies in its own forward; it is linear, so it runs as one cached matrix per
    grid pair.

    Returns:
        ``(prefix_pos, patch_pos)``: ``(1, P, D)`` for the prefix tokens (None when the model gives them
        no position, ``no_embed_class``) and ``(1, gh*gw, D)`` for the patches.
    """
    pos = vit.pos_embed
    n_prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
    prefix_pos = pos[:, :n_prefix] if n_prefix else None
    patch_pos = pos[:, n_prefix:]
    base = tuple(vit.patch_embed.grid_size)
    grid = (int(grid[0]), int(grid[1]))
    if grid != base:
        mat = _resample_matrix(base, grid, patch_pos.device, patch_pos.dtype)
        patch_pos = torch.matmul(mat, patch_pos[0]).unsqueeze(0)
    return prefix_pos, patch_pos


def random_keep_indices(
    batch: int,
    n_tokens: int,
    keep: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE masking: per sample, keep ``keep`` of ``n_tokens`` patches chosen uniformly at random.

    Returns:
        ``(keep_idx, hidden)``: ``(B, keep)`` long indices in ascending order, ``(B, n_tokens)`` bool
        (True = hidden). Drawn on the CPU from ``generator`` so results do not depend on the device.
    """
    if not 0 < keep <= n_tokens:
        raise ValueError(f"keep must be in 1..{n_tokens}, got {keep}")
    noise = torch.rand(batch, n_tokens, generator=generator)
    keep_idx = noise.argsort(dim=1)[:, :keep].sort(dim=1).values
    hidden = torch.ones(batch, n_tokens, dtype=torch.bool)
    hidden.scatter_(1, keep_idx, False)
    return keep_idx.to(device), hidden.to(device)


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1) -> torch.Tensor:
    """``(B, P+gh*gw, D)`` tokens -> ``(B, D, gh, gw)`` map of the patch tokens."""
    b, n, d = tokens.shape
    if n - num_prefix != grid[0] * grid[1]:
        raise ValueError(f"{n - num_prefix} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    return tokens[:, num_prefix:].transpose(1, 2).reshape(b, d, grid[0], grid[1])


def _embed(vit: VisionTransformer, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    grid = grid_of(vit, x.shape[-2:])
    pe = vit.patch_embed
    # The conv runs directly: timm's PatchEmbed may assert the size it was built for.
    tokens = pe.proj(x).flatten(2).transpose(1, 2)
    return pe.norm(tokens), grid


def _rows_eligible(block: nn.Module) -> bool:
    """A timm ``Block`` whose attention :func:`block_rows` can run by hand (no gate, no scale norm)."""
    from timm.layers import Attention

    attn = getattr(block, "attn", None)
    return (
        all(hasattr(block, k) for k in ("norm1", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2"))
        and type(attn) is Attention
        and getattr(attn, "gate", None) is None
        and isinstance(attn.norm, nn.Identity)
    )


def block_rows(
    block: nn.Module,
    x: torch.Tensor,
    rows: int | None = None,
    *,
    attn_mask: torch.Tensor | None = None,
    return_qkv: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
    """A timm ViT ``Block`` on ``x`` whose output is computed for its first ``rows`` tokens only.

    Keys and values still come from every token, so the rows equal the full block's first rows; what is
    skipped is the queries, attention, projection and MLP of the rows nobody reads (a CLS-only consumer
    saves about three quarters of the block).

    Args:
        block: A timm ``Block`` (pre-norm attention + MLP).
        x: ``(B, N, D)`` tokens.
        rows: Compute the output of ``x[:, :rows]``; None for every row.
        attn_mask: As the block's ``attn_mask`` (a key mask broadcast over the queries).
        return_qkv: Also return the block's ``(q, k, v)`` of every token, each ``(B, heads, N, head_dim)``
            after the q/k norms (what the attention relation term reads).

    Returns:
        ``(out, qkv)``: ``(B, rows or N, D)`` and the q/k/v or None.
    """
    from saip_bench.pretrain.engine.attention import sdpa

    if not _rows_eligible(block):  # another block type: the whole block, q/k/v from a hook on its qkv
        captured: dict[str, torch.Tensor] = {}
        handle = block.attn.qkv.register_forward_hook(lambda _m, _i, out: captured.__setitem__("qkv", out))
        try:
            out = block.forward(x) if attn_mask is None else block.forward(x, attn_mask=attn_mask)
        finally:
            handle.remove()
        qkv = None
        if return_qkv:
            attn, (b, n, _) = block.attn, x.shape
            q, k, v = captured["qkv"].reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
            qkv = (attn.q_norm(q), attn.k_norm(k), v)
        return (out if rows is None else out[:, :rows]), qkv

    attn = block.attn
    b, n, _ = x.shape
    r = n if rows is None else int(rows)
    heads, hd, dim = attn.num_heads, attn.head_dim, attn.attn_dim
    h = block.norm1(x)
    qkv = None
    if return_qkv or r == n:
        q, k, v = attn.qkv(h).reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if return_qkv:
            qkv = (q, k, v)
        q = q[:, :, :r]
    else:  # queries of the kept rows only; keys and values of all
        w, bias = attn.qkv.weight, attn.qkv.bias
        q = F.linear(h[:, :r], w[:dim], None if bias is None else bias[:dim])
        q = attn.q_norm(q.reshape(b, r, heads, hd).transpose(1, 2))
        kv = F.linear(h, w[dim:], None if bias is None else bias[dim:])
        k, v = kv.reshape(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        k = attn.k_norm(k)
    drop = attn.attn_drop.p if attn.training else 0.0
    out = sdpa(q, k, v, attn_mask=attn_mask, dropout_p=drop)
    out = attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(b, r, dim)))
    y = x[:, :r] + block.drop_path1(block.ls1(out))
    y = y + block.drop_path2(block.ls2(block.mlp(block.norm2(y))))
    return y, qkv


def forward_tokens(
    vit: VisionTransformer,
    x: torch.Tensor,
    *,
    mask_keep_idx: torch.Tensor | None = None,
    keep_valid: torch.Tensor | None = None,
    upto: int | None = None,
    return_qkv_last: bool = False,
    inter_index: int | None = 6,
    inter_norm: nn.Module | None = None,
    final_rows: int | None = None,
) -> TokenOutput:
    """Run ``vit`` on a batch of one size and return the token sets the pretraining objectives use.

    Args:
        vit: A timm ``VisionTransformer`` (class token first; registers are kept as prefix tokens too).
        x: ``(B, 3, H, W)``; H and W multiples of the patch size, any grid.
        mask_keep_idx: ``(B, K)`` long patch indices to keep (MAE-style): hidden patches never enter.
        keep_valid: ``(B, K)`` bool, False where ``mask_keep_idx`` is padding (samples with fewer visible
            patches than K); no token attends to those entries and their outputs are meaningless.
        upto: Run blocks ``0..upto`` only (e.g. ``upto=inter_index`` for the intermediate tokens alone).
        return_qkv_last: Also return q, k, v of the last block (requires running every block).
        inter_index: Block whose output is the intermediate token set; None for no intermediate output.
        inter_norm: Norm applied to the intermediate tokens (owned by the pretraining model).
        final_rows: Return the final tokens of the first ``final_rows`` positions only (1: the CLS token);
            the last block then computes its attention and MLP for those rows alone.

    Returns:
        A :class:`TokenOutput`.
    """
    depth = len(vit.blocks)
    last = depth - 1 if upto is None else int(upto)
    if not 0 <= last < depth:
        raise ValueError(f"upto={upto} outside the {depth} blocks")
    if return_qkv_last and last != depth - 1:
        raise ValueError("return_qkv_last needs the last block; do not combine it with an earlier upto")
    if inter_index is not None and not 0 <= inter_index <= last:
        raise ValueError(f"inter_index={inter_index} is not among the blocks run (0..{last})")

    tokens, grid = _embed(vit, x)
    prefix_pos, patch_pos = pos_embed_for_grid(vit, grid)
    tokens = tokens + patch_pos
    if mask_keep_idx is not None:
        idx = mask_keep_idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        tokens = torch.gather(tokens, 1, idx)

    prefix = []
    if vit.cls_token is not None:
        prefix.append(vit.cls_token.expand(tokens.shape[0], -1, -1))
    if vit.reg_token is not None:
        prefix.append(vit.reg_token.expand(tokens.shape[0], -1, -1))
    if prefix:
        pre = torch.cat(prefix, dim=1)
        if prefix_pos is not None:
            pre = pre + prefix_pos
        tokens = torch.cat([pre, tokens], dim=1)
    tokens = vit.norm_pre(vit.pos_drop(tokens))

    attn_mask = None
    if keep_valid is not None:
        if mask_keep_idx is None or keep_valid.shape != mask_keep_idx.shape:
            raise ValueError("keep_valid must come with mask_keep_idx of the same shape")
        n_pre = tokens.shape[1] - keep_valid.shape[1]
        valid = torch.cat([keep_valid.new_ones(keep_valid.shape[0], n_pre), keep_valid.bool()], dim=1)
        attn_mask = valid[:, None, None, :]  # (B, 1, 1, N): key padding for every head and query

    inter = None
    # The last block runs apart when it has less to do than a whole block: its q/k/v are read (returned
    # from the block itself, no hook, so the block may be compiled) or only the first ``final_rows`` tokens
    # of its output are (the objectives read the final CLS token alone).
    special = last == depth - 1 and (return_qkv_last or (final_rows is not None and inter_index != last))
    qkv = None
    for i in range(last + 1 - int(special)):
        block = vit.blocks[i]
        tokens = block(tokens) if attn_mask is None else block(tokens, attn_mask=attn_mask)
        if i == inter_index:
            inter = inter_norm(tokens) if inter_norm is not None else tokens
    if special:
        rows = final_rows if inter_index != last else None
        tokens, qkv = block_rows(
            vit.blocks[last], tokens, rows, attn_mask=attn_mask, return_qkv=return_qkv_last
        )
        if inter_index == last:
            inter = inter_norm(tokens) if inter_norm is not None else tokens

    final = None
    if last == depth - 1:
        final = vit.norm(tokens if final_rows is None else tokens[:, :final_rows])
    return TokenOutput(inter=inter, final=final, qkv=qkv, grid=grid)
