"""``deploykit build``: the whole chain described once in deploykit.toml (docs/build.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import JsonOutput, Quiet

HELP = """Convert, verify and bundle every model a deploykit.toml names, as one reviewed build.

The config lists models (source, inputs, image input, labels, targets, variants per target, calibration and parity data, bundle metadata) and the signing key (a path or an environment variable, never the key itself). Every (model, target, variant) is one job, in OUT/jobs/MODEL/TARGET/VARIANT/; a job whose inputs did not change (content hashes of the source and data files, its config section, deploykit's and the tools' versions) is reused, not rebuilt. Jobs run in worker processes (--jobs). The build record is OUT/deploykit-build.json and its page OUT/report.html (every variant with size, parity, accuracy and latency, and plots). The config is checked before anything runs: an error names the line, the key, the value and what is allowed.

With --publish the bundles go to the config's \\[publish] repository and channel, only when every job built and passed its gates.

With --baseline the build is compared with a previous one: per job, parity must pass, and accuracy on the validation data, artifact size and host latency may not regress beyond the limits in \\[models.gates] (accuracy_drop in points, size_growth and latency_growth in percent); --junit writes one test case per job and gate.

require_accelerators in a model's section (e.g. \\["gpu"], or per target { tflite = \\["gpu"], executorch = \\["delegate"] }) is a gate without a baseline: every op of each artifact must run on that accelerator by the conversion's compatibility analysis; a static analysis (Core ML off macOS) or an unavailable one fails it.

Exit codes: 0 every job built, passed parity and its gates, 1 a parity or gate failure, 2 a bad config, 3 a conversion failure.

[bold]Examples[/]

  deploykit build --init model.keras          # write a commented deploykit.toml for this model

  deploykit build                             # ./deploykit.toml

  deploykit build ci/deploykit.toml --jobs 2 --only digits/coreml

  deploykit build --plan --json               # the job list, for a CI matrix

  deploykit build --executor ray --ray-address ray://head:10001   # one Ray task per job

  deploykit build --force                     # rebuild every job

  deploykit build --baseline last/deploykit-build.json --junit gates.xml   # fail on a regression
