"""The bundle manifest: its JSON Schema, canonical bytes, and the typed view the rest of the code reads.

The schemas live in ``deploykit/schemas/*.schema.json`` (package data). Every manifest, release file
and channel index is validated when written and again when read, so a document that passes one
deploykit version's writer is exactly what its readers accept.

Canonical JSON: sorted keys, two-space indent, ASCII only, one trailing newline. Pure ASCII means no
Unicode normalization question; sorted keys and fixed spacing mean the same data gives the same bytes,
which is what makes bundles reproducible and signatures stable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from deploykit.core.errors import DeployKitError, InputError, IntegrityError

MANIFEST_SCHEMA = "deploykit.manifest/1"
RELEASE_SCHEMA = "deploykit.release/1"
CHANNEL_SCHEMA = "deploykit.channel/1"
MANIFEST_NAME = "manifest.json"

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$")


def canonical_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


@lru_cache(maxsize=None)
def _validators():
    """One Draft 2020-12 validator per schema, sharing a registry so schemas can $ref each other."""
    from importlib import resources

    import jsonschema
    from referencing import Registry, Resource

    root = resources.files("deploykit.bundle") / "schemas"
    schemas = {n: json.loads((root / f"{n}.schema.json").read_text("utf-8")) for n in ("manifest", "release", "channel")}
    registry = Registry().with_resources(
        [(f"{n}.schema.json", Resource.from_contents(s)) for n, s in schemas.items()]
        + [(s["$id"], Resource.from_contents(s)) for s in schemas.values()]
    )
    return {n: jsonschema.Draft202012Validator(s, registry=registry) for n, s in schemas.items()}


def validate(doc: Any, schema: str, what: str, error: type[DeployKitError] = IntegrityError) -> None:
    """Raise ``error`` listing the first few schema violations of ``doc`` against ``<schema>.schema.json``."""
    problems = sorted(_validators()[schema].iter_errors(doc), key=lambda e: list(e.absolute_path))
    if problems:
        lines = [f"{'/'.join(map(str, p.absolute_path)) or '(root)'}: {p.message[:200]}" for p in problems[:5]]
        raise error(f"{what} does not match {schema}.schema.json: " + "; ".join(lines))


def parse_json(data: bytes, schema: str, what: str) -> dict[str, Any]:
    """Decode verified bytes and validate them; any problem is an IntegrityError."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{what} is not valid JSON ({exc})") from None
    validate(doc, schema, what)
    return doc


def check_name(name: str) -> str:
    if not _NAME.match(name) or len(name) > 255:
        raise InputError(f"--name {name!r} is not a reverse-DNS model name", hint="for example com.example.classifier")
    return name


def check_version(version: str) -> str:
    if not _SEMVER.match(version):
        raise InputError(f"--version {version!r} is not a semantic version", hint="for example 1.2.0 or 2.0.0-rc.1")
    return version


def default_sequence(version: str) -> int:
    """major * 1e6 + minor * 1e3 + patch: grows with ordinary releases, so most users never pass --sequence.

    Pre-releases and versions with a part over 999 have no such number and need an explicit --sequence;
    so does a rollback (the old files published under a higher sequence).
    """
    match = _SEMVER.match(check_version(version))
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    if match.group(4) or minor > 999 or patch > 999:
        raise InputError(f"cannot derive a sequence from version {version}", hint="pass --sequence N (an integer larger than any published before)")
    return major * 1_000_000 + minor * 1_000 + patch or 1


@dataclass(frozen=True)
class FileEntry:
    path: str
    role: str
    length: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "role": self.role, "length": self.length, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``raw`` is the exact document; the properties are what code needs most."""

    raw: dict[str, Any]

    @classmethod
    def from_payload(cls, payload: bytes) -> "Manifest":
        return cls(parse_json(payload, "manifest", "bundle manifest"))

    name = property(lambda self: self.raw["name"])
    version = property(lambda self: self.raw["version"])
    sequence = property(lambda self: self.raw["sequence"])
    platform = property(lambda self: self.raw["platform"])
    variant = property(lambda self: self.raw["variant"])
    model = property(lambda self: self.raw["model"])

    @property
    def files(self) -> tuple[FileEntry, ...]:
        return tuple(FileEntry(f["path"], f["role"], f["length"], f["sha256"]) for f in self.raw["files"])  # chunks: delta.py

    @property
    def total_bytes(self) -> int:
        return sum(f["length"] for f in self.raw["files"])
