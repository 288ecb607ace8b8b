"""``deploykit publish``: a static repository any web server can host.

Layout (TUF-style consistent snapshots: everything but the channel index is named by its hash, so a
file never changes once written and CDNs can cache it forever):

    bundles/<sha256>.zip      the bundles, byte for byte as built
    releases/<sha256>.json    per release: name, version, sequence and its bundles (platform, variant, hash, length)
    channels/<channel>.json   signed DSSE envelope: version counter, expiry, per model the release
                              (hash + length), rollout percent + salt, and the previous release
    keys/<keyid>.pub          the publisher's public key, for convenience only (trust comes from pinning)
    manifests/<sha256>.json   each bundle's signed manifest on its own, pinned by the release (delta updates)
    chunks/<ab>/<sha256>      every file's chunks, content-addressed (delta.py: what a delta update fetches)

Publishing is atomic: bundles and releases are written first (unreferenced until the index names
them), then the index replaces the old one with a single rename. A lock file serializes publishers.

Rules (each with its reason):
- The channel ``version`` grows by one on every publish, so clients can refuse an older index (freeze
  and rollback attacks); ``expires`` bounds how long a stale index can be replayed (default 7 days;
  re-sign with ``deploykit publish`` and no bundles, e.g. from a daily job).
- A new release needs a higher ``sequence`` than the channel's current one. Rolling back a model means
  re-bundling the old artifacts with a higher ``--sequence``, so clients never have to accept "lower".
- Re-publishing the current release changes only its rollout, and the percent may only grow: shrinking
  would move devices that already installed it back to a lower sequence (see the rollback rule).
- Staged rollout: a device is in when ``bucket(salt, device id) < percent``; the salt is the release
  hash, so buckets are stable while a rollout grows and reshuffled for the next release. Devices
  outside get ``previous`` (the release that was current before).
- An experiment (``experiment.py``: ``deploykit experiment start``) sits in a model's entry and pins its arms'
  own releases, so publishing a new release keeps it; ``amend_channel`` is how it gets in and out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from deploykit.bundle.archive import write_atomic
from deploykit.bundle.delta import store as store_chunks
from deploykit.bundle.manifest import CHANNEL_SCHEMA, RELEASE_SCHEMA, canonical_json, parse_json, validate
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, PublicKey, SigningKey, sign_envelope, verify_envelope
from deploykit.bundle.verify import VerifiedBundle, verify_bundle
from deploykit.core.errors import DeployKitError, InputError, UsageError

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def rollout_bucket(salt: str, device_id: str) -> float:
    """A device's stable place in [0, 100) for one release: sha256("<salt>:<device id>"), first 8 bytes."""
    digest = hashlib.sha256(f"{salt}:{device_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % 10_000) / 100


@dataclass(frozen=True)
class PublishResult:
    repo: Path
    channel: str
    version: int
    expires: str
    models: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"repo": str(self.repo), "channel": self.channel, "version": self.version, "expires": self.expires,
                "models": self.models}


def publish(bundles: Sequence[str | Path], repo: str | Path, channel: str, sign_key: SigningKey, *,
            rollout: float = 100.0, expires_days: float = 7.0, bundle_keys: Sequence[PublicKey] = (),
            now: Clock = utc_now) -> PublishResult:
    """Add ``bundles`` (all of one release per model name) to ``channel`` and re-sign its index."""
    if not 0 <= rollout <= 100:
        raise UsageError("--rollout must be between 0 and 100")
    if expires_days <= 0:
        raise UsageError("--expires-days must be positive")
    _check_channel(channel)
    repo = Path(repo)
    for sub in ("bundles", "releases", "channels", "keys"):
        (repo / sub).mkdir(parents=True, exist_ok=True)
    trusted = list(bundle_keys) or [sign_key.public]
    verified = [verify_bundle(b, trusted) for b in bundles]
    with _lock(repo):
        index_path = repo / "channels" / f"{channel}.json"
        current = _read_index(index_path, sign_key.public, channel)
        models = dict(current["models"]) if current else {}
        for name, group in _group(verified).items():
            models[name] = _update_entry(models.get(name), _store_release(repo, name, group), rollout, name)
        return _sign_index(repo, channel, sign_key, current, models, expires_days, now)


def amend_channel(repo: str | Path, channel: str, sign_key: SigningKey,
                  change: Callable[[dict[str, Any]], dict[str, Any]], *, expires_days: float = 7.0,
                  now: Clock = utc_now) -> PublishResult:
    """Re-sign ``channel``'s index with ``change(models)`` applied, under the publish lock (experiments use it)."""
    if expires_days <= 0:
        raise UsageError("--expires-days must be positive")
    _check_channel(channel)
    repo = Path(repo)
    if not (repo / "channels").is_dir():
        raise InputError(f"{repo} is not a deploykit repository (no channels/)", hint="publish a release first")
    with _lock(repo):
        current = _read_index(repo / "channels" / f"{channel}.json", sign_key.public, channel)
        if current is None:
            raise InputError(f"channel {channel!r} has no index in {repo}", hint="publish a release to it first")
        return _sign_index(repo, channel, sign_key, current, change(dict(current["models"])), expires_days, now)