"""


def build(
    config: Annotated[Optional[Path], typer.Argument(help="The config file (default ./deploykit.toml).")] = None,
    init: Annotated[Optional[str], typer.Option("--init", metavar="MODEL", help="Write a commented starter config for MODEL to CONFIG (default deploykit.toml) and stop.")] = None,
    only: Annotated[Optional[list[str]], typer.Option("--only", metavar="MODEL[/TARGET[/VARIANT]]", help="Build only these jobs (repeatable).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Worker processes (default: build.jobs in the config, else one per core).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild every selected job, changed or not.")] = False,
    plan_only: Annotated[bool, typer.Option("--plan", help="Print the jobs and whether each would run or be reused; build nothing.")] = False,
    no_bundle: Annotated[bool, typer.Option("--no-bundle", help="Convert and verify only.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (worker processes on this machine) or ray (one Ray task per job; needs the ray extra).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --executor ray: an existing cluster (default: start a local Ray instance with --jobs CPUs).")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A previous deploykit-build.json (or deploykit-report.json, or a folder holding one): fail with exit 1 when a job regresses beyond the config's \\[models.gates].")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write the gates as JUnit XML (one test case per job and gate).")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish the bundles to the config's \\[publish] repository and channel, only when every job built and passed its gates.")] = False,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
) -> None:
    from deploykit.cli.output import stdout_json, terminal
    from deploykit.orchestration.config import CONFIG_NAME, load_config
    from deploykit.orchestration.run import BuildOptions
    from deploykit.orchestration.run import build as run_build

    if init is not None:
        from deploykit.orchestration.starter import write_starter

        path = write_starter(init, config or Path(CONFIG_NAME))
        terminal().print(f"wrote {path}: review it, then run `deploykit build {path}`")
        return
    if executor not in ("local", "ray"):
        from deploykit.core.errors import UsageError

        raise UsageError(f"--executor {executor!r}: use local or ray")
    loaded = load_config(config)
    if plan_only:
        _print_plan(loaded, tuple(only or ()), force, json_output)
        return
    from deploykit.cli.job_rows import JobRows

    progress = JobRows(quiet=quiet or json_output)
    result = run_build(loaded, BuildOptions(only=tuple(only or ()), jobs=jobs, force=force, bundle=not no_bundle,
                                                  baseline=baseline, junit=junit, executor=executor,
                                                  ray_address=ray_address, publish=publish), progress)
    if json_output:
        stdout_json(result.to_json())
    elif not quiet:
        _print_result(result, terminal())
    _exit_for(result)


def _print_plan(config, only, force, json_output) -> None:
    from deploykit.cli.output import stdout_json, terminal
    from deploykit.orchestration.jobs import previous
    from deploykit.orchestration.plan import plan

    rows = [{**job.to_json(), "action": "run" if force or previous(config.out, job) is None else "reuse"}
            for job in plan(config, only)]
    if json_output:
        stdout_json({"config": str(config.path), "jobs": rows})
        return
    console = terminal()
    for row in rows:
        console.print(f"{row['action']:>5}  {row['id']}")


def _print_result(result, console) -> None:
    from rich.table import Table

    from deploykit.report.units import human_size

    table = Table(title=f"{len(result.jobs)} jobs, {result.workers} worker(s), {result.seconds} s")
    for column in ("job", "status", "time", "size", "parity", "top-1", "latency"):
        table.add_column(column)
    for job in result.jobs:
        status = "reused" if job.get("reused") else job["status"]
        colour = {"ok": "green", "reused": "cyan"}.get(status, "red")
        parity = {True: "pass", False: "FAIL", None: "-"}[job.get("parity")]
        accuracy = job.get("accuracy") or {}
        top1 = f"{accuracy['top1']:g} %" if accuracy else "-"
        latency = f"{job['latency']['median_ms']:.2f} ms" if job.get("latency") else "-"
        size = human_size(job["size_bytes"]) if job.get("size_bytes") else "-"
        table.add_row(job["id"], f"[{colour}]{status}[/]", f"{job['seconds']} s", size, parity, top1, latency)
    console.print(table)
    for job in result.failed:
        log = result.record_path.parent / "jobs" / job["id"] / "log.txt" if result.record_path else None
        console.print(f"[red]{job['id']}[/]: {job.get('message')}", soft_wrap=True)
        if log is not None and log.is_file():
            tail = [line for line in log.read_text("utf-8", errors="replace").splitlines() if line.strip()][-5:]
            for line in tail:
                console.print(f"  [dim]{line[:200]}[/]", markup=True, highlight=False)
            console.print(f"  full log: {log}")
    _print_gates(result, console)
    if result.bundles:
        folder = Path(result.bundles[0]["bundle"]).parent
        console.print(f"{len(result.bundles)} signed bundles in {folder}: "
                      + ", ".join(Path(b["bundle"]).name for b in result.bundles), soft_wrap=True)
    if result.published is not None:
        if "skipped" in result.published:
            console.print(f"[red]not published[/]: {result.published['skipped']}")
        else:
            console.print(f"published: channel {result.published['channel']} version {result.published['version']} "
                          f"in {result.published['repo']}")
    if result.record_path:
        console.print(f"record: {result.record_path}")
    if result.report_path:
        console.print(f"report: {result.report_path}")


def _print_gates(result, console) -> None:
    from rich.table import Table

    if not result.gates:
        return
    shown = [g for g in result.gates if g.status != "passed"]
    passed = len(result.gates) - len(shown)
    console.print(f"gates: {passed} of {len(result.gates)} passed" + (", the others:" if shown else ""))
    if not shown:
        return
    table = Table()
    for column in ("job", "gate", "baseline -> now", "limit", "result"):
        table.add_column(column, overflow="fold")
    for gate in shown:
        colour = "red" if gate.status == "failed" else "yellow"
        table.add_row(gate.job, gate.gate, f"{_number(gate.baseline)} -> {_number(gate.current)}", gate.limit,
                      f"[{colour}]{gate.status}[/]" + (f": {gate.message}" if gate.message else ""))
    console.print(table)


def _number(value) -> str:
    return "-" if value is None else f"{value:g}"


def _exit_for(result) -> None:
    from deploykit.core.errors import EXIT_CONVERSION, EXIT_PARITY

    statuses = {job["status"] for job in result.jobs}
    if "failed" in statuses:
        raise typer.Exit(EXIT_CONVERSION)
    if "parity-failed" in statuses or result.gates_failed:
        raise typer.Exit(EXIT_PARITY)


def register(app: typer.Typer) -> None:
    app.command("build", help=HELP, no_args_is_help=False)(build)
