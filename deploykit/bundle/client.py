"""``deploykit pull``: the reference client, i.e. what an app must do to install a model over the air.

Order of checks (each refusal is an IntegrityError, exit 4, and leaves the installed model untouched):
1. channel index: fetched with a 1 MiB cap; signature by a trusted key over the exact bytes; then the
   schema; it must name the channel we asked for; ``version`` not lower than the highest seen; not expired.
2. release file: fetched with its signed length as cap, sha256 must match (mix-and-match protection).
   Its name and sequence must agree with the index.
3. bundle: same, streamed to disk; then fully verified (signature, entries, every file's length and hash,
   see verify.py) and unpacked into a private temporary directory next to the destination.
4. sequence: lower than installed is refused (rollback); equal and same bundle is "up to date".
5. swap: the unpacked directory is renamed into ``versions/`` and the ``current`` symlink is replaced
   in one rename; then the state file (also replaced atomically) records the highest versions seen.

Layout of ``--dest``: ``.deploykit-state.json``, ``<name>/current -> versions/<sequence>-<sha12>``.
The previous version directory is kept (an app may still have it open) and older ones are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from deploykit.bundle.archive import Limits
from deploykit.bundle.fetch import Source
from deploykit.bundle.manifest import parse_json
from deploykit.bundle.repository import Clock, format_time, parse_time, rollout_bucket, utc_now
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, PublicKey, verify_envelope
from deploykit.bundle.verify import unpack_to_temp
from deploykit.core.errors import InputError, IntegrityError, UsageError

STATE_FILE = ".deploykit-state.json"


@dataclass(frozen=True)
class PullResult:
    status: str  # "updated" | "up-to-date" | "not-in-rollout"
    name: str
    channel: str
    channel_version: int
    version: str | None = None
    sequence: int | None = None
    platform: str | None = None
    variant: str | None = None
    path: Path | None = None  # the installed bundle directory (via the ``current`` link)
    bucket: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["path"] = str(self.path) if self.path else None
        return data


def pull(repo: str | Path, channel: str, name: str, trusted: Sequence[PublicKey], dest: str | Path, *,
         device_id: str | None = None, platform: str | None = None, variant: str | None = None,
         now: Clock = utc_now, limits: Limits = Limits()) -> PullResult:
    source, dest = Source(repo), Path(dest).absolute()
    state = _load_state(dest)
    device = device_id or state.setdefault("device_id", uuid.uuid4().hex)

    index = _fetch_index(source, channel, trusted, state, now)
    seen = state.setdefault("channels", {})
    seen[channel] = max(index["version"], seen.get(channel, 0))
    dest.mkdir(parents=True, exist_ok=True)  # only now: a refused index leaves no trace
    _save_state(dest, state)  # remember the highest channel version as soon as it is verified

    entry = index["models"].get(name)
    if entry is None:
        raise InputError(f"model {name!r} is not published in channel {channel!r}",
                         hint=f"published: {', '.join(sorted(index['models'])) or 'none'}")
    bucket = rollout_bucket(entry["rollout"]["salt"], device)
    chosen = entry if bucket < entry["rollout"]["percent"] else entry["previous"]
    if chosen is None:
        return PullResult("not-in-rollout", name, channel, index["version"], bucket=bucket)
    ref = chosen["release"]
    release = parse_json(source.read_pinned(ref["path"], ref["length"], ref["sha256"]), "release", ref["path"])
    if release["name"] != name or release["sequence"] != chosen["sequence"] or release["version"] != chosen["version"]:
        raise IntegrityError(f"{ref['path']} describes {release['name']} {release['version']} (sequence "
                             f"{release['sequence']}), not what the channel index names (mix-and-match)")
    item = _choose_bundle(release["bundles"], platform, variant)

    installed = state.setdefault("models", {}).get(name)
    if installed and release["sequence"] < installed["sequence"]:
        raise IntegrityError(f"{name}: the channel offers sequence {release['sequence']}, lower than the installed "
                             f"{installed['sequence']} (rollback refused)")
    model_dir = dest / _safe_dirname(name)
    current = model_dir / "current"
    if installed and installed["sha256"] == item["sha256"] and current.is_dir():
        return _result("up-to-date", name, channel, index, release, item, current, bucket)
    if installed and release["sequence"] == installed["sequence"] and installed["sha256"] != item["sha256"] and (
            installed["platform"], installed["variant"]) == (item["platform"], item["variant"]):
        raise IntegrityError(f"{name}: sequence {release['sequence']} is already installed with different content")

    versions = model_dir / "versions"
    fresh = [d for d in (model_dir, versions) if not d.exists()]
    versions.mkdir(parents=True, exist_ok=True)
    download = versions / f".download-{uuid.uuid4().hex}.zip"
    try:
        source.download_pinned(item["path"], item["length"], item["sha256"], download)
        verified, staging = unpack_to_temp(download, trusted, versions, limits)
    except BaseException:
        download.unlink(missing_ok=True)
        for directory in reversed(fresh):  # a refused first install leaves no empty directories behind
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    finally:
        download.unlink(missing_ok=True)
    manifest = verified.manifest
    if (manifest.name, manifest.version, manifest.sequence, manifest.platform, manifest.variant) != (
            name, release["version"], release["sequence"], item["platform"], item["variant"]):
        shutil.rmtree(staging, ignore_errors=True)
        raise IntegrityError("the bundle's signed manifest does not match the release that lists it (mix-and-match)")
    os.chmod(staging, 0o755)  # mkdtemp made it private; the installed model is as readable as its files
    final = versions / f"{manifest.sequence}-{item['sha256'][:12]}"
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        os.rename(staging, final)
    _swap(current, final)
    state["models"][name] = {"sequence": manifest.sequence, "version": manifest.version, "sha256": item["sha256"],
                             "platform": item["platform"], "variant": item["variant"]}
    _save_state(dest, state)
    _prune(versions, keep={final.name, _previous_target(installed)})
    return _result("updated", name, channel, index, release, item, current, bucket)


def _fetch_index(source: Source, channel: str, trusted, state: dict, now: Clock) -> dict[str, Any]:
    if not channel or "/" in channel:
        raise UsageError(f"bad channel name {channel!r}")
    what = f"channel index {channel}"
    envelope = source.read(f"channels/{channel}.json", MAX_ENVELOPE_BYTES)
    index = parse_json(verify_envelope(envelope, trusted, CHANNEL_PAYLOAD_TYPE, what).payload, "channel", what)
    if index["channel"] != channel:
        raise IntegrityError(f"{what}: the signed index is for channel {index['channel']!r} (substituted file)")
    highest = state.get("channels", {}).get(channel, 0)
    if index["version"] < highest:
        raise IntegrityError(f"{what}: version {index['version']} is lower than version {highest} seen before "
                             "(rollback or freeze attack)")
    moment = now()
    if parse_time(index["expires"]) <= moment:
        raise IntegrityError(f"{what}: expired at {index['expires']} (now {format_time(moment)}); a stale index "
                             "may be hiding newer releases", hint="the publisher must re-sign it: `deploykit publish` with no bundles")
    return index


def _choose_bundle(bundles: list[dict[str, Any]], platform: str | None, variant: str | None) -> dict[str, Any]:
    matches = [b for b in bundles if (platform is None or b["platform"] == platform)
               and (variant is None or b["variant"] == variant)]
    if len(matches) != 1:
        choices = ", ".join(f"--platform {b['platform']} --variant {b['variant']}" for b in bundles)
        raise UsageError(f"{len(matches)} bundles match; choose one of: {choices}")
    return matches[0]


def _safe_dirname(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise UsageError(f"bad model name {name!r}")
    return name


def _swap(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` in one rename: readers see the old or the new model, never neither."""
    tmp = link.with_name(f".{link.name}.tmp-{uuid.uuid4().hex[:8]}")
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _previous_target(installed: dict[str, Any] | None) -> str | None:
    return f"{installed['sequence']}-{installed['sha256'][:12]}" if installed else None


def _prune(versions: Path, keep: set) -> None:
    for child in versions.iterdir():
        if child.name not in keep and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)


def _result(status, name, channel, index, release, item, current, bucket) -> PullResult:
    return PullResult(status, name, channel, index["version"], release["version"], release["sequence"],
                      item["platform"], item["variant"], current, bucket)


def _load_state(dest: Path) -> dict[str, Any]:
    path = dest / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"state file {path} is unreadable ({exc}); refusing to forget the versions seen",
                             hint="restore it, or delete it knowingly to trust the next index from scratch") from None
    if not isinstance(state, dict):
        raise IntegrityError(f"state file {path} is not a JSON object")
    return state


def _save_state(dest: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=dest)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, dest / STATE_FILE)
