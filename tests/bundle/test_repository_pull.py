"""Publish to a static repository and pull over HTTP from a loopback server; attacks on the repository."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import shutil
from pathlib import Path

import pytest

from deploykit.bundle.client import STATE_FILE, pull
from deploykit.bundle.manifest import canonical_json
from deploykit.bundle.repository import publish, rollout_bucket
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, sign_envelope
from deploykit.core.errors import IntegrityError, UsageError
from deploykit.core.hashing import sha256_file
from tests.bundle.bundle_helpers import NAME, make_bundles, serve, tree_snapshot


def channel_payload(repo: Path, channel: str = "stable") -> dict:
    return json.loads(base64.b64decode(json.loads((repo / "channels" / f"{channel}.json").read_bytes())["payload"]))


def resign(repo: Path, index: dict, key, channel: str = "stable") -> None:
    (repo / "channels" / f"{channel}.json").write_bytes(sign_envelope(canonical_json(index), CHANNEL_PAYLOAD_TYPE, [key]))


@pytest.fixture(scope="module")
def v2_bundles(converted, keys, labels_file, tmp_path_factory):
    return make_bundles(converted, tmp_path_factory.mktemp("v2"), [keys["publisher"][0]], labels_file, version="1.3.0")


def attack_refused(dest: Path, match: str, **kwargs) -> None:
    """The pull must fail with ``match``, write nothing outside ``dest`` and leave the installed model as it was.

    Only the state file may change, and only to remember a channel version whose signature verified.
    """
    def snapshot():
        return {k: v for k, v in tree_snapshot(dest.parent).items() if not k.endswith(STATE_FILE)}

    before = snapshot()
    link = dest / NAME / "current"
    target = link.resolve() if link.exists() else None
    with pytest.raises(IntegrityError, match=match):
        pull(**kwargs, dest=dest)
    after = snapshot()
    after.pop(dest.name, None) if dest.name not in before else None
    assert after == before
    assert (link.resolve() if link.exists() else None) == target


def test_publish_then_pull_over_http_installs_a_verified_model(repo_with_release, keys, tmp_path):
    index = channel_payload(repo_with_release)
    assert index["version"] == 1 and index["models"][NAME]["sequence"] == 1_002_000
    release_ref = index["models"][NAME]["release"]
    assert sha256_file(repo_with_release / release_ref["path"]) == release_ref["sha256"]
    for bundle in json.loads((repo_with_release / release_ref["path"]).read_text())["bundles"]:
        assert sha256_file(repo_with_release / bundle["path"]) == bundle["sha256"]
    with serve(repo_with_release) as url:
        result = pull(url, "stable", NAME, [keys["publisher"][1]], tmp_path / "models", platform="android")
        again = pull(url, "stable", NAME, [keys["publisher"][1]], tmp_path / "models", platform="android")
    assert result.status == "updated" and again.status == "up-to-date"
    model = result.path / "model" / "model.tflite"
    assert (tmp_path / "models" / NAME / "current").is_symlink() and model.is_file()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    interpreter.invoke()
    assert interpreter.get_output_details()[0]["shape"].tolist() == [1, 10]
    state = json.loads((tmp_path / "models" / STATE_FILE).read_text())
    assert state["channels"]["stable"] == 1 and state["models"][NAME]["sequence"] == 1_002_000


def test_new_release_swaps_atomically_and_rollback_by_higher_sequence(repo_with_release, v2_bundles, converted,
                                                                       keys, labels_file, tmp_path):
    key, public = keys["publisher"][0], keys["publisher"][1]
    dest = tmp_path / "models"
    pull(repo_with_release, "stable", NAME, [public], dest, platform="ios")
    publish(list(v2_bundles.values()), repo_with_release, "stable", key)
    result = pull(repo_with_release, "stable", NAME, [public], dest, platform="ios")
    assert result.status == "updated" and result.version == "1.3.0" and result.sequence == 1_003_000
    assert (dest / NAME / "current").resolve().name.startswith("1003000-")
    # republishing 1.2.0 as is is refused; the old files under a higher sequence are the rollback
    with pytest.raises(UsageError, match="not higher"):
        publish(list(make_bundles(converted, tmp_path / "old", [key], labels_file).values()), repo_with_release, "stable", key)
    rollback = make_bundles(converted, tmp_path / "rb", [key], labels_file, version="1.2.0", sequence=1_003_001)
    publish(list(rollback.values()), repo_with_release, "stable", key)
    result = pull(repo_with_release, "stable", NAME, [public], dest, platform="ios")
    assert (result.version, result.sequence) == ("1.2.0", 1_003_001)


def test_staged_rollout_buckets_are_stable_and_only_grow(repo_with_release, v2_bundles, keys, tmp_path):
    key, public = keys["publisher"][0], keys["publisher"][1]
    publish(list(v2_bundles.values()), repo_with_release, "stable", key, rollout=30)
    entry = channel_payload(repo_with_release)["models"][NAME]
    salt = entry["rollout"]["salt"]
    devices = [f"device-{i}" for i in range(40)]
    inside = {d for d in devices if rollout_bucket(salt, d) < 30}
    assert 0 < len(inside) < len(devices)
    for device in devices[:6]:
        result = pull(repo_with_release, "stable", NAME, [public], tmp_path / device, device_id=device, platform="android")
        assert result.sequence == (1_003_000 if device in inside else 1_002_000)
    with pytest.raises(UsageError, match="may only grow"):
        publish(list(v2_bundles.values()), repo_with_release, "stable", key, rollout=10)
    publish(list(v2_bundles.values()), repo_with_release, "stable", key, rollout=100)
    assert channel_payload(repo_with_release)["models"][NAME]["rollout"] == {"percent": 100, "salt": salt}


def test_publish_is_all_or_nothing(repo_with_release, v2_bundles, bundles, keys, tmp_path):
    before = (repo_with_release / "channels" / "stable.json").read_bytes()
    bad = tmp_path / "bad.zip"
    shutil.copyfile(v2_bundles["android"], bad)
    bad.write_bytes(bad.read_bytes()[:-100])  # truncated: an interrupted copy
    with pytest.raises(IntegrityError):
        publish([v2_bundles["ios"], bad], repo_with_release, "stable", keys["publisher"][0])
    with pytest.raises(UsageError, match="different releases"):
        publish([v2_bundles["ios"], bundles["android"]], repo_with_release, "stable", keys["publisher"][0])
    assert (repo_with_release / "channels" / "stable.json").read_bytes() == before
    assert not list(repo_with_release.rglob(".*.tmp-*"))


def test_rolled_back_channel_version_is_refused(repo_with_release, v2_bundles, keys, tmp_path):
    dest, public = tmp_path / "models", keys["publisher"][1]
    old_index = (repo_with_release / "channels" / "stable.json").read_bytes()
    publish(list(v2_bundles.values()), repo_with_release, "stable", keys["publisher"][0])
    pull(repo_with_release, "stable", NAME, [public], dest, platform="android")
    (repo_with_release / "channels" / "stable.json").write_bytes(old_index)  # replay of a validly signed old index
    attack_refused(dest, "version 1 is lower than version 2 seen before", repo=repo_with_release, channel="stable",
                   name=NAME, trusted=[public], platform="android")


def test_lower_sequence_than_installed_is_refused(repo_with_release, v2_bundles, keys, tmp_path):
    dest, key, public = tmp_path / "models", keys["publisher"][0], keys["publisher"][1]
    old_entry = channel_payload(repo_with_release)["models"][NAME]
    publish(list(v2_bundles.values()), repo_with_release, "stable", key)
    pull(repo_with_release, "stable", NAME, [public], dest, platform="android")
    index = channel_payload(repo_with_release)
    index["version"] += 1
    index["models"][NAME] = dict(old_entry, previous=None)  # a newer index that serves the older model
    resign(repo_with_release, index, key)
    attack_refused(dest, "lower than the installed 1003000 \\(rollback refused\\)", repo=repo_with_release,
                   channel="stable", name=NAME, trusted=[public], platform="android")


def test_expired_channel_index_is_refused(repo_with_release, keys, tmp_path):
    later = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=8)  # noqa: E731 - an injected clock
    attack_refused(tmp_path / "models", "expired at", repo=repo_with_release, channel="stable", name=NAME,
                   trusted=[keys["publisher"][1]], platform="android", now=later)
    publish([], repo_with_release, "stable", keys["publisher"][0], expires_days=30)  # re-sign: a fresh expiry
    assert pull(repo_with_release, "stable", NAME, [keys["publisher"][1]], tmp_path / "models", platform="android",
                now=later).status == "updated"


def test_channel_pointing_at_a_different_release_hash_is_refused(repo_with_release, v2_bundles, keys, tmp_path):
    ref = channel_payload(repo_with_release)["models"][NAME]["release"]
    publish(list(v2_bundles.values()), repo_with_release, "beta", keys["publisher"][0])
    other = channel_payload(repo_with_release, "beta")["models"][NAME]["release"]
    shutil.copyfile(repo_with_release / other["path"], repo_with_release / ref["path"])  # serve another valid release
    attack_refused(tmp_path / "models", "differs from the .* pins \\(mix-and-match", repo=repo_with_release,
                   channel="stable", name=NAME, trusted=[keys["publisher"][1]], platform="android")


def test_substituted_bundle_is_refused(repo_with_release, v2_bundles, keys, tmp_path):
    release = json.loads((repo_with_release / channel_payload(repo_with_release)["models"][NAME]["release"]["path"]).read_text())
    target = repo_with_release / next(b["path"] for b in release["bundles"] if b["platform"] == "android")
    data = v2_bundles["android"].read_bytes()[: target.stat().st_size]
    target.write_bytes(data.ljust(target.stat().st_size, b"\0"))  # same length, other (signed) content
    attack_refused(tmp_path / "models", "sha256 .* differs", repo=repo_with_release, channel="stable", name=NAME,
                   trusted=[keys["publisher"][1]], platform="android")


def test_index_of_another_channel_or_by_another_key_is_refused(repo_with_release, keys, tmp_path):
    index = channel_payload(repo_with_release)
    resign(repo_with_release, dict(index, channel="beta", version=9), keys["publisher"][0])
    attack_refused(tmp_path / "m", "is for channel 'beta'", repo=repo_with_release, channel="stable", name=NAME,
                   trusted=[keys["publisher"][1]], platform="android")
    resign(repo_with_release, dict(index, version=9), keys["attacker"][0])
    attack_refused(tmp_path / "m", "untrusted key", repo=repo_with_release, channel="stable", name=NAME,
                   trusted=[keys["publisher"][1]], platform="android")


class _LongBodyHandler(http.server.BaseHTTPRequestHandler):
    """Serves the repository, but bundles come back longer than declared (extra bytes, or without end)."""

    repo: Path = Path(".")
    mode = "extra"

    def do_GET(self):  # noqa: N802 - http.server API
        path = self.repo / self.path.lstrip("/")
        data = path.read_bytes()
        is_bundle = self.path.startswith("/bundles/")
        self.send_response(200)
        if is_bundle and self.mode == "announce":
            self.send_header("Content-Length", str(len(data) + 10**9))
        elif not is_bundle:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if is_bundle and self.mode == "announce":
            return
        self.wfile.write(data)
        if is_bundle and self.mode == "extra":
            self.wfile.write(b"\0" * 4096)
        elif is_bundle and self.mode == "endless":
            try:
                for _ in range(100_000):  # 6.5 GB if the client kept reading; it must stop after one chunk
                    self.wfile.write(b"\0" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode, match", [
    ("extra", "body longer than its declared"),
    ("endless", "body longer than its declared"),
    ("announce", "server announces"),
])
def test_body_longer_than_declared_is_cut_off(repo_with_release, keys, tmp_path, mode, match):
    handler = type("Handler", (_LongBodyHandler,), {"repo": repo_with_release, "mode": mode})
    with serve(repo_with_release, handler) as url:
        attack_refused(tmp_path / "models", match, repo=url, channel="stable", name=NAME,
                       trusted=[keys["publisher"][1]], platform="android")
    assert not list((tmp_path / "models").rglob("*.zip"))


def test_tampered_state_is_not_silently_reset(repo_with_release, keys, tmp_path):
    dest = tmp_path / "models"
    pull(repo_with_release, "stable", NAME, [keys["publisher"][1]], dest, platform="android")
    (dest / STATE_FILE).write_text("{broken")
    with pytest.raises(IntegrityError, match="refusing to forget"):
        pull(repo_with_release, "stable", NAME, [keys["publisher"][1]], dest, platform="android")
