"""SAIP heads, one file each (see ``saip_bench.pretrain`` for the contract)."""

from saip_bench.pretrain.heads.csr_decoder import CSRDecoder, sincos_pos_embed_2d
from saip_bench.pretrain.heads.css_decoder import CrossAttentionBlock, CSSDecoder
from saip_bench.pretrain.heads.projection import ProjectionHead

__all__ = ["CSRDecoder", "CSSDecoder", "CrossAttentionBlock", "ProjectionHead", "sincos_pos_embed_2d"]
