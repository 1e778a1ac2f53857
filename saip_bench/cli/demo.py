"""`saip demo` (placeholder until its issue lands; owned by the helper building it)."""

from saip_bench.cli.common import fail


def demo() -> None:
    """Not built yet."""
    raise fail("saip demo is not built yet")
