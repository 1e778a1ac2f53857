"""`saip evaluate` (placeholder until its issue lands; owned by the helper building it)."""

from saip_bench.cli.common import fail


def evaluate() -> None:
    """Not built yet."""
    raise fail("saip evaluate is not built yet")
