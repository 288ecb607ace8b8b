"""Check a bundle completely, and optionally unpack it, in the order that keeps untrusted bytes unparsed.

1. Open the zip defensively (entry count, names, types, duplicates, case collisions: see archive.py).
2. The first entry must be manifest.json; read at most 1 MiB of it.
3. Verify the DSSE signature over the exact payload bytes with the trusted keys.
4. Only then parse the payload and validate it against manifest.schema.json.
5. The archive must hold exactly manifest.json plus the manifest's files: nothing extra, nothing missing.
6. Stream every file (capped at its declared length) and compare its sha256; when unpacking, write it
   into a fresh directory with O_EXCL|O_NOFOLLOW. On any failure the directory is removed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploykit.bundle.archive import Limits, SafeZip, create_exclusive, safe_join
from deploykit.bundle.chunking import tiling_problem
from deploykit.bundle.manifest import MANIFEST_NAME, Manifest
from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, PublicKey, verify_envelope
from deploykit.core.errors import InputError, IntegrityError
from deploykit.core.hashing import sha256_file


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    sha256: str
    length: int
    manifest: Manifest
    keyids: tuple[str, ...]

    def to_json(self) -> dict:
        m = self.manifest
        return {"bundle": str(self.path), "sha256": self.sha256, "length": self.length, "signed_by": list(self.keyids),
                "name": m.name, "version": m.version, "sequence": m.sequence, "platform": m.platform,
                "variant": m.variant, "files": len(m.files), "manifest": m.raw}


def verify_bundle(path: str | Path, trusted: Sequence[PublicKey], *, threshold: int = 1,
                  limits: Limits = Limits(), unpack_to: Path | None = None, _fresh: bool = False) -> VerifiedBundle:
    """Verify ``path``; with ``unpack_to`` (a directory that must not exist yet) also unpack it there."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bundle {path} not found")
    with SafeZip(path, limits) as archive:
        names = archive.names
        if not names or names[0] != MANIFEST_NAME:
            raise IntegrityError(f"{path.name}: the first entry must be {MANIFEST_NAME}, found {names[:1]}")
        envelope = archive.read_capped(MANIFEST_NAME, limits.max_manifest_bytes)
        verified = verify_envelope(envelope, trusted, MANIFEST_PAYLOAD_TYPE, f"{path.name}: manifest", threshold)
        manifest = Manifest.from_payload(verified.payload)
        _check_listing(path.name, names, manifest, limits)
        if unpack_to is None:
            for entry in manifest.files:
                archive.copy_verified(entry.path, entry.length, entry.sha256, None)
        else:
            _unpack(archive, manifest, Path(unpack_to), _fresh)
    return VerifiedBundle(path=path, sha256=sha256_file(path), length=path.stat().st_size,
                          manifest=manifest, keyids=verified.keyids)


def _check_listing(label: str, names: list[str], manifest: Manifest, limits: Limits) -> None:
    listed = [f.path for f in manifest.files]
    if len(set(listed)) != len(listed):
        raise IntegrityError(f"{label}: the manifest lists a file twice")
    if MANIFEST_NAME in listed:
        raise IntegrityError(f"{label}: the manifest lists itself")
    expected, present = set(listed), set(names[1:])
    if extra := sorted(present - expected):
        raise IntegrityError(f"{label}: entries not in the manifest: {', '.join(extra[:5])}")
    if missing := sorted(expected - present):
        raise IntegrityError(f"{label}: files in the manifest missing from the archive: {', '.join(missing[:5])}")
    if manifest.total_bytes > limits.max_total_bytes:
        raise IntegrityError(f"{label}: {manifest.total_bytes} bytes unpacked, over the limit of {limits.max_total_bytes}")
    model = manifest.model
    if not any(p == model or p.startswith(model + "/") for p in listed):
        raise IntegrityError(f"{label}: the manifest's model path {model!r} matches no file")
    for entry in manifest.raw["files"]:  # delta updates rebuild files from these: they must tile each file
        if problem := tiling_problem(entry):
            raise IntegrityError(f"{label}: {entry['path']}: {problem}")


def _unpack(archive: SafeZip, manifest: Manifest, target: Path, fresh: bool) -> None:
    if not fresh:
        if target.exists():
            raise InputError(f"unpack target {target} already exists")
        target.mkdir(parents=True)
    try:
        for entry in manifest.files:
            with create_exclusive(safe_join(target, entry.path)) as handle:
                archive.copy_verified(entry.path, entry.length, entry.sha256, handle)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def unpack_to_temp(path: Path, trusted: Sequence[PublicKey], parent: Path, limits: Limits = Limits()) -> tuple[VerifiedBundle, Path]:
    """Verify and unpack into a new temporary directory inside ``parent`` (same file system, so the
    caller can rename it into place atomically)."""
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))  # private (0700) and empty
    try:
        verified = verify_bundle(path, trusted, limits=limits, unpack_to=staging, _fresh=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return verified, staging
