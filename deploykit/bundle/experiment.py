"""Experiments on a channel: published releases served to disjoint, sticky device cohorts.

An experiment lives in one model's entry of the signed channel index, ``models[NAME]["experiment"]``
(``schemas/channel.schema.json``)::

    {"name": "head-v2", "salt": "<64 hex>", "start": "2026-05-01T00:00:00Z", "end": "2026-05-15T00:00:00Z",
     "holdout_basis_points": 1000,
     "arms": [{"name": "control", "basis_points": 4500, "version": "1.0.0", "sequence": 1000000,
               "variant": "fp32", "release": {"path": ..., "sha256": ..., "length": ...}}, ...]}

Shares are basis points (1/100 of a percent) so that Python, Kotlin and Swift add them up exactly; the arms'
and the holdout's add up to 10000, which every reader checks (a schema cannot) and refuses the index otherwise.

**Assignment** (:func:`assign`, pure): ``bucket = sha256("<salt>:<device id>")``, first 8 bytes as a big-endian
unsigned integer, mod 10000 (the staged rollout's hash: ``rollout_bucket`` is this bucket / 100). The arms take
consecutive ranges of buckets in their listed order, the holdout the last range. The same device always gets the
same group (sticky), a bucket falls in exactly one range (disjoint), and nothing but the salt and the shares
enters, so moving the end or adding an experiment to another model changes no device's group. The salt is drawn
at random when the experiment starts, so every experiment reshuffles devices independently of the rollout's
buckets and of earlier experiments.

**Precedence** (the client, ``client.py``, and the app updaters do the same):

1. While ``start <= now < end``, a device of an arm installs that arm's release in the arm's variant (for its own
   platform), whatever the channel's rollout says. A device whose platform has no bundle of the arm's variant
   is not in the experiment.
2. Holdout devices, devices outside the experiment and every device before the start or after the end follow
   the channel's release with its rollout (``previous`` outside it), as without an experiment.
3. Anti-rollback is never relaxed: an arm with a lower sequence than the installed model is not installed (the
   device keeps its model and is not counted in the arm), and a device that installed an arm keeps it after the
   end until the channel offers a sequence at least as high (``pull`` says ``kept``). ``start`` refuses arms below
   what the channel has offered, so only devices with history elsewhere can hit this.

Arms refer to releases already in the repository (``deploykit publish`` put them there, on any channel); their
bundles of the arm's variant are verified again with the publisher's key when the experiment starts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping, Sequence

from deploykit.bundle.manifest import RELEASE_SCHEMA, check_version, validate
from deploykit.bundle.repository import (
    Clock,
    PublishResult,
    amend_channel,
    format_time,
    parse_time,
    utc_now,
)
from deploykit.bundle.signing import PublicKey, SigningKey
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import DeployKitError, InputError, IntegrityError, UsageError

HOLDOUT = "holdout"
BASIS = 10_000  # basis points in 100 %
MAX_ARMS = 16
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VARIANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def bucket(salt: str, device_id: str) -> int:
    """A device's place in [0, 10000) for one salt: sha256("<salt>:<device id>"), first 8 bytes, mod 10000."""
    digest = hashlib.sha256(f"{salt}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BASIS


def assign(experiment: Mapping[str, Any], device_id: str) -> str:
    """The group of ``device_id``: an arm's name, or ``HOLDOUT``. Pure; the experiment must have passed :func:`check`."""
    place, edge = bucket(experiment["salt"], device_id), 0
    for arm in experiment["arms"]:
        edge += arm["basis_points"]
        if place < edge:
            return arm["name"]
    return HOLDOUT


def is_active(experiment: Mapping[str, Any], moment: dt.datetime) -> bool:
    return parse_time(experiment["start"]) <= moment < parse_time(experiment["end"])


def check(experiment: Mapping[str, Any], what: str, error: type[DeployKitError] = IntegrityError) -> None:
    """What the schema cannot say: shares add up to 10000, arm names are distinct and not ``holdout``, start < end."""
    names = [arm["name"] for arm in experiment["arms"]]
    if len(set(names)) != len(names) or HOLDOUT in names:
        raise error(f"{what}: arm names must be distinct and not {HOLDOUT!r} (got {', '.join(names)})")
    total = sum(arm["basis_points"] for arm in experiment["arms"]) + experiment["holdout_basis_points"]
    if total != BASIS:
        shares = ", ".join(f"{arm['name']} {arm['basis_points'] / 100:g}" for arm in experiment["arms"])
        raise error(f"{what}: the shares of {experiment['name']!r} add up to {total / 100:g} %, not 100 % "
                    f"(arms {shares}, holdout {experiment['holdout_basis_points'] / 100:g})")
    if parse_time(experiment["start"]) >= parse_time(experiment["end"]):
        raise error(f"{what}: experiment {experiment['name']!r} ends ({experiment['end']}) before it starts "
                    f"({experiment['start']})")


def check_index(index: Mapping[str, Any], what: str) -> None:
    """Every experiment of a verified, schema-valid channel index; IntegrityError refuses the whole index."""
    for model, entry in index["models"].items():
        if "experiment" in entry:
            check(entry["experiment"], f"{what}: {model}")


def basis_points(text: str | float, what: str) -> int:
    """A percentage with at most two decimals (``45``, ``33.33``) as exact basis points."""
    try:
        value = Decimal(str(text).strip().rstrip("%"))
    except InvalidOperation:
        raise UsageError(f"{what} {text!r} is not a percentage") from None
    points = value * 100
    if not value.is_finite() or points != points.to_integral_value() or not 0 <= points <= BASIS:
        raise UsageError(f"{what} {text!r}: give a percentage between 0 and 100 with at most two decimals")
    return int(points)


def parse_moment(text: str, what: str, now: Clock = utc_now) -> dt.datetime:
    """``now``, ``2026-05-01`` (midnight UTC) or ``2026-05-01T12:00:00Z``."""
    if text == "now":
        return now().replace(microsecond=0)
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    raise UsageError(f"{what} {text!r}: give now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")


@dataclass(frozen=True)
class ArmSpec:
    """One ``--arm NAME=VERSION[@SEQUENCE]:VARIANT:PERCENT``."""

    name: str
    version: str
    variant: str
    basis_points: int
    sequence: int | None = None  # only needed when several releases carry the version (a rollback re-bundle)

    @classmethod
    def parse(cls, text: str) -> "ArmSpec":
        name, _, rest = text.partition("=")
        parts = rest.rsplit(":", 2)
        if not _ or len(parts) != 3:
            raise UsageError(f"--arm {text!r}: give NAME=VERSION:VARIANT:PERCENT", hint="e.g. --arm control=1.0.0:fp32:45")
        release, variant, share = parts
        version, at, sequence = release.partition("@")
        if at and not sequence.isdigit():
            raise UsageError(f"--arm {text!r}: the sequence after @ must be an integer")
        arm = cls(name, version, variant, basis_points(share, f"--arm {name}"), int(sequence) if at else None)
        if not _LABEL.match(name) or name == HOLDOUT:
            raise UsageError(f"--arm {text!r}: arm names use lowercase letters, digits, '-' and '_' (not {HOLDOUT!r})")
        if not _VARIANT.match(variant):
            raise UsageError(f"--arm {text!r}: {variant!r} is not a variant name (fp32, fp16, int8, executorch-fp16 ...)")
        try:
            check_version(version)
        except InputError:
            raise UsageError(f"--arm {text!r}: {version!r} is not a semantic version (e.g. 1.2.0)") from None
        if arm.basis_points == 0:
            raise UsageError(f"--arm {text!r}: an arm needs a share above 0")
        return arm


@dataclass(frozen=True)
class ExperimentOptions:
    """What ``deploykit experiment start`` puts on a channel."""

    name: str
    model: str
    arms: tuple[ArmSpec, ...]
    end: dt.datetime
    holdout_basis_points: int = 0
    start: dt.datetime | None = None  # None: now
    salt: str | None = None  # None: 32 random bytes
    replace: bool = False  # replace a running or scheduled experiment of the model


def start_experiment(repo: str | Path, channel: str, options: ExperimentOptions, sign_key: SigningKey, *,
                     bundle_keys: Sequence[PublicKey] = (), expires_days: float = 7.0,
                     now: Clock = utc_now) -> PublishResult:
    """Put ``options`` on ``channel``'s index for ``options.model`` and re-sign it (its version grows by one)."""
    moment = now()
    start = options.start or moment.replace(microsecond=0)
    experiment = {"name": _label(options.name, "experiment name"), "salt": _salt(options.salt),
                  "start": format_time(start), "end": format_time(options.end),
                  "holdout_basis_points": options.holdout_basis_points, "arms": []}
    if not 1 <= len(options.arms) <= MAX_ARMS:
        raise UsageError(f"an experiment has 1 to {MAX_ARMS} arms (got {len(options.arms)})")
    if len(options.arms) + (options.holdout_basis_points > 0) < 2:
        raise UsageError("one arm and no holdout is not an experiment: add an arm or a --holdout")
    if options.end <= moment:
        raise UsageError(f"--end {format_time(options.end)} is not in the future")
    trusted = list(bundle_keys) or [sign_key.public]
    root = Path(repo)

    def change(models: dict[str, Any]) -> dict[str, Any]:
        entry = models.get(options.model)
        if entry is None:
            raise InputError(f"model {options.model!r} is not published in channel {channel!r}",
                             hint=f"published: {', '.join(sorted(models)) or 'none'}; publish it first")
        running = entry.get("experiment")
        if running is not None and parse_time(running["end"]) > moment and not options.replace:
            raise UsageError(f"{options.model} already has experiment {running['name']!r} until {running['end']}",
                             hint="end it first (`deploykit experiment end`), or pass --replace")
        releases = _releases(root, options.model)
        platforms = {}
        for spec in options.arms:
            arm, platforms[spec.name] = _arm(root, releases, spec, trusted, options.model)
            experiment["arms"].append(arm)
        if len({frozenset(p) for p in platforms.values()}) > 1:
            raise UsageError("the arms' variants exist for different platforms ("
                             + "; ".join(f"{n}: {', '.join(sorted(p))}" for n, p in platforms.items())
                             + "): devices of a platform only some arms serve would bias the comparison")
        check(experiment, f"experiment {options.name!r}", error=UsageError)
        floor, why = _offered_floor(entry, moment)
        for arm in experiment["arms"]:
            if arm["sequence"] < floor:
                raise UsageError(f"arm {arm['name']!r} ({arm['version']}, sequence {arm['sequence']}) is below {why} "
                                 f"(sequence {floor}): devices that installed it never go back, so they would "
                                 "not run the arm", hint="re-bundle the arm's artifacts with a higher --sequence "
                                 "(the rollback recipe) and name that release")
        return {**models, options.model: {**entry, "experiment": experiment}}

    return amend_channel(repo, channel, sign_key, change, expires_days=expires_days, now=now)


def end_experiment(repo: str | Path, channel: str, model: str, sign_key: SigningKey, *, at: dt.datetime | None = None,
                   expires_days: float = 7.0, now: Clock = utc_now) -> PublishResult:
    """Move the end of ``model``'s experiment to ``at`` (default now): earlier to stop it, later to extend it.

    Only the end changes, so no device changes group. After the end every device follows the channel again.
    """
    moment = (at or now()).replace(microsecond=0)

    def change(models: dict[str, Any]) -> dict[str, Any]:
        entry = models.get(model)
        if entry is None or "experiment" not in entry:
            raise InputError(f"{model} has no experiment in channel {channel!r}")
        experiment = entry["experiment"]
        if moment <= parse_time(experiment["start"]):
            raise UsageError(f"--at {format_time(moment)} is not after the start ({experiment['start']})",
                             hint="to cancel an experiment that has not started, end it at its start plus a second")
        return {**models, model: {**entry, "experiment": {**experiment, "end": format_time(moment)}}}

    return amend_channel(repo, channel, sign_key, change, expires_days=expires_days, now=now)


def _label(text: str, what: str) -> str:
    if not _LABEL.match(text):
        raise UsageError(f"{what} {text!r}: use lowercase letters, digits, '-' and '_' (at most 64)")
    return text


def _salt(salt: str | None) -> str:
    if salt is None:
        return secrets.token_hex(32)
    if not re.fullmatch(r"[0-9a-f]{64}", salt):
        raise UsageError("--salt must be 64 lowercase hex digits")
    return salt


def _releases(repo: Path, model: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(release document, its pinned reference) of every release of ``model`` in the repository."""
    found = []
    for path in sorted((repo / "releases").glob("*.json")):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if path.stem != digest:
            raise IntegrityError(f"{path}: its sha256 is {digest[:16]}..., not its name (a changed release file)")
        try:
            doc = json.loads(data)
        except ValueError:
            raise IntegrityError(f"{path} is not JSON") from None
        if isinstance(doc, dict) and doc.get("schema") == RELEASE_SCHEMA and doc.get("name") == model:
            found.append((doc, {"path": f"releases/{path.name}", "sha256": digest, "length": len(data)}))
    return found


def _arm(repo: Path, releases, spec: ArmSpec, trusted, model: str) -> tuple[dict[str, Any], set[str]]:
    """The index's record of one arm, after checking that its release and its variant's bundles are published."""
    matches = [(doc, ref) for doc, ref in releases if doc["version"] == spec.version
               and (spec.sequence is None or doc["sequence"] == spec.sequence)]
    if not matches:
        known = sorted({f"{doc['version']}@{doc['sequence']}" for doc, _ in releases})
        raise InputError(f"arm {spec.name!r}: no release {spec.version}{'@' + str(spec.sequence) if spec.sequence else ''} "
                         f"of {model} in {repo}", hint=f"published: {', '.join(known) or 'none'}; `deploykit publish` "
                         "it first (to this channel with --rollout 0, or to another channel)")
    if len(matches) > 1:
        raise UsageError(f"arm {spec.name!r}: {len(matches)} releases carry version {spec.version}",
                         hint="name one by its sequence: " + ", ".join(f"{spec.version}@{d['sequence']}" for d, _ in matches))
    doc, ref = matches[0]
    validate(doc, "release", f"release {ref['path']}")
    bundles = [b for b in doc["bundles"] if b["variant"] == spec.variant]
    if not bundles:
        raise InputError(f"arm {spec.name!r}: release {spec.version} has no {spec.variant!r} bundle",
                         hint=f"its variants: {', '.join(sorted({b['variant'] for b in doc['bundles']}))}")
    for item in bundles:  # the bundle a device of the arm will fetch: present, intact, signed by the publisher
        verified = verify_bundle(repo / item["path"], trusted)
        m = verified.manifest
        if verified.sha256 != item["sha256"] or (m.name, m.version, m.sequence, m.platform, m.variant) != (
                model, doc["version"], doc["sequence"], item["platform"], item["variant"]):
            raise IntegrityError(f"arm {spec.name!r}: {item['path']} is not the bundle its release lists")
    record = {"name": spec.name, "basis_points": spec.basis_points, "version": doc["version"],
              "sequence": doc["sequence"], "variant": spec.variant, "release": ref}
    return record, {b["platform"] for b in bundles}


def _offered_floor(entry: Mapping[str, Any], moment: dt.datetime) -> tuple[int, str]:
    """The highest sequence the channel may already have installed on a device: its release once rolled out to
    anyone, else the previous one, and the arms of an experiment that has started."""
    offers = [(entry["sequence"], "the channel's release")] if entry["rollout"]["percent"] > 0 else []
    if entry["previous"] is not None:
        offers.append((entry["previous"]["sequence"], "the channel's previous release"))
    running = entry.get("experiment")
    if running is not None and parse_time(running["start"]) <= moment:
        offers += [(arm["sequence"], f"arm {arm['name']!r} of experiment {running['name']!r}") for arm in running["arms"]]
    return max(offers, default=(0, "nothing"), key=lambda o: o[0])