def _sign_index(repo: Path, channel: str, sign_key: SigningKey, current: dict[str, Any] | None,
                models: dict[str, Any], expires_days: float, now: Clock) -> PublishResult:
    """Write the next version of the index (the caller holds the lock): the one step that makes a change visible."""
    version = (current["version"] if current else 0) + 1
    index = {"schema": CHANNEL_SCHEMA, "channel": channel, "version": version,
             "expires": format_time(now() + dt.timedelta(days=expires_days)), "models": models}
    validate(index, "channel", f"channel index {channel}", error=DeployKitError)
    envelope = sign_envelope(canonical_json(index), CHANNEL_PAYLOAD_TYPE, [sign_key])
    write_atomic(repo / "keys" / f"{sign_key.keyid}.pub", _public_pem(sign_key))
    write_atomic(repo / "channels" / f"{channel}.json", envelope)
    return PublishResult(repo=repo, channel=channel, version=version, expires=index["expires"], models=models)


def _check_channel(channel: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", channel):
        raise UsageError(f"--channel {channel!r}: use lowercase letters, digits, '-' and '_'")


def _group(verified: list[VerifiedBundle]) -> dict[str, list[VerifiedBundle]]:
    groups: dict[str, list[VerifiedBundle]] = {}
    for item in verified:
        groups.setdefault(item.manifest.name, []).append(item)
    for name, group in groups.items():
        releases = {(b.manifest.version, b.manifest.sequence) for b in group}
        if len(releases) > 1:
            raise UsageError(f"{name}: bundles of different releases in one publish: {sorted(releases)}")
        slots = [(b.manifest.platform, b.manifest.variant) for b in group]
        if len(set(slots)) != len(slots):
            raise UsageError(f"{name}: two bundles for the same (platform, variant)")
    return groups


def _store_release(repo: Path, name: str, group: list[VerifiedBundle]) -> dict[str, Any]:
    entries = []
    for item in sorted(group, key=lambda b: (b.manifest.platform, b.manifest.variant)):
        target = repo / "bundles" / f"{item.sha256}.zip"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            shutil.copyfile(item.path, tmp)
            os.replace(tmp, target)
        entries.append({"platform": item.manifest.platform, "variant": item.manifest.variant,
                        "path": f"bundles/{item.sha256}.zip", "sha256": item.sha256, "length": item.length})
        manifest_ref = store_chunks(repo, item.path, item.manifest)  # chunks/ and manifests/ (delta.py)
        if manifest_ref is not None:
            entries[-1]["manifest"] = manifest_ref
    first = group[0].manifest
    release = {"schema": RELEASE_SCHEMA, "name": name, "version": first.version, "sequence": first.sequence,
               "bundles": entries}
    legacy = dict(release, bundles=[{k: v for k, v in e.items() if k != "manifest"} for e in entries])
    if (repo / "releases" / f"{hashlib.sha256(canonical_json(legacy)).hexdigest()}.json").exists():
        release = legacy  # published before delta updates: keep the release the channel pins (a rollout may grow)
    validate(release, "release", f"release of {name}", error=DeployKitError)
    data = canonical_json(release)
    digest = hashlib.sha256(data).hexdigest()
    write_atomic(repo / "releases" / f"{digest}.json", data)
    return {"version": first.version, "sequence": first.sequence,
            "release": {"path": f"releases/{digest}.json", "sha256": digest, "length": len(data)}}


def _update_entry(current: dict[str, Any] | None, new: dict[str, Any], rollout: float, name: str) -> dict[str, Any]:
    ref = new["release"]
    if current and current["release"]["sha256"] == ref["sha256"]:
        if rollout < current["rollout"]["percent"]:
            raise UsageError(f"{name}: rollout may only grow ({current['rollout']['percent']}% -> {rollout}%)",
                             hint="to stop a rollout, re-bundle the previous artifacts with a higher --sequence and publish them")
        return dict(current, rollout={"percent": rollout, "salt": ref["sha256"]})
    if current and new["sequence"] <= current["sequence"]:
        raise UsageError(f"{name}: sequence {new['sequence']} is not higher than the channel's {current['sequence']}",
                         hint="clients refuse lower sequences; to roll back, bundle the old artifacts with "
                              f"--sequence {current['sequence'] + 1} and publish those")
    previous = {k: current[k] for k in ("version", "sequence", "release")} if current else None
    kept = {"experiment": current["experiment"]} if current and "experiment" in current else {}  # arms pin their own releases
    return {**new, "rollout": {"percent": rollout, "salt": ref["sha256"]}, "previous": previous, **kept}


def read_channel(repo: str | Path, channel: str, key: PublicKey) -> dict[str, Any] | None:
    """The verified index of ``channel`` in a local repository, or None when it has none."""
    _check_channel(channel)
    return _read_index(Path(repo) / "channels" / f"{channel}.json", key, channel)


def _read_index(path: Path, key: PublicKey, channel: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    payload = verify_envelope(path.read_bytes(), [key], CHANNEL_PAYLOAD_TYPE, f"existing channel index {path}").payload
    index = parse_json(payload, "channel", f"existing channel index {path}")
    if index["channel"] != channel:
        raise InputError(f"{path} is the index of channel {index['channel']!r}")
    return index


def _public_pem(key: SigningKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@contextlib.contextmanager
def _lock(repo: Path):
    import fcntl

    with open(repo / ".publish.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another publish to {repo} is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
