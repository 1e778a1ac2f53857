"""SAIP pretraining (``saip_bench.pretrain``): building blocks, meta-architecture and engine.

This docstring is the contract between the building blocks (views, encoder access, objectives, heads) and
the meta-architecture / engine built on top of them. Signatures listed here are kept stable; every block
takes plain tensors and typed arguments, never a config object. Importing this package imports nothing
heavy: import the submodules you need.

Views (``saip_bench.pretrain.views``)
-------------------------------------
``MultiCropViews(*, global_size=(256, 128), local_size=(128, 64), global_scale=(0.8, 1.0),
local_scale=(0.05, 0.8), ratio=(0.4, 0.6), local_crops_number=8, flip_p=0.5, jitter_p=0.8,
jitter=(0.4, 0.4, 0.2, 0.1), grayscale_p=0.2, global_blur_p=(1.0, 0.1), global_solarize_p=(0.0, 0.2),
local_blur_p=0.5, blur_sigma=(0.1, 2.0), interpolation="bicubic", output="float32")``; ``views(img: PIL.Image,
rng: np.random.Generator) -> dict``: ``"globals"`` (2, 3, 256, 128) and ``"locals"`` (L, 3, 128, 64),
ImageNet-normalised, where L = local_crops_number and ``locals[L-1]`` is global view 1 resized to 128x64
(the small copy). ``output="uint8"``: the views as rounded grey levels instead (the composite and masks
``uint8`` too), what the pretraining loader sends (``views.output``); ``normalize_views(batch)`` turns such a
batch into the float one on whatever device it is, and the meta-architecture calls it on every batch.

``SaipViews(multicrop: MultiCropViews, composite: CompositeMaker | None)``: ``views(img, rng) -> dict``
with the two keys above plus, when ``composite`` is given, ``"composite"`` (3, 224, 224) and
``"masks"`` (2, 224, 224) float {0, 1}.  Mask order (``INSTANCE = 0``, ``REGION = 1``):
``masks[0]`` marks where ``locals[L-1]`` (global view 1 small copy; its query is the student's global
view 1) was pasted, ``masks[1]`` where ``locals[L-2]`` (its query is the rescaled local view L-2) was.

``collate_views(samples: list[dict]) -> dict[str, Tensor]``: views of one size stacked VIEW-MAJOR, so one
backbone call per size: ``"globals"`` (2*B, 3, 256, 128) = [view0 of all samples; view1 of all samples],
``"locals"`` (L*B, 3, 128, 64) likewise, ``"composite"`` (B, 3, 224, 224), ``"masks"`` (B, 2, 224, 224).
``view_chunk(t, i, batch_size)`` returns view i of such a tensor. ``sample_rng(seed, epoch, index)`` gives
a per-sample ``np.random.Generator`` (deterministic under resume and any worker count).

Training-time rescale: ``draw_rescale_factors(generator: torch.Generator, n=2,
choices=(0.75, 0.875, 1.125, 1.25)) -> list[float]`` (seeded; keep the generator's state in checkpoints),
``rescale(x, factor, patch_size=16) -> Tensor`` (size rounded to a multiple of the patch). SAIP rescales
the last two local views (indices L-2 and L-1), one factor per view per batch.

Composite (``saip_bench.pretrain.composite``)
--------------------------------------------
``CompositeMaker(background: Callable[[np.random.Generator], PIL.Image], *, size=(224, 224),
person_size=(128, 64), alpha=0.7, bg_scale=(0.2, 1.0), bg_ratio=(3/4, 4/3), ...)``;
``maker(persons: Tensor (2, 3, h, w) normalised, rng) -> (composite (3, H, W), masks (2, H, W))``.
Backgrounds: ``background_from_sequence(items)`` (PIL images or paths; default: the pretraining
images themselves) or ``background_from_folder(path)``; never a hard-coded path.

Encoder access (``saip_bench.pretrain.encoder``), over a timm ``VisionTransformer``
----------------------------------------------------------------------------------
``create_vit(name="saip_vit_tiny_patch16", *, img_size=(256, 128), **kwargs) -> VisionTransformer``
(falls back to timm's vit_tiny_patch16_224 geometry when the SAIP entrypoint is not registered).
``forward_tokens(vit, x, *, mask_keep_idx=None, keep_valid=None, upto=None, return_qkv_last=False,
inter_index=6, inter_norm=None) -> TokenOutput`` with fields ``inter`` (B, P+N, D) tokens after block
``inter_index`` passed through ``inter_norm`` (a LayerNorm owned by the pretraining model; None = raw),
``final`` (B, P+N, D) after the last block and ``vit.norm`` (None if ``upto`` stopped earlier), ``qkv``
(q, k, v each (B, heads, P+N, head_dim) of the LAST block, only with ``return_qkv_last``), ``grid``
(gh, gw). P = ``vit.num_prefix_tokens`` (1: CLS first). ``upto=k`` runs blocks 0..k only.
Any input size whose sides are multiples of the patch works (2-D pos-embed resampling, cached).
``mask_keep_idx`` (B, K) long: patch indices kept (MAE-style; N becomes K); ``keep_valid`` (B, K) bool
marks padding entries (False) which no token attends to.
``random_keep_indices(batch, n_tokens, keep, *, generator=None, device=None) -> (keep_idx, hidden)``
(MAE masking; hidden (B, n_tokens) bool). ``tokens_to_map(tokens, grid, num_prefix=1) -> (B, D, gh, gw)``.
``grid_of(vit, hw) -> (gh, gw)``; ``pos_embed_for_grid(vit, grid) -> (prefix_pos | None, patch_pos)``.

Objectives (``saip_bench.pretrain.objectives``): tensors in, scalar out
------------------------------------------------------------------------
``CSMLoss(out_dim, *, student_temp=0.1, center_momentum=0.9)`` (nn.Module, buffer ``center`` (1, out_dim)
is checkpointed with its state_dict); ``loss(student_logits (Vs*B, K), teacher_logits (Vt*B, K), *,
teacher_temp, update_center=True)``: view-major rows; student views 0..Vt-1 are the teacher's views and
are skipped for the same view. ``teacher_temp_at(step, *, warmup_steps, warmup_temp=0.07,
final_temp=0.04)``. The centre all-reduces only when torch.distributed is initialised.
``attention_relation_loss(student_qkv, teacher_qkv)``: KL(teacher || student) of softmax(QK^T/sqrt d) plus
that of softmax(VV^T/sqrt d), same view, mean over batch, heads and query tokens.
CSR: ``draw_base_mask(batch, base_grid=(16, 8), ratio=0.75, *, generator=None, device=None)`` -> hidden
(B, gh, gw) bool; ``carry_mask(base_hidden, grid)`` -> (B, GH, GW) nearest upsampling;
``keep_from_mask(hidden (B, N)) -> (keep_idx (B, K), keep_valid (B, K))`` (K = most visible in the batch,
so the kept tokens are exactly the visible ones); ``csr_loss(pred (B, N, p*p*C), imgs (B, C, H, W),
hidden (B, N), *, patch_size=16, norm_pix=True)``; also ``masked_mse``, ``patch_targets``,
``patchify(imgs, patch_size)``, ``unpatchify(x, grid, patch_size)`` (the one copy; MAE uses them too).
CSS: ``css_loss(logits (B, Q, h, w), masks (B, Q, H, W), *, mode="nearest")`` BCE-with-logits after
resizing the masks to the logits' resolution.

Heads (``saip_bench.pretrain.heads``)
-------------------------------------
``ProjectionHead(in_dim, out_dim=65536, *, hidden_dim=2048, bottleneck_dim=256, n_layers=3,
norm_last_layer=True)``: (N, in_dim) -> (N, out_dim).
``CSRDecoder(embed_dim, *, patch_size=16, in_chans=3, decoder_dim=512, depth=8, num_heads=16,
mlp_ratio=4.0, base_grid=(16, 8))``; ``dec(tokens (B, 1+K, D), keep_idx (B, K), grid (GH, GW),
cond (B, C, D), keep_valid=None) -> (B, GH*GW, p*p*in_chans)``; ``cond`` = base-scale view's token(s)
(its CLS: ``inter[:, :1]``). Position codes: fixed 2-D sin-cos on base-grid coordinates, so a patch of
the enlarged grid is coded where it lies on the base grid.
``CSSDecoder(embed_dim, *, hidden_dim=512, num_heads=16, self_attn_depth=2, mask_head_depth=4,
mlp_ratio=4.0)``; ``dec(queries: Sequence[Tensor (B, 1+N_i, D)], memory (B, D, H, W)) -> logits
(B, Q, H, W)``: one mask per query, the conv mask features over the memory computed once.

Faults of the public code (stoa-xh91/SAIPv1) these blocks fix
-------------------------------------------------------------
- Position embeddings: 1-D interpolation of the flattened sequence -> 2-D resampling (encoder), the one
  a dynamic-size timm ViT applies itself; the CSR decoder's codes are fixed 2-D sin-cos on base-grid
  coordinates instead of a uniformly random (``torch.rand``) learned table resized in 1-D.
- CSR keep count: a fixed ``int(L * (1 - ratio))`` tokens kept on the enlarged grid although the carried
  mask's visible count varies -> exactly the visible tokens are kept (padding masked out of attention).
- Attention maps materialised in every block -> fused attention everywhere, q/k/v of the last block only.
- The teacher ran all blocks on the composite for the intermediate tokens -> ``upto`` stops at that block.
- The CSS mask head ran twice over the same teacher map (once per query) -> once, shared by the queries.
- Unseeded ``random.choice`` of the rescale factors and global-RNG augmentations -> explicit generators.
- Hard-coded background-image path -> a background source passed in (default: the pretraining images).
- ``--csm_out_dim`` reached the loss but not the head (always 65,536 prototypes) -> ``ProjectionHead``
  takes ``out_dim`` and honours it.
- The centre update all-reduced without a process group (crash on one CPU) -> only when one exists.
"""
