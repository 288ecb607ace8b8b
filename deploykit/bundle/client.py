"""``deploykit pull``: the reference client, i.e. what an app must do to install a model over the air.

Order of checks (each refusal is an IntegrityError, exit 4, and leaves the installed model untouched):
1. channel index: fetched with a 1 MiB cap; signature by a trusted key over the exact bytes; then the
   schema; it must name the channel we asked for; ``version`` not lower than the highest seen; not expired.
2. release file: fetched with its signed length as cap, sha256 must match (mix-and-match protection).
   Its name and sequence must agree with the index.
3. bundle: same, streamed to disk; then fully verified (signature, entries, every file's length and hash,
   see verify.py) and unpacked into a private temporary directory next to the destination.
4. sequence: lower than installed is refused (rollback); equal and same bundle is "up to date".
   Experiments (experiment.py) never relax this: an offer below an arm the device installed is "kept".
5. swap: the unpacked directory is renamed into ``versions/`` and the ``current`` symlink is replaced
   in one rename; then the state file (also replaced atomically) records the highest versions seen.

Layout of ``--dest``: ``.deploykit-state.json``, ``<name>/current -> versions/<sequence>-<sha12>``.
The previous version directory is kept (an app may still have it open) and older ones are removed.
``<name>/manifests/`` keeps the installed versions' manifests: where the next delta update looks for chunks.

Delta updates (delta.py): when a version is installed and the release stores the bundle's manifest, step 3
fetches that signed manifest instead, then only the chunks no installed file holds, rebuilds every file into
the temporary directory and checks each against the manifest; when the delta would not be smaller than the
bundle, the bundle is fetched as above. ``delta=False`` (``pull --no-delta``) always fetches the bundle.

Experiments: while a model's entry carries a running experiment, the device's group (``experiment.assign``)
decides before the rollout: an arm's device installs the arm's release and variant; holdout devices follow the
channel. When the device's model is its group's, ``on_arm`` is called (every pull) and, the first time, an
``install`` event goes to the ``events`` log; the state file remembers the group so that ``record_event`` can
attribute the app's outcome events to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from deploykit.bundle import events as event_log
from deploykit.bundle.archive import Limits
from deploykit.bundle.delta import Delivery, fetch_delta, remember
from deploykit.bundle.experiment import HOLDOUT, assign, check_index, is_active
from deploykit.bundle.fetch import Source
from deploykit.bundle.manifest import parse_json
from deploykit.bundle.repository import Clock, format_time, parse_time, rollout_bucket, utc_now
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, PublicKey, verify_envelope
from deploykit.bundle.verify import unpack_to_temp
from deploykit.core.errors import InputError, IntegrityError, UsageError

STATE_FILE = ".deploykit-state.json"


@dataclass(frozen=True)
class PullResult:
    status: str  # "updated" | "up-to-date" | "not-in-rollout" | "kept" (an experiment's higher sequence stays)
    name: str
    channel: str
    channel_version: int
    version: str | None = None
    sequence: int | None = None
    platform: str | None = None
    variant: str | None = None
    path: Path | None = None  # the installed bundle directory (via the ``current`` link)
    bucket: float | None = None
    experiment: str | None = None  # the running experiment whose group's model is installed
    arm: str | None = None  # that group: an arm's name or "holdout"
    transfer: dict[str, Any] | None = None  # an update's download: method (delta or bundle), bytes, chunks, fallback

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["path"] = str(self.path) if self.path else None
        return data


@dataclass(frozen=True)
class ArmReport:
    """What ``pull(on_arm=...)`` reports: the device's experiment group and the model it runs for it."""

    model: str
    channel: str
    experiment: str
    arm: str  # an arm's name, or "holdout" (the channel's release)
    device: str
    version: str
    sequence: int
    platform: str
    variant: str
    status: str  # "updated" | "up-to-date"
    first: bool  # the first report of this group on this device (an install event is logged)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pull(repo: str | Path, channel: str, name: str, trusted: Sequence[PublicKey], dest: str | Path, *,
         device_id: str | None = None, platform: str | None = None, variant: str | None = None,
         now: Clock = utc_now, limits: Limits = Limits(), delta: bool = True, on_arm: Callable[[ArmReport], None] | None = None,
         events: str | Path | None = None) -> PullResult:
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
    experiment = entry.get("experiment")
    experiment = experiment if experiment is not None and is_active(experiment, now()) else None
    group = assign(experiment, device) if experiment else None
    offer = _arm_offer(source, experiment, group, name, platform) if group not in (None, HOLDOUT) else None
    if offer is not None:  # an arm decides before the rollout
        release, item = offer
    else:  # holdout, not in the experiment, no experiment running: the channel's release with its rollout
        group = HOLDOUT if group == HOLDOUT else None  # an arm without a bundle for this platform: not enrolled
        chosen = entry if bucket < entry["rollout"]["percent"] else entry["previous"]
        if chosen is None:
            _attribute(dest, state, name, None)
            return PullResult("not-in-rollout", name, channel, index["version"], bucket=bucket)
        release = _fetch_release(source, chosen, name)
        item = _choose_bundle(release["bundles"], platform, variant)

    installed = state.setdefault("models", {}).get(name)
    model_dir = dest / _safe_dirname(name)
    current = model_dir / "current"
    if installed and release["sequence"] < installed["sequence"]:
        if offer is not None or installed.get("via") == "experiment":
            # never downgrade: an arm below the installed model is not run, an arm's model outlives its experiment
            _attribute(dest, state, name, None)
            return PullResult("kept", name, channel, index["version"], installed["version"], installed["sequence"],
                              installed["platform"], installed["variant"], current, bucket)
        raise IntegrityError(f"{name}: the channel offers sequence {release['sequence']}, lower than the installed "
                             f"{installed['sequence']} (rollback refused)")
    if installed and installed["sha256"] == item["sha256"] and current.is_dir():
        if offer is not None:
            installed["via"] = "experiment"
        else:
            installed.pop("via", None)
        report = _report(dest, state, name, channel, experiment, group, device, release, item, "up-to-date", events, now)
        if report is not None and on_arm is not None:
            on_arm(report)
        return _result("up-to-date", name, channel, index, release, item, current, bucket, report)
    if installed and release["sequence"] == installed["sequence"] and installed["sha256"] != item["sha256"] and (
            installed["platform"], installed["variant"]) == (item["platform"], item["variant"]):
        raise IntegrityError(f"{name}: sequence {release['sequence']} is already installed with different content")

    versions = model_dir / "versions"
    fresh = [d for d in (model_dir, versions) if not d.exists()]
    versions.mkdir(parents=True, exist_ok=True)
    expected = (name, release["version"], release["sequence"], item["platform"], item["variant"])
    delivery = (fetch_delta(source, item, expected, trusted, model_dir, versions, limits) if delta and installed
                else "delta updates are off" if installed else "nothing installed yet")
    if isinstance(delivery, Delivery):
        manifest, staging = delivery.manifest, delivery.staging
        transfer = {"method": "delta", "chunks": delivery.chunks, "chunks_fetched": delivery.chunks_fetched,
                    "bytes_reused": delivery.bytes_reused, "fallback": None}
    else:
        manifest, staging = _download_bundle(source, item, trusted, versions, limits, fresh)
        transfer = {"method": "bundle", "fallback": delivery}
    transfer.update(bytes=source.received, bundle_bytes=item["length"])
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
                             "platform": item["platform"], "variant": item["variant"],
                             **({"via": "experiment"} if offer is not None else {})}
    _save_state(dest, state)
    _prune(versions, keep={final.name, _previous_target(installed)})
    remember(model_dir, final.name, manifest, keep={final.name, _previous_target(installed)})
    report = _report(dest, state, name, channel, experiment, group, device, release, item, "updated", events, now)
    if report is not None and on_arm is not None:
        on_arm(report)
    return replace(_result("updated", name, channel, index, release, item, current, bucket, report), transfer=transfer)


