"""Experiment events: the JSONL log the reference client writes and ``deploykit experiment report`` reads.

One JSON object per line, sorted keys::

    {"arm": "treatment", "device": "3f2a...", "event": "install", "experiment": "head-v2",
     "model": "com.example.classifier", "ts": "2026-05-02T08:00:00Z", "value": null,
     "variant": "fp32", "version": "1.1.0"}
    {"arm": "treatment", "device": "3f2a...", "event": "top1_correct", "experiment": "head-v2",
     "model": "com.example.classifier", "ts": "2026-05-02T08:01:12Z", "value": 1}

``install`` events come from the client when a device's arm (or the holdout's model) is in place; every other
event is an outcome the app records (``client.record_event``; the Kotlin and Swift updaters' ``recordEvent``),
attributed to the arm whose model the device runs.

The report's unit is the device, not the event: events of one device are not independent, so each device's
metric is the mean of its values, and an arm's mean is the mean over its devices, with a Student t interval;
the difference to the control arm has Welch's interval (unequal variances, Welch-Satterthwaite degrees of
freedom). A device seen in two arms of one experiment (assignment is sticky, so only a corrupted or merged log
does that) is left out and counted.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit.core.errors import InputError, UsageError

INSTALL = "install"
HOLDOUT = "holdout"
MAX_LINE = 64 * 1024
_EVENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_FIELDS = ("ts", "device", "experiment", "arm", "event", "value")


def check_event_name(event: str) -> str:
    if not _EVENT.match(event) or event == INSTALL:
        raise UsageError(f"event name {event!r}: letters, digits and _ . : - (at most 64), not {INSTALL!r}")
    return event


def check_value(value: float | int | None) -> float | int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise UsageError(f"event value {value!r} is not a finite number")
    return value


def append(path: str | Path, record: dict[str, Any]) -> None:
    """One line, written with one ``write`` on a file opened for appending (concurrent writers do not interleave)."""
    line = json.dumps(record, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95 % interval; ``n`` devices (None for a difference), ``df`` the t distribution's."""

    mean: float
    low: float | None
    high: float | None
    n: int | None = None
    sd: float | None = None
    df: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"mean": self.mean, "ci95": None if self.low is None else [self.low, self.high], "df": self.df}
        if self.n is not None:
            data.update(n=self.n, sd=self.sd)
        return data


@dataclass(frozen=True)
class ArmSummary:
    name: str
    devices: int  # devices with an install event
    releases: tuple[str, ...]  # "version/variant" of the install events
    events: dict[str, int]  # outcome events by name
    metric: Estimate | None = None
    difference: Estimate | None = None  # metric minus control's
    relative: float | None = None  # difference / control's mean

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "devices": self.devices, "releases": list(self.releases), "events": self.events,
                "metric": self.metric.to_json() if self.metric else None,
                "difference": self.difference.to_json() if self.difference else None, "relative": self.relative}


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    metric: str | None
    control: str | None
    arms: tuple[ArmSummary, ...]
    lines: int
    other_experiments: tuple[str, ...] = ()
    excluded_devices: int = 0  # seen in more than one arm
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "metric": self.metric, "control": self.control, "lines": self.lines,
                "confidence": 0.95, "arms": [a.to_json() for a in self.arms],
                "excluded_devices": self.excluded_devices, "other_experiments": list(self.other_experiments),
                "notes": list(self.notes)}


