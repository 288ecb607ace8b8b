"""``deploykit experiment start | end | record | report``: parse flags, call deploykit.bundle.experiment / events, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import JsonOutput
from deploykit.cli.output import emit

EXPERIMENT_HELP = """Experiments between model versions: sticky, disjoint device cohorts served from a signed channel.

`start` puts an experiment on a channel, `end` moves its end, `record` logs an outcome event the way an app does, `report` compares the arms of an event log. See docs/experiments.md.
"""

START_HELP = """Put an experiment on a channel: each arm serves a published release (version and variant) to its share of devices.

Arms are NAME=VERSION:VARIANT:PERCENT (VERSION@SEQUENCE when several releases carry the version); the arms' and --holdout's percentages (at most two decimals) must add up to 100. A device's group is sha256("SALT:DEVICE-ID") mod 10000 against the arms' ranges in order, the holdout last: the same device always lands in the same group. While the experiment runs (--start <= now < --end) an arm's devices install the arm's release whatever the rollout says; holdout devices and every device outside the window follow the channel's release with its rollout.

The releases must already be in the repository (`deploykit publish`, e.g. the candidate to this channel with --rollout 0); each arm's bundles are verified again. The channel index is re-signed (its version grows); clients refuse an index whose shares do not add up.

[bold]Examples[/]

  deploykit experiment start head-v2 --model com.example.classifier --repo site/models --channel stable \\
      --arm control=1.0.0:fp32:45 --arm treatment=1.1.0:fp32:45 --holdout 10 --end 2026-06-01 \\
      --sign-key keys/deploykit.key

  # fp16 against fp32 of the same release, half and half, from a given date
  deploykit experiment start fp16-vs-fp32 --model com.example.classifier --repo site/models \\
      --arm control=1.1.0:fp32:50 --arm fp16=1.1.0:fp16:50 --start 2026-06-01 --end 2026-06-15 \\
      --sign-key keys/deploykit.key
"""

END_HELP = """Move the end of a model's experiment: now (stop it) or --at a later time (extend it).

