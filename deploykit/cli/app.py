"""The ``deploykit`` command. Commands only parse flags and call the library; errors go through one table."""

from __future__ import annotations

import sys

import typer

from deploykit.cli import (
    bench_cmd,
    build_cmd,
    bundle_cmds,
    convert_cmd,
    experiment_cmds,
    inspect_cmd,
    passes_cmd,
    predict_cmd,
    verify_cmd,
)
from deploykit.cli.errors import report
from deploykit.core.version import __version__

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 parity failure, 2 usage error or bad input, 3 conversion failure, "
    "4 bundle/signature/repository verification failure. Set DEPLOYKIT_DEBUG=1 for tracebacks."
)

app = typer.Typer(
    name="deploykit",
    help="Convert Keras, PyTorch and ONNX models into verified TFLite and Core ML artifacts for mobile apps.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deploykit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """deploykit"""


convert_cmd.register(app)
build_cmd.register(app)
bundle_cmds.register(app)
experiment_cmds.register(app)
verify_cmd.register(app)
predict_cmd.register(app)
bench_cmd.register(app)
inspect_cmd.register(app)
passes_cmd.register(app)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # every user-visible failure goes through the one table
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
