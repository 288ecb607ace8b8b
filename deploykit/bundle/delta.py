"""Delta updates: the repository's chunk store (publish) and the client's rebuild from chunks (pull).

Every file a manifest lists carries its chunks (``chunking.py``: cut at each tensor's bytes where the format
allows, content-defined elsewhere; id = sha256 of the chunk's bytes). A fine-tune that changed the head leaves
the backbone's chunks as they were, so a device that has the previous version fetches only the head's.

Repository (``publish`` calls :func:`store`)::

    manifests/<sha256>.json     a bundle's signed manifest.json (the DSSE envelope, byte for byte), pinned by
                                hash and length in the release's bundle entry (``manifest``)
    chunks/<ab>/<sha256>        every chunk of every file, named by its hash: immutable, shared by all releases

Client (``pull`` calls :func:`fetch_delta` when a version is installed, unless told not to):

1. The release entry pins the manifest: fetched with its length as the cap, sha256 checked, then its DSSE
   signature verified with the trusted keys before it is parsed, then the schema; it must describe the model,
   version, sequence, platform and variant the release names, and its file list must be sound (no duplicate or
   case-colliding paths, the model path present, at most the size limit, chunks that tile each file).
2. Plan: a chunk is local when an installed version holds bytes that hash to its id (found through the stored
   manifests of the installed versions, or at the same path and offset in the current version; every local
   candidate is read and hashed). The delta is the manifest, the missing chunks and ``CHUNK_OVERHEAD`` bytes per
   chunk request; when that is not smaller than the bundle, the whole bundle is fetched instead (the manifest is
   then the only byte spent in vain). A device that shares (almost) nothing with the release (another platform or
   variant installed) gets the bundle: a zip's per-file overhead is smaller than a request's.
3. Fetch each missing chunk (``chunks/<ab>/<sha256>``, its listed length as the read cap, its sha256 checked
   while streaming) into a private directory. A chunk the server does not have, or whose bytes do not hash to
   its id, is refused like a tampered bundle: ``IntegrityError`` (exit 4), nothing installed.
4. Rebuild every file into a fresh private staging directory (``O_EXCL | O_NOFOLLOW``, paths checked as zip
   entries are), every chunk hashed again as it is written, and every file's length and sha256 compared with
   the signed manifest. On any failure the staging directory is removed; the caller renames a complete one
   into place exactly as it does an unpacked bundle.

The delta never trusts what is on the device: installed bytes are only used when they hash to an id the new
signed manifest lists, and the rebuilt files are checked against that manifest as a whole bundle's are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from deploykit.bundle.archive import Limits, SafeZip, create_exclusive, safe_join, write_atomic
from deploykit.bundle.chunking import tiling_problem
from deploykit.bundle.fetch import NotInRepository, Source
from deploykit.bundle.manifest import MANIFEST_NAME, Manifest, canonical_json
from deploykit.bundle.signing import MANIFEST_PAYLOAD_TYPE, PublicKey, verify_envelope
from deploykit.core.errors import IntegrityError

CHUNK_OVERHEAD = 512  # bytes a chunk request costs beyond its body (request line, response headers): for the plan
MANIFESTS = "manifests"  # in the model's install directory: the installed versions' manifests, an index of chunks
_READ = 1 << 20


def chunk_path(sha256: str) -> str:
    return f"chunks/{sha256[:2]}/{sha256}"


# -- publish --------------------------------------------------------------------------------------------------
def store(repo: Path, path: Path, manifest: Manifest, limits: Limits = Limits()) -> dict[str, Any] | None:
    """Store the verified bundle ``path``'s chunks and its signed manifest in ``repo``; the release entry's
    ``manifest`` reference, or None for a bundle whose manifest lists no chunks (built before delta updates)."""
    files = manifest.raw["files"]
    if any("chunks" not in f for f in files):
        return None
    with SafeZip(path, limits) as archive:
        envelope = archive.read_capped(MANIFEST_NAME, limits.max_manifest_bytes)
        for entry in files:
            problem = tiling_problem(entry)
            if problem:
                raise IntegrityError(f"{path.name}: {entry['path']}: {problem}")
            with archive.zip.open(archive.entries[entry["path"]]) as handle:
                for chunk in entry["chunks"]:
                    data = handle.read(chunk["length"])
                    if len(data) != chunk["length"] or hashlib.sha256(data).hexdigest() != chunk["sha256"]:
                        raise IntegrityError(f"{path.name}: {entry['path']}: the {chunk['length']} bytes at offset "
                                             f"{chunk['offset']} do not hash to the chunk id the manifest lists")
                    _write_once(repo / chunk_path(chunk["sha256"]), data)
    digest = hashlib.sha256(envelope).hexdigest()
    _write_once(repo / MANIFESTS / f"{digest}.json", envelope)
    return {"path": f"{MANIFESTS}/{digest}.json", "sha256": digest, "length": len(envelope)}


def _write_once(target: Path, data: bytes) -> None:
    """Content-addressed: an existing file already holds these bytes. New ones appear whole (temporary, rename)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)


