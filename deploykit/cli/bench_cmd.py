"""``deploykit bench``: host latency and peak memory of TFLite, ExecuTorch and NCNN artifacts with their runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploykit.cli.options import JsonOutput

HELP = """Time TFLite artifacts on this machine with LiteRT (XNNPACK delegate), ExecuTorch programs (.pte) with the ExecuTorch runtime and NCNN pairs (.ncnn folders) with the ncnn runtime on the CPU, one child process each.

Reports median and p90 latency over --runs timed invocations after --warmup untimed ones, model
load time and peak resident memory. Give several artifacts (or a convert --out folder) to see
variants side by side.

  deploykit bench dist/model.int8.tflite --threads 2

  deploykit bench dist/ --runs 100 --json > bench.json

  deploykit bench dist/model.int8.tflite dist/model.int8.pte --threads 2

  deploykit bench dist/model.fp32.ncnn dist/model.fp16.ncnn
"""


def register(app: typer.Typer) -> None:
    app.command("bench", help=HELP, no_args_is_help=True)(bench)


def bench(
    artifacts: Annotated[list[Path], typer.Argument(help=".tflite or .pte files, .ncnn folders, or folders written by deploykit convert.")],
    threads: Annotated[int, typer.Option("--threads", "-j", help="CPU threads of the runtime.")] = 1,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed invocations first.")] = 10,
    runs: Annotated[int, typer.Option("--runs", "-n", help="Timed invocations.")] = 50,
    no_xnnpack: Annotated[bool, typer.Option("--no-xnnpack", help="LiteRT's builtin kernels instead of XNNPACK.")] = False,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.cli.output import StepProgress, stdout_json
    from deploykit.core.errors import InputError
    from deploykit.targets import TARGETS, for_path

    paths = []
    for item in artifacts:
        if item.is_dir() and not any(item.suffix == t.suffix for t in TARGETS.values()):  # a convert --out folder
            paths += [p for t in TARGETS.values() if t.timed_here for p in sorted(item.glob("*" + t.suffix))]
        else:
            paths.append(item)
    if not paths:
        raise InputError("no .tflite, .pte or .ncnn artifacts to time", hint="give artifacts or a folder that holds them")
    progress = StepProgress(quiet=json_output)
    results = []
    for path in paths:
        with progress.step(f"Timing {path.name}"):
            results.append(for_path(path).bench(path, threads=threads, warmup=warmup, runs=runs, xnnpack=not no_xnnpack))
    if json_output:
        stdout_json([r.to_json() for r in results])
        return
    _print(results)


def _print(results) -> None:
    from rich.console import Console
    from rich.table import Table

    from deploykit.report.units import human_size

    first = results[0]
    table = Table(title=f"{first.threads} thread(s), {first.warmup} warm-up + {first.runs} runs", title_justify="left")
    longest = max(len(Path(r.artifact).name) for r in results)
    for column in ("artifact", "runtime", "size", "median", "p90", "load", "peak memory"):
        if column == "artifact":  # whole names: they are what a user compares and copies
            table.add_column(column, no_wrap=True, min_width=longest)
        else:
            table.add_column(column, justify="left" if column == "runtime" else "right")
    for r in results:
        runtime = {".pte": "ExecuTorch", ".ncnn": "ncnn", ".param": "ncnn"}.get(Path(r.artifact).suffix, "LiteRT")
        runtime = f"{runtime}, {r.delegate}"
        table.add_row(Path(r.artifact).name, runtime, human_size(r.size_bytes), _ms(r.median_ms), _ms(r.p90_ms),
                      f"{r.load_ms:.0f} ms", f"{r.peak_rss_mb:.0f} MB (+{r.model_rss_mb:.0f})")
    Console(highlight=False).print(table)


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
