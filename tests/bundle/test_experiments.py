"""Experiments on a real repository: start / end, the signed index, precedence over the rollout, the client's
reports and event log, refusals (publisher side and client side).

Versions: 1.0.0 published at 100 %, then 1.1.0 at 0 % (the candidate); the experiment compares them. One clock
drives publishing, the experiment window and the client, so expiry and activity are exact.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploykit.bundle.builder import BundleOptions, bundle
from deploykit.bundle.client import STATE_FILE, pull, record_event
from deploykit.bundle.experiment import ArmSpec, ExperimentOptions, assign, end_experiment, start_experiment
from deploykit.bundle.manifest import canonical_json
from deploykit.bundle.repository import publish, rollout_bucket
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, sign_envelope
from deploykit.core.errors import InputError, IntegrityError, UsageError
from tests.bundle.bundle_helpers import NAME, make_bundles, serve, tree_snapshot

T0 = dt.datetime(2031, 3, 1, tzinfo=dt.timezone.utc)
SALT = "5a" * 32
V1, V2 = 1_000_000, 1_001_000


class Clock:
    def __init__(self, moment: dt.datetime = T0):
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, **delta) -> None:
        self.moment += dt.timedelta(**delta)


@pytest.fixture(scope="module")
def versions(converted, keys, labels_file, tmp_path_factory):
    """Signed bundles (android and ios, fp32) of 1.0.0 and 1.1.0."""
    key = keys["publisher"][0]
    return {v: make_bundles(converted, tmp_path_factory.mktemp(v), [key], labels_file, version=v) for v in ("1.0.0", "1.1.0")}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def repo(tmp_path, versions, keys, clock):
    key = keys["publisher"][0]
    repo = tmp_path / "repo"
    publish(list(versions["1.0.0"].values()), repo, "stable", key, now=clock, expires_days=60)
    publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=0, now=clock, expires_days=60)
    return repo


def payload(repo: Path, channel: str = "stable") -> dict:
    return json.loads(base64.b64decode(json.loads((repo / "channels" / f"{channel}.json").read_bytes())["payload"]))


def options(**changes) -> ExperimentOptions:
    base = dict(name="head-v2", model=NAME, arms=(ArmSpec.parse("control=1.0.0:fp32:45"),
                                                  ArmSpec.parse("treatment=1.1.0:fp32:45")),
                holdout_basis_points=1000, start=T0, end=T0 + dt.timedelta(days=14), salt=SALT)
    return ExperimentOptions(**{**base, **changes})


def device_for(group: str, *, inside_rollout: bool | None = None, salt: str | None = None, percent: float = 0,
               skip: tuple = ()) -> str:
    """A device id in ``group`` of the experiment (SALT), optionally inside / outside a rollout (salt, percent)."""
    exp = {"salt": SALT, "arms": [{"name": "control", "basis_points": 4500}, {"name": "treatment", "basis_points": 4500}]}
    for i in range(10_000):
        device = f"device-{i}"
        if device in skip or assign(exp, device) != group:
            continue
        if inside_rollout is None or (rollout_bucket(salt, device) < percent) == inside_rollout:
            return device
    raise AssertionError("no such device")


def test_the_experiment_is_in_the_signed_index(repo, keys, clock):
    result = start_experiment(repo, "stable", options(), keys["publisher"][0], now=clock, expires_days=60)
    index = payload(repo)
    assert result.version == index["version"] == 3
    entry = index["models"][NAME]
    experiment = entry["experiment"]
    releases = {"1.1.0": entry["release"], "1.0.0": entry["previous"]["release"]}
    assert experiment == {
        "name": "head-v2", "salt": SALT, "start": "2031-03-01T00:00:00Z", "end": "2031-03-15T00:00:00Z",
        "holdout_basis_points": 1000,
        "arms": [{"name": "control", "basis_points": 4500, "version": "1.0.0", "sequence": V1, "variant": "fp32",
                  "release": releases["1.0.0"]},
                 {"name": "treatment", "basis_points": 4500, "version": "1.1.0", "sequence": V2, "variant": "fp32",
                  "release": releases["1.1.0"]}]}


def test_arms_decide_before_the_rollout_and_holdout_follows_it(repo, versions, keys, clock, tmp_path):
    """Precedence: during the experiment an arm's device installs its arm whatever its rollout bucket says;
    holdout devices follow the channel's release with its rollout (here grown to 30 % after the start)."""
    key, public = keys["publisher"][0], keys["publisher"][1]
    start_experiment(repo, "stable", options(), key, now=clock, expires_days=60)
    publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=30, now=clock, expires_days=60)
    assert payload(repo)["models"][NAME]["experiment"]["name"] == "head-v2"  # a publish keeps the experiment
    salt = payload(repo)["models"][NAME]["rollout"]["salt"]
    cases = {  # device -> (group, expected sequence)
        device_for("control", inside_rollout=True, salt=salt, percent=30): ("control", V1),
        device_for("treatment", inside_rollout=False, salt=salt, percent=30): ("treatment", V2),
        device_for("holdout", inside_rollout=True, salt=salt, percent=30): ("holdout", V2),
        device_for("holdout", inside_rollout=False, salt=salt, percent=30): ("holdout", V1),
    }
    reports, events = [], tmp_path / "events.jsonl"
    for device, (group, sequence) in cases.items():
        result = pull(repo, "stable", NAME, [public], tmp_path / device, device_id=device, platform="android",
                      now=clock, on_arm=reports.append, events=events)
        assert (result.status, result.sequence, result.experiment, result.arm) == ("updated", sequence, "head-v2", group)
    assert [(r.arm, r.sequence, r.first, r.status, r.variant) for r in reports] == [
        (g, s, True, "updated", "fp32") for g, s in cases.values()]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["device"], e["arm"], e["event"], e["version"]) for e in lines] == [
        (d, g, "install", "1.0.0" if s == V1 else "1.1.0") for d, (g, s) in cases.items()]
    assert set(lines[0]) == {"ts", "device", "model", "experiment", "arm", "event", "value", "version", "variant"}

    device = next(iter(cases))
    again = pull(repo, "stable", NAME, [public], tmp_path / device, device_id=device, platform="android", now=clock,
                 on_arm=reports.append, events=events)
    assert again.status == "up-to-date" and again.arm == "control" and reports[-1].first is False
    assert len(events.read_text().splitlines()) == len(cases)  # one install event per device and arm
    recorded = record_event(tmp_path / device, NAME, "top1_correct", 1, events=events, now=clock)
    assert recorded == {"ts": "2031-03-01T00:00:00Z", "device": device, "model": NAME, "experiment": "head-v2",
                        "arm": "control", "event": "top1_correct", "value": 1}
    assert json.loads(events.read_text().splitlines()[-1]) == recorded
    with pytest.raises(UsageError):
        record_event(tmp_path / device, NAME, "install", events=events)


