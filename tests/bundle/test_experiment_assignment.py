"""Experiment assignment: a pure function of (salt, shares, device id); sticky, disjoint, shares within tolerance.

The shares are measured on 100,000 simulated ids per experiment; the tolerance is one percentage point per group
(a binomial share of 45 % on 100,000 ids has a standard deviation of 0.16 points, so one point is six of them).
The golden vectors in experiment_vectors.json are recomputed here from hashlib alone, and the Kotlin helper is
checked against the same file (test_experiment_templates.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from deploykit.bundle.experiment import (
    HOLDOUT,
    ArmSpec,
    assign,
    basis_points,
    bucket,
    check,
    check_index,
    is_active,
    parse_moment,
)
from deploykit.bundle.repository import rollout_bucket
from deploykit.core.errors import IntegrityError, UsageError

VECTORS = Path(__file__).with_name("experiment_vectors.json")
IDS = [f"device-{i}" for i in range(100_000)]
TOLERANCE_POINTS = 1.0


def experiment(arms: dict[str, int], holdout: int = 0, salt: str = "head-v2", **extra) -> dict:
    return {"name": "head-v2", "salt": hashlib.sha256(salt.encode()).hexdigest(), "start": "2026-05-01T00:00:00Z",
            "end": "2026-05-15T00:00:00Z", "holdout_basis_points": holdout,
            "arms": [{"name": n, "basis_points": b} for n, b in arms.items()], **extra}


@pytest.mark.parametrize("arms, holdout", [
    ({"control": 4500, "treatment": 4500}, 1000),
    ({"control": 5000, "b": 3000, "c": 1500}, 500),
    ({"a": 3333, "b": 3333, "c": 3334}, 0),
    ({"control": 9800}, 200),
])
def test_shares_hold_within_one_point_on_100000_ids(arms, holdout):
    exp = experiment(arms, holdout)
    counts = Counter(assign(exp, device) for device in IDS)
    expected = {**{n: b / 100 for n, b in arms.items()}, **({HOLDOUT: holdout / 100} if holdout else {})}
    assert set(counts) == set(expected)
    deviations = {group: counts[group] / len(IDS) * 100 - share for group, share in expected.items()}
    print("share deviations (percentage points):", {g: round(d, 3) for g, d in deviations.items()})
    assert all(abs(d) <= TOLERANCE_POINTS for d in deviations.values()), deviations


def test_groups_are_the_bucket_ranges_in_order_so_disjoint_and_sticky():
    exp = experiment({"control": 4500, "treatment": 4500}, 1000)
    for device in IDS[:20_000]:
        place, group = bucket(exp["salt"], device), assign(exp, device)
        assert group == ("control" if place < 4500 else "treatment" if place < 9000 else HOLDOUT)
        assert assign(exp, device) == group  # a pure function: the same device, the same group


def test_a_moved_end_or_another_experiment_changes_no_group():
    exp = experiment({"control": 4500, "treatment": 4500}, 1000)
    before = [assign(exp, device) for device in IDS[:20_000]]
    moved = {**exp, "end": "2026-07-01T00:00:00Z"}
    assert [assign(moved, device) for device in IDS[:20_000]] == before
    other = experiment({"a": 5000, "b": 5000}, salt="unrelated")  # its own salt: independent of the first
    together = Counter((assign(exp, d), assign(other, d)) for d in IDS)
    assert [assign(exp, device) for device in IDS[:20_000]] == before
    for group in ("control", "treatment"):  # the second experiment's split is even inside each arm of the first
        half = together[(group, "a")] / (together[(group, "a")] + together[(group, "b")])
        assert abs(half - 0.5) < 0.01


def test_the_experiment_bucket_is_the_rollout_bucket():
    salt = hashlib.sha256(b"x").hexdigest()
    for device in IDS[:2000]:
        assert rollout_bucket(salt, device) == bucket(salt, device) / 100


def test_golden_vectors():
    doc = json.loads(VECTORS.read_text("utf-8"))
    for exp in doc["experiments"]:
        for vector in exp["vectors"]:
            digest = hashlib.sha256(f"{exp['salt']}:{vector['device']}".encode("utf-8")).digest()
            assert int.from_bytes(digest[:8], "big") % 10_000 == vector["bucket"] == bucket(exp["salt"], vector["device"])
            assert assign(exp, vector["device"]) == vector["group"]
    assert {v["group"] for e in doc["experiments"] for v in e["vectors"]} >= {"control", "treatment", HOLDOUT, "a", "b", "c"}


def test_shares_that_do_not_add_up_and_other_broken_experiments_are_refused():
    check(experiment({"control": 4500, "treatment": 4500}, 1000), "index")
    with pytest.raises(IntegrityError, match="add up to 99.99 %, not 100 %"):
        check(experiment({"control": 4500, "treatment": 4499}, 1000), "index")
    with pytest.raises(IntegrityError, match="add up to 110 %"):
        check(experiment({"control": 5000, "treatment": 5000}, 1000), "index")
    with pytest.raises(IntegrityError, match="distinct"):
        check({**experiment({"a": 5000}), "arms": [{"name": "a", "basis_points": 5000}] * 2}, "index")
    with pytest.raises(IntegrityError, match="not 'holdout'"):
        check(experiment({"holdout": 5000, "b": 5000}), "index")
    with pytest.raises(IntegrityError, match="before it starts"):
        check(experiment({"a": 5000, "b": 5000}, end="2026-04-01T00:00:00Z"), "index")
    index = {"models": {"com.example.a": {}, "com.example.b": {"experiment": experiment({"a": 5000, "b": 4000})}}}
    with pytest.raises(IntegrityError, match="com.example.b: the shares of 'head-v2' add up to 90 %"):
        check_index(index, "channel index stable")


def test_active_window_is_start_inclusive_end_exclusive():
    exp = experiment({"a": 5000, "b": 5000})
    start = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    assert not is_active(exp, start - dt.timedelta(seconds=1))
    assert is_active(exp, start)
    assert not is_active(exp, dt.datetime(2026, 5, 15, tzinfo=dt.timezone.utc))


def test_arm_and_share_parsing():
    assert ArmSpec.parse("control=1.0.0:fp32:45") == ArmSpec("control", "1.0.0", "fp32", 4500)
    assert ArmSpec.parse("fp16=2.0.0-rc.1@2000001:executorch-fp16:33.33") == ArmSpec(
        "fp16", "2.0.0-rc.1", "executorch-fp16", 3333, 2000001)
    assert basis_points("12.5", "--holdout") == 1250 and basis_points("0", "--holdout") == 0
    for bad in ("control=1.0.0:fp32", "control1.0.0:fp32:45", "Control=1.0.0:fp32:45", "holdout=1.0.0:fp32:10",
                "c=1.0:fp32:45", "c=1.0.0:FP32:45", "c=1.0.0:fp32:33.333", "c=1.0.0:fp32:0", "c=1.0.0:fp32:101",
                "c=1.0.0@x:fp32:45"):
        with pytest.raises(UsageError):
            ArmSpec.parse(bad)
    assert parse_moment("2026-05-01", "--end") == dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(UsageError):
        parse_moment("May 1st", "--end")
