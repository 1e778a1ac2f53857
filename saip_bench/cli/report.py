"""`saip report` (placeholder until its issue lands; owned by the helper building it)."""

from saip_bench.cli.common import fail


def report() -> None:
    """Not built yet."""
    raise fail("saip report is not built yet")