Only the end changes, so no device changes arm. After the end every device follows the channel again; devices that installed an arm with a higher sequence keep it until the channel offers one as high (publish the winner, or re-bundle the loser's artifacts with a higher --sequence).

[bold]Examples[/]

  deploykit experiment end --model com.example.classifier --repo site/models --sign-key keys/deploykit.key

  deploykit experiment end --model com.example.classifier --repo site/models --at 2026-06-20 --sign-key keys/deploykit.key
"""

RECORD_HELP = """Append an outcome event to an event log, attributed to the arm this device's installed model belongs to.

This is the reference for the app updaters' recordEvent: it reads DEST's state (which `deploykit pull` wrote) and writes nothing when the installed model is no experiment arm's. VALUE is a number (a latency, 1/0 for a success), or left out for a count.

[bold]Examples[/]

  deploykit experiment record top1_correct --value 1 --dest ./models --name com.example.classifier --events events.jsonl
"""

REPORT_HELP = """Summarize an experiment's event log per arm: devices installed, outcome events, a metric's mean with its 95 % interval and the difference to the control arm.

The unit is the device: each device's metric is the mean of its values, an arm's mean is over its devices (Student t interval); the difference to --control has Welch's interval. Devices found in two arms are left out and counted.

[bold]Examples[/]

  deploykit experiment report events.jsonl

  deploykit experiment report events.jsonl --metric top1_correct --control control --json
"""

def register(root: typer.Typer) -> None:
    group = typer.Typer(help=EXPERIMENT_HELP, no_args_is_help=True, rich_markup_mode="rich")
    group.command("start", help=START_HELP, no_args_is_help=True)(start)
    group.command("end", help=END_HELP, no_args_is_help=True)(end)
    group.command("record", help=RECORD_HELP, no_args_is_help=True)(record)
    group.command("report", help=REPORT_HELP, no_args_is_help=True)(report)
    root.add_typer(group, name="experiment")


def _channel_lines(result, model: str) -> list[str]:
    lines = [f"channel {result.channel} version {result.version} (expires {result.expires}) in {result.repo}"]
    experiment = result.models[model].get("experiment")
    if experiment:
        groups = [f"{a['name']} {a['version']}/{a['variant']} {a['basis_points'] / 100:g} %" for a in experiment["arms"]]
        if experiment["holdout_basis_points"]:
            groups.append(f"holdout {experiment['holdout_basis_points'] / 100:g} %")
        lines.append(f"  {model} experiment {experiment['name']}: {', '.join(groups)}; "
                     f"{experiment['start']} -> {experiment['end']}")
    return lines


def start(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Experiment name (lowercase letters, digits, - and _).")],
    model: Annotated[str, typer.Option("--model", help="The model's reverse-DNS name, e.g. com.example.classifier.")],
    arm: Annotated[list[str], typer.Option("--arm", metavar="NAME=VERSION:VARIANT:PERCENT", help="One arm (repeat; the order is the order of the bucket ranges).")],
    end: Annotated[str, typer.Option("--end", help="When it ends: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).")],
    sign_key: Annotated[Path, typer.Option("--sign-key", help="Private key that signs the channel index.")],
    repo: Annotated[Path, typer.Option("--repo", help="Repository directory.")] = Path("repo"),
    channel: Annotated[str, typer.Option("--channel", help="Channel name.")] = "stable",
    holdout: Annotated[str, typer.Option("--holdout", help="Percent of devices held out: they follow the channel's release.")] = "0",
    start_at: Annotated[str, typer.Option("--start", help="When it starts: now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).")] = "now",
    salt: Annotated[Optional[str], typer.Option("--salt", help="64 hex digits (default: random). The same salt gives the same assignment.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the model's running or scheduled experiment.")] = False,
    bundle_key: Annotated[Optional[list[Path]], typer.Option("--bundle-key", help="Public key the arms' bundles must be signed by (default: the --sign-key's).")] = None,
    expires_days: Annotated[float, typer.Option("--expires-days", help="Days until clients refuse the index unless re-signed.")] = 7.0,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.experiment import ArmSpec, ExperimentOptions, basis_points, parse_moment, start_experiment
    from deploykit.bundle.signing import load_public_key, load_signing_key

    options = ExperimentOptions(name=name, model=model, arms=tuple(ArmSpec.parse(a) for a in arm),
                                end=parse_moment(end, "--end"), holdout_basis_points=basis_points(holdout, "--holdout"),
                                start=None if start_at == "now" else parse_moment(start_at, "--start"), salt=salt,
                                replace=replace)
    result = start_experiment(repo, channel, options, load_signing_key(sign_key),
                              bundle_keys=[load_public_key(k) for k in bundle_key or ()], expires_days=expires_days)
    emit(result.to_json(), json_output, _channel_lines(result, model))


def end(
    model: Annotated[str, typer.Option("--model", help="The model whose experiment ends.")],
    sign_key: Annotated[Path, typer.Option("--sign-key", help="Private key that signs the channel index.")],
    repo: Annotated[Path, typer.Option("--repo", help="Repository directory.")] = Path("repo"),
    channel: Annotated[str, typer.Option("--channel", help="Channel name.")] = "stable",
    at: Annotated[str, typer.Option("--at", help="The new end: now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC).")] = "now",
    expires_days: Annotated[float, typer.Option("--expires-days", help="Days until clients refuse the index unless re-signed.")] = 7.0,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.experiment import end_experiment, parse_moment
    from deploykit.bundle.signing import load_signing_key

    result = end_experiment(repo, channel, model, load_signing_key(sign_key), at=parse_moment(at, "--at"),
                            expires_days=expires_days)
    emit(result.to_json(), json_output, _channel_lines(result, model))


def record(
    event: Annotated[str, typer.Argument(metavar="EVENT", help="Event name, e.g. top1_correct or latency_ms.")],
    dest: Annotated[Path, typer.Option("--dest", help="The install directory `deploykit pull` used.")],
    name: Annotated[str, typer.Option("--name", help="Model name.")],
    events: Annotated[Path, typer.Option("--events", help="The JSONL event log to append to.")],
    value: Annotated[Optional[float], typer.Option("--value", help="The event's value (none: a count).")] = None,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.client import record_event

    written = record_event(dest, name, event, value, events=events)
    line = (f"{written['experiment']}/{written['arm']}: {event}" + ("" if value is None else f" = {value:g}")
            if written else f"{name}: the installed model is no experiment arm's; nothing recorded")
    emit({"recorded": written}, json_output, [line])


def report(
    events: Annotated[Path, typer.Argument(metavar="EVENTS.jsonl", help="Event log written by `pull --events` and the apps.")],
    metric: Annotated[Optional[str], typer.Option("--metric", help="Event whose values are compared.")] = None,
    experiment: Annotated[Optional[str], typer.Option("--experiment", help="Experiment to report, when the log has several.")] = None,
    control: Annotated[str, typer.Option("--control", help="The arm the others are compared with.")] = "control",
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.events import summarize

    summary = summarize(events, metric=metric, experiment=experiment, control=control)
    emit(summary.to_json(), json_output, report_lines(summary))


def report_lines(summary) -> list[str]:
    """The report as an aligned text table."""
    head = f"experiment {summary.experiment}: {summary.lines} lines"
    if summary.metric:
        head += f"; metric {summary.metric}: per-device mean, 95 % CI (Student t; difference to {summary.control or '-'}: Welch)"
    rows = [["arm", "release", "devices", "events"] + (["mean [95 % CI]", "n", "difference [95 % CI]"] if summary.metric else [])]
    for arm in summary.arms:
        row = [arm.name, ", ".join(arm.releases) or "-", str(arm.devices), str(sum(arm.events.values()))]
        if summary.metric:
            m, d = arm.metric, arm.difference
            row.append(_interval(m.mean, m.low, m.high, signed=False) if m else "-")
            row.append(str(m.n) if m else "0")
            row.append(_interval(d.mean, d.low, d.high, signed=True)
                       + (f" ({arm.relative * 100:+.1f} %)" if arm.relative is not None else "") if d else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head] + ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines + [f"note: {n}" for n in summary.notes]


def _interval(mean: float, low: float | None, high: float | None, *, signed: bool) -> str:
    spec = "+.4f" if signed else ".4f"
    return f"{mean:{spec}}" + (f" [{low:{spec}}, {high:{spec}}]" if low is not None else " [n < 2]")
