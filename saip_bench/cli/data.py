"""`saip data` (placeholder; owned by the helper building synth/check)."""

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("synth")
def synth() -> None:
    """Not built yet."""