# -- pull -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """Files rebuilt from chunks into ``staging`` and checked against the signed ``manifest``."""

    manifest: Manifest
    staging: Path
    chunks: int  # distinct chunks the files are made of
    chunks_fetched: int
    bytes_fetched: int  # chunk bodies
    bytes_reused: int


def fetch_delta(source: Source, item: dict[str, Any], expected: tuple, trusted: Iterable[PublicKey], model_dir: Path,
                versions: Path, limits: Limits = Limits()) -> Delivery | str:
    """Install ``item`` (a release's bundle entry) from chunks; a Delivery, or why the whole bundle is fetched
    instead. ``expected``: (name, version, sequence, platform, variant) the release names. IntegrityError for
    anything that fails a check, with nothing left behind."""
    ref = item.get("manifest")
    if ref is None:
        return "the release has no stored manifest (published before delta updates)"
    current = model_dir / "current"
    if not current.is_dir():
        return "no installed version to reuse"
    label = f"{ref['path']} (the manifest of {item['path']})"
    envelope = source.read_pinned(ref["path"], ref["length"], ref["sha256"])
    verified = verify_envelope(envelope, list(trusted), MANIFEST_PAYLOAD_TYPE, label)
    manifest = Manifest.from_payload(verified.payload)
    _check(manifest, expected, label, limits)
    files = manifest.raw["files"]
    if any("chunks" not in f for f in files):
        return "the manifest lists no chunks"
    needed: dict[str, int] = {}
    for entry in files:
        for chunk in entry["chunks"]:
            needed[chunk["sha256"]] = chunk["length"]
    local = _local_chunks(needed, files, model_dir, current)
    missing = {sha: length for sha, length in needed.items() if sha not in local}
    cost = ref["length"] + sum(missing.values()) + CHUNK_OVERHEAD * len(missing)
    if cost >= item["length"]:
        return (f"a delta ({len(missing)} of {len(needed)} chunks and the manifest) would be about {cost} bytes, "
                f"the whole bundle is {item['length']}")
    work = Path(tempfile.mkdtemp(prefix=".chunks-", dir=versions))
    staging = None
    try:
        for sha, length in sorted(missing.items()):
            try:
                source.download_pinned(chunk_path(sha), length, sha, work / sha)
            except NotInRepository as exc:
                raise IntegrityError(f"chunk {sha[:16]}... of the signed manifest is missing from the repository "
                                     f"({exc.message}); nothing was installed",
                                     hint="the repository is incomplete or was tampered with; publish the release again") from None
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=versions))
        for entry in files:
            _rebuild(entry, staging, local, work, model_dir)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Delivery(manifest, staging, len(needed), len(missing), sum(missing.values()),
                    sum(needed[sha] for sha in local))


def _check(manifest: Manifest, expected: tuple, label: str, limits: Limits) -> None:
    actual = (manifest.name, manifest.version, manifest.sequence, manifest.platform, manifest.variant)
    if actual != tuple(expected):
        raise IntegrityError(f"{label}: the signed manifest describes {actual}, not the release's {tuple(expected)} "
                             "(mix-and-match)")
    paths = [f["path"] for f in manifest.raw["files"]]
    folded = {unicodedata.normalize("NFC", p).casefold() for p in paths}
    if len(folded) != len(paths) or MANIFEST_NAME in paths:
        raise IntegrityError(f"{label}: the manifest lists a file twice, two files that collide on a case-insensitive "
                             "file system, or itself")
    if manifest.total_bytes > limits.max_total_bytes:
        raise IntegrityError(f"{label}: {manifest.total_bytes} bytes, over the limit of {limits.max_total_bytes}")
    if not any(p == manifest.model or p.startswith(manifest.model + "/") for p in paths):
        raise IntegrityError(f"{label}: the manifest's model path {manifest.model!r} matches no file")
    for entry in manifest.raw["files"]:
        problem = tiling_problem(entry)
        if problem:
            raise IntegrityError(f"{label}: {entry['path']}: {problem}")


