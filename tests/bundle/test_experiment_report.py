"""``deploykit experiment report`` on simulated event logs with a known effect."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploykit.bundle.events import append, summarize
from deploykit.bundle.experiment import assign
from deploykit.core.errors import InputError, UsageError

EXPERIMENT = {"name": "head-v2", "salt": hashlib.sha256(b"simulated").hexdigest(), "holdout_basis_points": 1000,
              "arms": [{"name": "control", "basis_points": 4500}, {"name": "treatment", "basis_points": 4500}]}
MEANS = {"control": 0.50, "treatment": 0.60, "holdout": 0.50}  # the treatment is 0.1 better
RELEASES = {"control": ("1.0.0", "fp32"), "treatment": ("1.1.0", "fp32"), "holdout": ("1.0.0", "fp32")}


def simulate(path: Path, devices: int = 10_000, seed: int = 7) -> dict[str, list[float]]:
    """Devices assigned as the client assigns them; each logs an install and 1-5 ``score`` events around its arm's
    mean (a device effect of sd 0.5 plus noise of sd 1) and some ``opened`` counts. Returns each arm's per-device
    means, what the report must compute from."""
    rng = np.random.default_rng(seed)
    per_device: dict[str, list[float]] = {"control": [], "treatment": [], "holdout": []}
    lines = []
    for i in range(devices):
        device = f"device-{i}"
        arm = assign(EXPERIMENT, device)
        version, variant = RELEASES[arm]
        base = {"device": device, "model": "com.example.classifier", "experiment": "head-v2", "arm": arm,
                "ts": "2026-05-02T08:00:00Z"}
        lines.append({**base, "event": "install", "value": None, "version": version, "variant": variant})
        own = MEANS[arm] + rng.normal(0, 0.5)
        values = own + rng.normal(0, 1, size=int(rng.integers(1, 6)))
        lines += [{**base, "event": "score", "value": float(v)} for v in values]
        lines += [{**base, "event": "opened", "value": None}] * int(rng.integers(0, 3))
        per_device[arm].append(float(np.mean(values)))
    path.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    return per_device


def test_report_finds_the_known_effect_with_welch_intervals(tmp_path):
    from scipy import stats

    truth = simulate(tmp_path / "events.jsonl", devices=40_000)
    report = summarize(tmp_path / "events.jsonl", metric="score")
    arms = {a.name: a for a in report.arms}
    assert [a.name for a in report.arms] == ["control", "treatment", "holdout"]
    assert report.control == "control" and report.excluded_devices == 0
    for name, arm in arms.items():
        values = np.array(truth[name])
        assert arm.devices == len(values) and arm.metric.n == len(values)
        assert arm.releases == ("/".join(RELEASES[name]),)
        assert math.isclose(arm.metric.mean, values.mean(), rel_tol=1e-12)
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        assert math.isclose(arm.metric.high - arm.metric.low, 2 * half, rel_tol=1e-9)
        assert abs(arm.metric.mean - MEANS[name]) < 4 * half / 1.96  # the truth within four standard errors
    difference = arms["treatment"].difference
    welch = stats.ttest_ind(truth["treatment"], truth["control"], equal_var=False).confidence_interval(0.95)
    assert math.isclose(difference.low, welch.low, rel_tol=1e-9) and math.isclose(difference.high, welch.high, rel_tol=1e-9)
    assert difference.low > 0  # the effect is found: the interval excludes 0 ...
    assert abs(difference.mean - 0.1) < 4 * (difference.high - difference.low) / 2 / 1.96  # ... and estimates it
    assert abs(arms["holdout"].difference.mean) < 4 * (arms["holdout"].difference.high - arms["holdout"].difference.mean) / 1.96
    assert arms["control"].difference is None
    print("\n".join(_cli(tmp_path, "experiment", "report", tmp_path / "events.jsonl", "--metric", "score").stdout.splitlines()))


def test_without_a_metric_counts_only_and_json_round_trips(tmp_path):
    simulate(tmp_path / "events.jsonl", devices=2000)
    report = summarize(tmp_path / "events.jsonl")
    assert all(a.metric is None and a.difference is None for a in report.arms)
    assert sum(a.devices for a in report.arms) == 2000
    shown = _cli(tmp_path, "experiment", "report", tmp_path / "events.jsonl", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["arms"][0]["devices"] == report.arms[0].devices


def test_devices_in_two_arms_are_left_out_and_counted(tmp_path):
    log = tmp_path / "events.jsonl"
    for arm, value in (("control", 1.0), ("treatment", 2.0)):
        for device in ("a", "b", "shared"):
            append(log, {"ts": "2026-05-02T08:00:00Z", "device": f"{arm}-{device}" if device != "shared" else device,
                         "experiment": "x", "arm": arm, "event": "score", "value": value})
    report = summarize(log, metric="score")
    assert report.excluded_devices == 1 and any("more than one arm" in n for n in report.notes)
    assert {a.name: a.metric.n for a in report.arms} == {"control": 2, "treatment": 2}
    assert report.arms[1].difference.mean == 1.0


def test_bad_logs_are_refused_with_the_line(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text('{"ts": "t", "device": "d", "experiment": "x", "arm": "a", "event": "e", "value": 1}\nnot json\n')
    with pytest.raises(InputError, match="events.jsonl:2: not JSON"):
        summarize(log)
    log.write_text('{"ts": "t", "device": "d", "experiment": "x", "arm": "a", "event": "e", "value": "high"}\n')
    with pytest.raises(InputError, match="value must be a finite number"):
        summarize(log)
    log.write_text('{"ts": "t", "device": "d", "experiment": "x", "arm": "a", "event": "e", "value": 1}\n'
                   '{"ts": "t", "device": "d", "experiment": "y", "arm": "a", "event": "e", "value": 1}\n')
    with pytest.raises(UsageError, match="2 experiments: x, y"):
        summarize(log)
    assert summarize(log, experiment="y").other_experiments == ("x",)
    refused = _cli(tmp_path, "experiment", "report", log)
    assert refused.returncode == 2 and "--experiment" in refused.stderr


def _cli(cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