def record_event(dest: str | Path, name: str, event: str, value: float | int | None = None, *,
                 events: str | Path, now: Clock = utc_now) -> dict[str, Any] | None:
    """Append an outcome event of the app to ``events``, attributed to the experiment group whose model this
    device runs (what the last ``pull`` found); None, and nothing written, when it runs no experiment's model.

    The app-side updaters have the same call (``recordEvent``); ``value`` is a number or None (a count).
    """
    state = _load_state(Path(dest).absolute())
    group = state.get("experiments", {}).get(name)
    if group is None:
        return None
    record = {"ts": format_time(now()), "device": group["device"], "model": name,
              "experiment": group["experiment"], "arm": group["arm"],
              "event": event_log.check_event_name(event), "value": event_log.check_value(value)}
    event_log.append(events, record)
    return record


def _fetch_release(source: Source, chosen: dict[str, Any], name: str) -> dict[str, Any]:
    ref = chosen["release"]
    release = parse_json(source.read_pinned(ref["path"], ref["length"], ref["sha256"]), "release", ref["path"])
    if release["name"] != name or release["sequence"] != chosen["sequence"] or release["version"] != chosen["version"]:
        raise IntegrityError(f"{ref['path']} describes {release['name']} {release['version']} (sequence "
                             f"{release['sequence']}), not what the channel index names (mix-and-match)")
    return release


