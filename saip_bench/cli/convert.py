"""`saip convert` (placeholder until its issue lands; owned by the helper building it)."""

from saip_bench.cli.common import fail


def convert() -> None:
    """Not built yet."""
    raise fail("saip convert is not built yet")