def test_a_moved_end_or_an_unrelated_experiment_changes_no_arm_and_the_end_hands_back_to_the_channel(
        repo, versions, converted, keys, clock, tmp_path):
    key, public = keys["publisher"][0], keys["publisher"][1]
    start_experiment(repo, "stable", options(), key, now=clock, expires_days=60)
    devices = {g: device_for(g) for g in ("control", "treatment", "holdout")}

    def pull_all(**kwargs):
        return {g: pull(repo, "stable", NAME, [public], tmp_path / d, device_id=d, platform="android", now=clock, **kwargs)
                for g, d in devices.items()}

    first = pull_all()
    assert {g: (r.arm, r.sequence) for g, r in first.items()} == {
        "control": ("control", V1), "treatment": ("treatment", V2), "holdout": ("holdout", V1)}
    end_experiment(repo, "stable", NAME, key, at=T0 + dt.timedelta(days=30), now=clock, expires_days=60)
    other = bundle([converted / "mobilenet.fp32.tflite"], BundleOptions(
        name="com.example.other", version="1.0.0", out=tmp_path / "other", sign_keys=(key,)))
    publish([b.path for b in other], repo, "stable", key, now=clock, expires_days=60)
    start_experiment(repo, "stable", options(name="other-exp", model="com.example.other", salt=None,
                                             arms=(ArmSpec.parse("only=1.0.0:fp32:50"),), holdout_basis_points=5000),
                     key, now=clock, expires_days=60)
    clock.advance(days=20)  # past the first end, before the moved one
    moved = pull_all()
    assert {g: (r.status, r.arm) for g, r in moved.items()} == {g: ("up-to-date", g) for g in devices}

    clock.advance(days=1)
    end_experiment(repo, "stable", NAME, key, now=clock, expires_days=60)  # stop it now
    after = pull_all()
    assert (after["control"].status, after["control"].sequence, after["control"].arm) == ("up-to-date", V1, None)
    assert (after["holdout"].status, after["holdout"].arm) == ("up-to-date", None)
    # the treatment's 1.1.0 is newer than the channel's offer (1.0.0, outside the 0 % rollout): kept, not refused
    assert (after["treatment"].status, after["treatment"].sequence, after["treatment"].arm) == ("kept", V2, None)
    assert record_event(tmp_path / devices["treatment"], NAME, "top1_correct", 1, events=tmp_path / "e.jsonl") is None
    publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=100, now=clock, expires_days=60)  # the winner
    final = pull_all()
    assert {g: (r.status, r.sequence) for g, r in final.items()} == {
        "control": ("updated", V2), "treatment": ("up-to-date", V2), "holdout": ("updated", V2)}
    state = json.loads((tmp_path / devices["treatment"] / STATE_FILE).read_text())
    assert "via" not in state["models"][NAME] and "experiments" not in state