def _arm_offer(source: Source, experiment: dict[str, Any], group: str, name: str,
               platform: str | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(release, bundle) of the device's arm: the arm's variant for this platform; None when there is none."""
    arm = next(a for a in experiment["arms"] if a["name"] == group)
    release = _fetch_release(source, arm, name)
    matches = [b for b in release["bundles"] if b["variant"] == arm["variant"]
               and (platform is None or b["platform"] == platform)]
    if len(matches) > 1:
        raise UsageError(f"arm {group!r} of experiment {experiment['name']!r} has a {arm['variant']} bundle for "
                         f"{', '.join(b['platform'] for b in matches)}: pass --platform")
    return (release, matches[0]) if matches else None


def _report(dest: Path, state: dict[str, Any], name: str, channel: str, experiment: dict[str, Any] | None,
            group: str | None, device: str, release: dict[str, Any], item: dict[str, Any], status: str,
            events: str | Path | None, now: Clock) -> ArmReport | None:
    """Remember the device's group for ``record_event``; log an ``install`` event the first time it is reported."""
    if experiment is None or group is None:
        _attribute(dest, state, name, None)
        return None
    attribution = {"experiment": experiment["name"], "salt": experiment["salt"], "arm": group, "device": device}
    first = state.get("experiments", {}).get(name) != attribution
    report = ArmReport(name, channel, experiment["name"], group, device, release["version"], release["sequence"],
                       item["platform"], item["variant"], status, first)
    if first and events is not None:
        event_log.append(events, {"ts": format_time(now()), "device": device, "model": name,
                                  "experiment": experiment["name"], "arm": group, "event": event_log.INSTALL,
                                  "value": None, "version": release["version"], "variant": item["variant"]})
    _attribute(dest, state, name, attribution)
    return report


def _attribute(dest: Path, state: dict[str, Any], name: str, attribution: dict[str, Any] | None) -> None:
    """Record (or forget) the group ``record_event`` attributes events to; the state file is written anyway."""
    groups = state.setdefault("experiments", {})
    if attribution is None:
        groups.pop(name, None)
    else:
        groups[name] = attribution
    if not groups:
        state.pop("experiments")
    _save_state(dest, state)


def _download_bundle(source: Source, item: dict[str, Any], trusted, versions: Path, limits: Limits, fresh: list[Path]):
    """The whole bundle, streamed with its pinned length and hash, verified and unpacked: (manifest, staging)."""
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
    return verified.manifest, staging


def _fetch_index(source: Source, channel: str, trusted, state: dict, now: Clock) -> dict[str, Any]:
    if not channel or "/" in channel:
        raise UsageError(f"bad channel name {channel!r}")
    what = f"channel index {channel}"
    envelope = source.read(f"channels/{channel}.json", MAX_ENVELOPE_BYTES)
    index = parse_json(verify_envelope(envelope, trusted, CHANNEL_PAYLOAD_TYPE, what).payload, "channel", what)
    check_index(index, what)  # every experiment's shares add up to 100 %, or the whole index is refused
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


def _result(status, name, channel, index, release, item, current, bucket, report=None) -> PullResult:
    return PullResult(status, name, channel, index["version"], release["version"], release["sequence"],
                      item["platform"], item["variant"], current, bucket,
                      report.experiment if report else None, report.arm if report else None)


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
