"""`saip pretrain` (placeholder until its issue lands; owned by the helper building it)."""

from saip_bench.cli.common import fail


def pretrain() -> None:
    """Not built yet."""
    raise fail("saip pretrain is not built yet")