def test_client_refuses_an_index_whose_shares_do_not_add_up(repo, keys, clock, tmp_path):
    key, public = keys["publisher"][0], keys["publisher"][1]
    start_experiment(repo, "stable", options(), key, now=clock, expires_days=60)
    dest = tmp_path / "models"
    pull(repo, "stable", NAME, [public], dest, device_id="d", platform="android", now=clock)
    index = payload(repo)
    index["version"] += 1
    index["models"][NAME]["experiment"]["arms"][1]["basis_points"] = 4400  # 45 + 44 + 10: signed, schema-valid
    (repo / "channels" / "stable.json").write_bytes(sign_envelope(canonical_json(index), CHANNEL_PAYLOAD_TYPE, [key]))
    for target in (dest, tmp_path / "fresh"):
        before = tree_snapshot(tmp_path)
        with pytest.raises(IntegrityError, match="the shares of 'head-v2' add up to 99 %, not 100 %"):
            pull(repo, "stable", NAME, [public], target, device_id="d", platform="android", now=clock)
        assert tree_snapshot(tmp_path) == before  # nothing installed, not even the channel version remembered


def test_start_refuses_what_devices_could_not_run(repo, versions, converted, keys, labels_file, clock, tmp_path):
    key = keys["publisher"][0]

    def refused(error, match, bundle_keys=(), **changes):
        before = (repo / "channels" / "stable.json").read_bytes()
        with pytest.raises(error, match=match):
            start_experiment(repo, "stable", options(**changes), key, bundle_keys=bundle_keys, now=clock, expires_days=60)
        assert (repo / "channels" / "stable.json").read_bytes() == before

    refused(InputError, "no release 1.2.0", arms=(ArmSpec.parse("control=1.0.0:fp32:45"), ArmSpec.parse("t=1.2.0:fp32:45")))
    refused(InputError, "has no 'fp16' bundle", arms=(ArmSpec.parse("control=1.0.0:fp32:45"), ArmSpec.parse("t=1.1.0:fp16:45")))
    refused(UsageError, "add up to 95 %", holdout_basis_points=500)
    refused(InputError, "not published in channel", model="com.example.missing")
    refused(UsageError, "not in the future", end=T0 - dt.timedelta(days=1))
    refused(IntegrityError, "untrusted|not signed|signature", bundle_keys=[keys["attacker"][1]])
    android_only = bundle([converted / "mobilenet.fp32.tflite"], BundleOptions(
        name=NAME, version="1.2.0", out=tmp_path / "a", sign_keys=(key,), labels=labels_file, mean=(127.5,), std=(127.5,)))
    publish([b.path for b in android_only], repo, "beta", key, now=clock)  # in the repository, on another channel
    refused(UsageError, "different platforms", arms=(ArmSpec.parse("control=1.0.0:fp32:45"), ArmSpec.parse("t=1.2.0:fp32:45")))
    with pytest.raises(IntegrityError):
        start_experiment(repo, "stable", options(), keys["attacker"][0], now=clock)  # the index is not the attacker's

    start_experiment(repo, "stable", options(), key, now=clock, expires_days=60)
    refused(UsageError, "already has experiment 'head-v2'", name="next")
    publish(list(versions["1.1.0"].values()), repo, "stable", key, rollout=10, now=clock, expires_days=60)
    # 1.1.0 now reaches devices through the rollout: an arm of 1.0.0 could not be installed where it did
    refused(UsageError, "arm 'control' .* is below", name="next", replace=True)


def test_commands_as_a_user_runs_them(repo, keys, tmp_path):
    """experiment start -> pull --events over HTTP -> experiment record -> experiment report; exit codes."""
    private, public = keys["publisher"][2], keys["publisher"][3]

    def run(*args):
        return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    start = ["experiment", "start", "head-v2", "--model", NAME, "--repo", repo, "--arm", "control=1.0.0:fp32:50",
             "--arm", "treatment=1.1.0:fp32:40", "--end", "2099-01-01", "--salt", SALT, "--sign-key", private]
    bad = run(*start)
    assert bad.returncode == 2 and "add up to 90 %" in bad.stderr
    started = run(*start, "--holdout", "10")
    assert started.returncode == 0, started.stderr
    assert "head-v2: control 1.0.0/fp32 50 %, treatment 1.1.0/fp32 40 %, holdout 10 %" in started.stdout
    events = tmp_path / "events.jsonl"
    with serve(repo) as url:
        for i in range(6):
            pulled = run("pull", "--repo", url, "--name", NAME, "--trusted-key", public, "--dest", f"d{i}",
                         "--platform", "android", "--device-id", f"device-{i}", "--events", events, "--json")
            assert pulled.returncode == 0, pulled.stderr
            arm = json.loads(pulled.stdout)["arm"]
            recorded = run("experiment", "record", "score", "--value", str(i), "--dest", f"d{i}", "--name", NAME,
                           "--events", events)
            assert recorded.returncode == 0 and recorded.stdout.startswith(f"head-v2/{arm}: score = {i}")
    report = run("experiment", "report", events, "--metric", "score", "--json")
    assert report.returncode == 0, report.stderr
    assert sum(a["devices"] for a in json.loads(report.stdout)["arms"]) == 6
    assert sum(a["events"].get("score", 0) for a in json.loads(report.stdout)["arms"]) == 6