def _local_chunks(needed: dict[str, int], files: list[dict[str, Any]], model_dir: Path,
                  current: Path) -> dict[str, tuple[Path, int]]:
    """Chunk id -> (installed file, offset) for every needed chunk an installed version holds, each read and hashed."""
    candidates: dict[str, list[tuple[Path, int]]] = {}
    for version, listed in _installed_manifests(model_dir):
        for entry in listed:
            for chunk in entry.get("chunks") or ():
                if chunk.get("sha256") in needed:
                    candidates.setdefault(chunk["sha256"], []).append((version / entry["path"], chunk["offset"]))
    for entry in files:  # the same path and offset in the current version: installs made before manifests were kept
        for chunk in entry["chunks"]:
            candidates.setdefault(chunk["sha256"], []).append((current / entry["path"], chunk["offset"]))
    found = {}
    for sha, places in candidates.items():
        for path, offset in places:
            data = _read_local(path, offset, needed[sha], model_dir)
            if data is not None and hashlib.sha256(data).hexdigest() == sha:
                found[sha] = (path, offset)
                break
    return found


def _installed_manifests(model_dir: Path):
    """(version directory, its manifest's file entries) for every installed version whose manifest was kept."""
    folder = model_dir / MANIFESTS
    if not folder.is_dir():
        return
    for kept in sorted(folder.glob("*.json")):
        version = model_dir / "versions" / kept.stem
        if not version.is_dir() or kept.stat().st_size > Limits().max_manifest_bytes:
            continue
        try:
            listed = json.loads(kept.read_text("utf-8"))["files"]
            if isinstance(listed, list) and all(isinstance(e, dict) and isinstance(e.get("path"), str) for e in listed):
                yield version, listed
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an index only: whatever it says is hashed before use


def _read_local(path: Path, offset: int, length: int, model_dir: Path) -> bytes | None:
    try:
        resolved = path.resolve()
        if model_dir.resolve() not in resolved.parents or not isinstance(offset, int) or offset < 0:
            return None
        with open(resolved, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return data if len(data) == length else None
    except OSError:
        return None


def _rebuild(entry: dict[str, Any], staging: Path, local: dict[str, tuple[Path, int]], work: Path, model_dir: Path) -> None:
    digest, size = hashlib.sha256(), 0
    with create_exclusive(safe_join(staging, entry["path"])) as out:
        for chunk in entry["chunks"]:
            sha = chunk["sha256"]
            if sha in local:
                path, offset = local[sha]
                data = _read_local(path, offset, chunk["length"], model_dir)
            else:
                data = (work / sha).read_bytes()
            if data is None or len(data) != chunk["length"] or hashlib.sha256(data).hexdigest() != sha:
                raise IntegrityError(f"{entry['path']}: chunk {sha[:16]}... changed while the update was built; "
                                     "nothing was installed")
            digest.update(data)
            size += len(data)
            out.write(data)
    if size != entry["length"] or digest.hexdigest() != entry["sha256"]:
        raise IntegrityError(f"{entry['path']}: rebuilt from its chunks it is {size} bytes with sha256 "
                             f"{digest.hexdigest()[:16]}..., the signed manifest says {entry['length']} bytes, "
                             f"{entry['sha256'][:16]}...; nothing was installed")


def remember(model_dir: Path, version_name: str, manifest: Manifest, keep: set) -> None:
    """Keep the installed version's manifest (the index the next delta looks chunks up in); drop the others'."""
    folder = model_dir / MANIFESTS
    folder.mkdir(exist_ok=True)
    target = folder / f"{version_name}.json"
    tmp = folder / f".{version_name}.json.tmp-{os.getpid()}"
    tmp.write_bytes(canonical_json(manifest.raw))
    os.replace(tmp, target)
    for other in folder.glob("*.json"):
        if other.stem not in keep:
            other.unlink(missing_ok=True)
