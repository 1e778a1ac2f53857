"""One meta-architecture for every method: student, EMA teacher, the views through them, weighted terms.

Only what the active terms need is built and run:

- a term with weight 0 (or deselected) allocates nothing (no CSR decoder without CSR, no projection head
  without CSM/DINO, no teacher at all for MAE) and computes nothing;
- the teacher holds only the modules it runs, and the EMA covers exactly those (the public code kept an EMA
  copy of decoders the teacher never runs); when only CSS reads the teacher, its ViT stops at the
  intermediate block (the public code ran all 12 blocks on the composite and threw 5 away);
- attention maps are never materialised: the last block's q/k/v are returned only where the relation term
  uses them, every other block runs fused attention;
- views of one size go through the backbone in one call (globals together, plain locals together, the two
  rescaled locals together when their factors agree);
- every random draw of a step (masks, rescale factors) comes from a generator seeded by (seed, step, rank),
  so resuming and multi-process runs are reproducible without relying on global RNG state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from saip_bench.errors import ConfigError
from saip_bench.pretrain import encoder as E
from saip_bench.pretrain.engine.optim import ema_update
from saip_bench.pretrain.methods import MethodSpec


@dataclass
class ArchSettings:
    """Plain settings of the meta-architecture (the config layer fills them from YAML)."""

    arch: str = "saip_vit_tiny_patch16"
    img_size: tuple[int, int] = (256, 128)
    vit_kwargs: dict = field(default_factory=dict)
    mid_block: int = 6
    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    norm_last_layer: bool = True
    csr_decoder_dim: int = 512
    csr_decoder_depth: int = 8
    csr_decoder_heads: int = 16
    css_decoder_dim: int = 512
    css_decoder_heads: int = 16
    css_decoder_blocks: int = 2
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_steps: int = 0
    center_momentum: float = 0.9
    mask_ratio: float = 0.75
    csr_scale: float = 1.25
    norm_pix: bool = True
    rescale_views: int = 2
    rescale_factors: tuple[float, ...] = (0.75, 0.875, 1.125, 1.25)
    rescale_keep_aspect: bool = False  # the public code's rescaled sizes (views.rescaled_size)
    seed: int = 0
    lean_mlp: bool = True  # recompute GELU and LayerNorm in backward instead of storing them (fp32 memory)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class MetaArch(nn.Module):
    """Student + EMA teacher + the active terms of one method.

    ``forward(batch, step)`` returns ``{"loss": weighted total, <term>: unweighted value, ...}`` for a batch
    from :func:`saip_bench.pretrain.views.collate_views` (view-major ``globals``, ``locals``; ``composite``
    and ``masks`` when CSS is active), normalised or ``uint8`` (quantised views, normalised here on the
    model's device by :func:`saip_bench.pretrain.views.normalize_views`).
    """

    def __init__(self, spec: MethodSpec, settings: ArchSettings) -> None:
        super().__init__()
        from saip_bench.pretrain.heads import CSRDecoder, CSSDecoder, ProjectionHead
        from saip_bench.pretrain.objectives import CSMLoss

        self.spec, self.s = spec, settings
        has = spec.has
        vit = E.create_vit(settings.arch, img_size=tuple(settings.img_size), **dict(settings.vit_kwargs))
        depth, dim = len(vit.blocks), vit.embed_dim
        self.patch = int(vit.patch_embed.patch_size[0])
        self.num_prefix = int(vit.num_prefix_tokens)
        self.uses_mid = has("csr") or has("css")
        if has("css") and settings.rescale_views < 2:
            raise ConfigError(
                f"views.rescale_views={settings.rescale_views}: CSS queries the rescaled local view L-2, "
                "so at least the last two local views must be rescaled"
            )
        if self.uses_mid and not 0 <= settings.mid_block < depth:
            raise ConfigError(f"model.mid_block={settings.mid_block}: the backbone has blocks 0..{depth - 1}")
        self.distill = has("csm") or has("dino")

        student = nn.ModuleDict({"vit": vit})
        if self.uses_mid:
            student["inter_norm"] = nn.LayerNorm(dim, eps=1e-6)
        if self.distill:
            student["proj"] = ProjectionHead(
                dim,
                settings.out_dim,
                hidden_dim=settings.hidden_dim,
                bottleneck_dim=settings.bottleneck_dim,
                norm_last_layer=settings.norm_last_layer,
            )
        if has("csr") or has("mae"):
            student["csr_decoder"] = CSRDecoder(
                dim,
                patch_size=self.patch,
                decoder_dim=settings.csr_decoder_dim,
                depth=settings.csr_decoder_depth,
                num_heads=settings.csr_decoder_heads,
                base_grid=E.grid_of(vit, settings.img_size),
            )
        if has("css"):
            student["css_decoder"] = CSSDecoder(
                dim,
                hidden_dim=settings.css_decoder_dim,
                num_heads=settings.css_decoder_heads,
                self_attn_depth=settings.css_decoder_blocks,
            )
        self.student = student

        # The teacher: only the modules it runs (its ViT stops at the intermediate block when nothing
        # reads its final tokens), initialised from the student and never trained.
        self.teacher_full = has("csm") or has("csm_attn") or has("dino")
        if spec.needs_teacher:
            t_vit = copy.deepcopy(vit)
            if not self.teacher_full:
                t_vit.blocks = t_vit.blocks[: settings.mid_block + 1]
            teacher = nn.ModuleDict({"vit": t_vit})
            if has("css"):
                teacher["inter_norm"] = copy.deepcopy(student["inter_norm"])
            if self.distill:
                teacher["proj"] = copy.deepcopy(student["proj"])
            teacher.requires_grad_(False)
            self.teacher = teacher
        else:
            self.teacher = None
        self.csm_loss = (
            CSMLoss(
                settings.out_dim, student_temp=settings.student_temp, center_momentum=settings.center_momentum
            )
            if self.distill
            else None
        )
        if settings.lean_mlp:
            from saip_bench.pretrain.engine.lean_mlp import make_blocks_lean, make_mlps_lean

            make_mlps_lean(self.student)  # after the teacher copies: the teacher runs without gradients
            make_blocks_lean(self.student)
        from saip_bench.pretrain.engine.attention import make_attention_autocast_aware

        make_attention_autocast_aware(self)  # CPU bf16: not the bf16 attention kernel (slower than fp32's)

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_config(cls, cfg, spec: MethodSpec) -> MetaArch:
        """Build from the resolved pretraining config (see configs/pretrain/defaults.yaml)."""
        m, h, c, k, v = cfg.model, cfg.heads, cfg.csm, cfg.mask, cfg.views
        vit_kwargs = {key: m[key] for key in ("embed_dim", "depth", "num_heads") if m[key] is not None}
        if m.drop_path_rate:
            vit_kwargs["drop_path_rate"] = float(m.drop_path_rate)
        settings = ArchSettings(
            arch=str(m.arch),
            img_size=tuple(m.img_size),
            vit_kwargs=vit_kwargs,
            mid_block=int(m.mid_block),
            out_dim=int(h.out_dim),
            hidden_dim=int(h.hidden_dim),
            bottleneck_dim=int(h.bottleneck_dim),
            norm_last_layer=bool(h.norm_last_layer),
            csr_decoder_dim=int(h.csr_decoder_dim),
            csr_decoder_depth=int(h.csr_decoder_depth),
            csr_decoder_heads=int(h.csr_decoder_heads),
            css_decoder_dim=int(h.css_decoder_dim),
            css_decoder_heads=int(h.css_decoder_heads),
            css_decoder_blocks=int(h.css_decoder_blocks),
            student_temp=float(c.student_temp),
            teacher_temp=float(c.teacher_temp),
            warmup_teacher_temp=float(c.warmup_teacher_temp),
            warmup_teacher_temp_steps=int(c.warmup_teacher_temp_steps),
            center_momentum=float(c.center_momentum),
            mask_ratio=float(k.ratio),
            csr_scale=float(k.csr_scale),
            norm_pix=bool(k.norm_pix),
            rescale_views=int(v.rescale_views),
            rescale_factors=tuple(float(f) for f in v.rescale_factors),
            rescale_keep_aspect=bool(v.rescale_keep_aspect),
            seed=int(cfg.seed),
            lean_mlp=bool(m.lean_mlp),
        )
        return cls(spec, settings)

    def train(self, mode: bool = True) -> MetaArch:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher never trains (no dropout / drop-path noise in its targets)
        return self

    def step_generator(self, step: int) -> torch.Generator:
        """The CPU generator of one step's random draws: a pure function of (seed, step, rank)."""
        seed = (self.s.seed * 1_000_003 + step * 7919 + _rank() * 104_729) % (2**63 - 1)
        return torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA of the teacher's modules towards the student's."""
        if self.teacher is not None:
            ema_update(self.teacher, self.student, momentum)

    def digest_extras(self) -> list[float]:
        """Checksums beyond the weights for the distributed tests: the CSM centre."""
        if self.csm_loss is None:
            return []
        return [float(self.csm_loss.center.double().sum())]

    def export_vit(self, which: str = "teacher") -> tuple[nn.Module, str]:
        """The ViT to export and which branch it is (the student when no full teacher exists)."""
        if which not in ("teacher", "student"):
            raise ConfigError(f"export.which={which!r}: expected teacher or student")
        if which == "teacher" and self.teacher is not None and self.teacher_full:
            return self.teacher["vit"], "teacher"
        return self.student["vit"], "student"

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        from saip_bench.pretrain.views import normalize_views

        batch = normalize_views(batch)
        gen = self.step_generator(step)
        terms = self._mae(batch, gen) if self.spec.has("mae") else self._views_terms(batch, step, gen)
        total = sum(self.spec.weights[name] * terms[name] for name in self.spec.terms)
        return {"loss": total, **terms}

    def _mae(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        from saip_bench.pretrain.objectives.csr import csr_loss

        vit, x = self.student["vit"], batch["globals"]
        grid = E.grid_of(vit, x.shape[-2:])
        n = grid[0] * grid[1]
        keep = max(1, int(round(n * (1.0 - self.s.mask_ratio))))
        keep_idx, hidden = E.random_keep_indices(x.shape[0], n, keep, generator=gen, device=x.device)
        tok = E.forward_tokens(vit, x, mask_keep_idx=keep_idx, inter_index=None)
        pred = self.student["csr_decoder"](tok.final, keep_idx, grid, tok.final[:, :1])
        return {
            "mae": csr_loss(pred.float(), x.float(), hidden, patch_size=self.patch, norm_pix=self.s.norm_pix)
        }

    def _views_terms(
        self, batch: dict[str, torch.Tensor], step: int, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        from saip_bench.pretrain.views import draw_rescale_factors, rescale, view_chunk

        has, s = self.spec.has, self.s
        vit = self.student["vit"]
        g = batch["globals"]
        b = g.shape[0] // 2
        mid = s.mid_block if self.uses_mid else None
        inter_norm = self.student["inter_norm"] if self.uses_mid else None
        terms: dict[str, torch.Tensor] = {}

        # Student, globals: final CLS (distillation), last q/k/v (relation), intermediate (CSR, CSS).
        need_global_final = self.distill or has("csm_attn")
        s_glob = E.forward_tokens(
            vit,
            g,
            upto=None if need_global_final else mid,
            return_qkv_last=has("csm_attn"),
            inter_index=mid,
            inter_norm=inter_norm,
            final_rows=1,  # only the final CLS token is read
        )
        cls_rows: list[torch.Tensor] = [s_glob.final[:, 0]] if self.distill else []

        # Student, locals: plain ones in one call, the rescaled ones (SAIP) at their drawn sizes.
        region_query = None
        if self.spec.needs_locals and "locals" in batch:
            loc = batch["locals"]
            n_loc = loc.shape[0] // b
            n_resc = min(s.rescale_views, n_loc) if self.spec.rescale_locals else 0
            n_plain = n_loc - n_resc
            if self.distill and n_plain > 0:
                plain = E.forward_tokens(vit, loc[: n_plain * b], inter_index=None, final_rows=1)
                cls_rows.append(plain.final[:, 0])
            if n_resc:
                factors = draw_rescale_factors(gen, n_resc, s.rescale_factors)
                resc_rows, region_query = self._rescaled_locals(
                    loc,
                    b,
                    n_plain,
                    factors,
                    need_cls=self.distill,
                    region=has("css"),
                    mid=mid,
                    inter_norm=inter_norm,
                    rescale=rescale,
                    view_chunk=view_chunk,
                )
                cls_rows.extend(resc_rows)

        # Teacher (no gradients): globals for distillation / relation, the composite up to the mid block.
        t_glob = t_mem = None
        if self.teacher is not None:
            with torch.no_grad():
                t_vit = self.teacher["vit"]
                if self.teacher_full:
                    t_glob = E.forward_tokens(
                        t_vit, g, return_qkv_last=has("csm_attn"), inter_index=None, final_rows=1
                    )
                if has("css"):
                    comp = batch["composite"]
                    t_comp = E.forward_tokens(
                        t_vit, comp, upto=mid, inter_index=mid, inter_norm=self.teacher["inter_norm"]
                    )
                    t_mem = E.tokens_to_map(t_comp.inter, t_comp.grid, self.num_prefix)

        if self.distill:
            from saip_bench.pretrain.objectives.csm import teacher_temp_at

            with torch.no_grad():
                t_logits = self.teacher["proj"](t_glob.final[:, 0]).float()
            s_logits = self.student["proj"](torch.cat(cls_rows)).float()
            temp = teacher_temp_at(
                step,
                warmup_steps=s.warmup_teacher_temp_steps,
                warmup_temp=s.warmup_teacher_temp,
                final_temp=s.teacher_temp,
            )
            name = "csm" if has("csm") else "dino"
            terms[name] = self.csm_loss(s_logits, t_logits, teacher_temp=temp)
        if has("csm_attn"):
            from saip_bench.pretrain.objectives.attention_relation import attention_relation_loss

            terms["csm_attn"] = attention_relation_loss(
                tuple(t.float() for t in s_glob.qkv), tuple(t.float() for t in t_glob.qkv)
            )
        if has("csr"):
            terms["csr"] = self._csr(g, b, s_glob, gen, view_chunk=view_chunk, rescale=rescale)
        if has("css"):
            from saip_bench.pretrain.objectives.css import css_loss

            queries = [view_chunk(s_glob.inter, 0, b), region_query]
            logits = self.student["css_decoder"](queries, t_mem).float()
            masks = batch["masks"].float()
            inst, region = css_loss(logits[:, :1], masks[:, :1]), css_loss(logits[:, 1:2], masks[:, 1:2])
            terms["css"] = inst + region  # the paper sums the instance and region terms
            terms["css_inst"], terms["css_region"] = inst.detach(), region.detach()
        return terms

    def _rescaled_locals(
        self,
        loc,
        b,
        n_plain,
        factors: Sequence[float],
        *,
        need_cls,
        region,
        mid,
        inter_norm,
        rescale,
        view_chunk,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Run the rescaled local views (one call per factor); returns CLS rows and the region query."""
        vit = self.student["vit"]
        rows: dict[int, torch.Tensor] = {}
        region_query = None
        groups: dict[float, list[int]] = {}
        for i, f in enumerate(factors):
            groups.setdefault(f, []).append(n_plain + i)
        region_view = n_plain + len(factors) - 2  # local L-2 (pasted as the REGION person) is the query
        for f, views in groups.items():
            x = torch.cat([view_chunk(loc, v, b) for v in views])
            x = rescale(x, f, self.patch, keep_aspect=self.s.rescale_keep_aspect)
            want_region = region and region_view in views
            tok = E.forward_tokens(
                vit,
                x,
                upto=None if need_cls else mid,
                inter_index=mid if want_region else None,
                inter_norm=inter_norm if want_region else None,
                final_rows=1,
            )
            for j, v in enumerate(views):
                if need_cls:
                    rows[v] = tok.final[j * b : (j + 1) * b, 0]
                if want_region and v == region_view:
                    region_query = tok.inter[j * b : (j + 1) * b]
        return [rows[v] for v in sorted(rows)], region_query

    def _csr(self, g, b, s_glob, gen, *, view_chunk, rescale) -> torch.Tensor:
        from saip_bench.pretrain.objectives.csr import carry_mask, csr_loss, draw_base_mask, keep_from_mask

        vit, s = self.student["vit"], self.s
        base_grid = E.grid_of(vit, g.shape[-2:])
        big = rescale(view_chunk(g, 1, b), s.csr_scale, self.patch)
        big_grid = E.grid_of(vit, big.shape[-2:])
        base_hidden = draw_base_mask(b, base_grid, s.mask_ratio, generator=gen, device=g.device)
        hidden = carry_mask(base_hidden, big_grid).flatten(1)
        keep_idx, keep_valid = keep_from_mask(hidden)
        tok = E.forward_tokens(
            vit,
            big,
            mask_keep_idx=keep_idx,
            keep_valid=keep_valid,
            upto=s.mid_block,
            inter_index=s.mid_block,
            inter_norm=self.student["inter_norm"],
        )
        cond = view_chunk(s_glob.inter, 0, b)[:, :1]  # global view 1's CLS at the base scale
        pred = self.student["csr_decoder"](tok.inter, keep_idx, big_grid, cond, keep_valid=keep_valid)
        return csr_loss(pred.float(), big.float(), hidden, patch_size=self.patch, norm_pix=s.norm_pix)
