"""The ``saip`` application: mounts one module per command; heavy imports happen inside the commands."""

from __future__ import annotations

from typing import Annotated

import typer

from saip_bench import __version__
from saip_bench.cli import bench, convert, data, demo, evaluate, pretrain, report
from saip_bench.cli.common import console, setup_logging

app = typer.Typer(
    name="saip",
    help="Pretrain lightweight human-centric backbones with SAIP and benchmark them on 12 datasets.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"saip-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    *,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(verbose)


# Both take the config's key=value overrides as extra arguments (each command checks them).
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
WITH_OVERRIDES = "[OPTIONS] [KEY=VALUE]..."
app.command("pretrain", context_settings=OVERRIDES, options_metavar=WITH_OVERRIDES)(pretrain.pretrain)
app.command("evaluate", context_settings=OVERRIDES, options_metavar=WITH_OVERRIDES)(evaluate.evaluate)
app.command("report")(report.report)
app.command("demo")(demo.demo)
app.add_typer(data.app, name="data", help="Synthetic datasets in the real formats, and dataset checks.")
app.command("convert")(convert.convert)
app.add_typer(
    bench.app, name="bench", help="Campaigns: backbones x datasets x seeds, on one GPU, many or Slurm."
)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # python -m saip_bench.cli.app: the console script without the installed wrapper
    main()