def summarize(path: str | Path, *, metric: str | None = None, experiment: str | None = None,
              control: str = "control") -> ExperimentReport:
    """Per arm: devices installed, outcome events, and ``metric``'s per-device mean with its 95 % interval."""
    records, lines = _read(Path(path))
    names = sorted({r["experiment"] for r in records})
    if experiment is None:
        if len(names) != 1:
            raise UsageError(f"{path} holds {len(names)} experiments" + (f": {', '.join(names)}" if names else ""),
                             hint="choose one with --experiment" if names else "is the log empty?")
        experiment = names[0]
    elif experiment not in names:
        raise InputError(f"{path} has no events of experiment {experiment!r}", hint=f"it has: {', '.join(names) or 'none'}")
    records = [r for r in records if r["experiment"] == experiment]

    arms_of: dict[str, set[str]] = {}
    for r in records:
        arms_of.setdefault(r["device"], set()).add(r["arm"])
    mixed = {d for d, arms in arms_of.items() if len(arms) > 1}
    installs: dict[str, set[str]] = {}
    releases: dict[str, set[str]] = {}
    counts: dict[str, dict[str, int]] = {}
    sums: dict[str, dict[str, list[float]]] = {}  # arm -> device -> [sum, count] of the metric
    for r in records:
        if r["device"] in mixed:
            continue
        arm = r["arm"]
        counts.setdefault(arm, {})
        if r["event"] == INSTALL:
            installs.setdefault(arm, set()).add(r["device"])
            if r.get("version"):
                releases.setdefault(arm, set()).add(f"{r['version']}/{r.get('variant') or '?'}")
            continue
        counts[arm][r["event"]] = counts[arm].get(r["event"], 0) + 1
        if metric is not None and r["event"] == metric and r["value"] is not None:
            acc = sums.setdefault(arm, {}).setdefault(r["device"], [0.0, 0])
            acc[0] += r["value"]
            acc[1] += 1

    order = sorted(counts, key=lambda a: (a != control, a == HOLDOUT, a))
    estimates = {arm: _mean([s / n for s, n in sums.get(arm, {}).values()]) for arm in order} if metric else {}
    base = estimates.get(control)
    notes = []
    if metric and not any(estimates.values()):
        notes.append(f"no {metric!r} event has a value")
    if control not in counts:
        notes.append(f"no arm named {control!r}: no differences (choose the baseline with --control)")
    summaries = []
    for arm in order:
        own = estimates.get(arm)
        difference = _difference(own, base) if arm != control and own and base else None
        relative = difference.mean / base.mean if difference and base.mean else None
        summaries.append(ArmSummary(arm, len(installs.get(arm, ())), tuple(sorted(releases.get(arm, ()))),
                                    dict(sorted(counts[arm].items())), own, difference, relative))
    if mixed:
        notes.append(f"{len(mixed)} devices appear in more than one arm and are left out")
    return ExperimentReport(experiment, metric, control if control in counts else None, tuple(summaries), lines,
                            tuple(n for n in names if n != experiment), len(mixed), tuple(notes))


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    if not path.is_file():
        raise InputError(f"event log {path} not found")
    records, number = [], 0
    with open(path, "rb") as handle:
        while True:
            raw = handle.readline(MAX_LINE + 1)
            if not raw:
                break
            number += 1
            if len(raw) > MAX_LINE:
                raise InputError(f"{path}:{number}: line longer than {MAX_LINE} bytes")
            if not raw.strip():
                continue
            records.append(_record(raw, f"{path}:{number}"))
    return records, number


def _record(raw: bytes, where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{where}: not JSON ({exc})") from None
    if not isinstance(record, dict) or any(k not in record for k in _FIELDS):
        raise InputError(f"{where}: an event needs {', '.join(_FIELDS)}")
    for key in ("device", "experiment", "arm", "event"):
        if not isinstance(record[key], str) or not record[key]:
            raise InputError(f"{where}: {key} must be a non-empty string")
    value = record["value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise InputError(f"{where}: value must be a finite number or null")
    return record


def _mean(values: list[float]) -> Estimate | None:
    """Mean of per-device values with a Student t 95 % interval (none below two devices)."""
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, None, None, n=n, sd=None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = _t975(n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n=n, sd=sd, df=float(n - 1))


def _difference(arm: Estimate, control: Estimate) -> Estimate | None:
    """``arm - control`` with Welch's 95 % interval."""
    diff = arm.mean - control.mean
    if arm.sd is None or control.sd is None:
        return Estimate(diff, None, None)
    va, vc = arm.sd ** 2 / arm.n, control.sd ** 2 / control.n
    se = math.sqrt(va + vc)
    if se == 0:
        return Estimate(diff, diff, diff, df=None)
    df = (va + vc) ** 2 / (va ** 2 / (arm.n - 1) + vc ** 2 / (control.n - 1))
    half = _t975(df) * se
    return Estimate(diff, diff - half, diff + half, df=df)


def _t975(df: float) -> float:
    """Student's t 0.975 quantile (scipy: installed with scikit-learn, imported only for a report)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))
