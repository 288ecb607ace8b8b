"""Deterministic zip writing and defensive zip reading.

Writing: entries in the given order (the caller puts manifest.json first and sorts the rest), every
entry STORED (uncompressed) with one timestamp (SOURCE_DATE_EPOCH, clamped to the zip range, default
1980-01-01), mode 0644, Unix "made by", no extra fields, no comments. STORED rather than DEFLATE
because deflate output depends on the zlib build (bytes would differ across machines), model weights
barely compress, and Android needs .tflite stored uncompressed to memory-map it anyway; HTTP servers
can still compress in transit.

Reading (``SafeZip``): a bundle is hostile until proven otherwise. Before any entry is read we refuse
archives with too many entries (counted from the end record, before Python parses the directory),
names that are absolute, contain ``..``/``.``/empty components, backslashes, drive letters, NUL or
control characters, directory / symlink / device entries (Unix mode in the external attributes),
encrypted or exotically compressed entries, duplicate names and names that collide after Unicode
case folding (they would overwrite each other on macOS/Windows). Every read is capped: an entry's
declared size must equal what the manifest says, and we read at most that many bytes plus one, so a
zip bomb whose headers lie produces at most the declared bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from deploykit.core.errors import IntegrityError
from deploykit.core.timestamps import zip_timestamp

FILE_MODE = 0o100644
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Limits:
    """Caps for reading untrusted bundles. Generous for real models, small enough to stop abuse."""

    max_entries: int = 10_000
    max_manifest_bytes: int = 1 << 20
    max_total_bytes: int = 8 << 30
    max_name_length: int = 512


def write_zip(path: Path, entries: Iterable[tuple[str, bytes | Path]]) -> None:
    """Write ``entries`` (archive name, bytes or a file to copy) to ``path`` exactly in the given order.

    The file is written next to ``path`` under a temporary name and renamed, so a crash leaves no
    half-written bundle.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    stamp = zip_timestamp()
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, source in entries:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3  # Unix, so the mode below is meaningful everywhere
                info.external_attr = FILE_MODE << 16
                if isinstance(source, (bytes, bytearray)):
                    archive.writestr(info, bytes(source))
                else:
                    info.file_size = Path(source).stat().st_size
                    with open(source, "rb") as src, archive.open(info, "w") as dst:
                        while chunk := src.read(_CHUNK):
                            dst.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_name(name: str, limits: Limits = Limits()) -> str:
    """Return ``name`` if it is a safe relative POSIX path, else raise IntegrityError saying why."""
    def refuse(why: str):
        raise IntegrityError(f"unsafe zip entry {name!r}: {why}; nothing was extracted")

    if not name:
        refuse("empty name")
    if "\x00" in name:
        refuse("NUL byte in name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        refuse("control character in name")
    if len(name) > limits.max_name_length:
        refuse("name too long")
    if "\\" in name:
        refuse("backslash in name (a Windows path separator)")
    if name.startswith("/") or _DRIVE.match(name):
        refuse("absolute path")
    if name.endswith("/"):
        refuse("directory entry")
    parts = name.split("/")
    if ".." in parts:
        refuse("'..' path component escapes the destination")
    if any(p in ("", ".") for p in parts):
        refuse("empty or '.' path component")
    return name


def _count_entries(handle: BinaryIO) -> int:
    """Entry count from the end-of-central-directory record, read before zipfile parses the directory."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_size = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise IntegrityError("not a zip archive (no end of central directory record)")
    total = struct.unpack("<H", tail[at + 10:at + 12])[0]
    locator = at - 20  # a zip64 locator, when present, sits right before the end record
    has_locator = locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07"
    if total == 0xFFFF or has_locator:  # zip64: the real count is in the zip64 end record
        if not has_locator:
            raise IntegrityError("zip64 archive without a zip64 locator")
        (eocd64,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
        handle.seek(eocd64)
        record = handle.read(56)
        if record[:4] != b"PK\x06\x06":
            raise IntegrityError("corrupt zip64 end record")
        total = struct.unpack("<Q", record[32:40])[0]
    return total


class SafeZip:
    """A zip opened for verification: every entry already passed the checks in the module docstring."""

    def __init__(self, path: str | Path, limits: Limits = Limits()):
        self.path, self.limits = Path(path), limits
        self._handle = open(self.path, "rb")
        try:
            count = _count_entries(self._handle)
            if count > limits.max_entries:
                raise IntegrityError(f"{self.path.name}: {count} entries, over the limit of {limits.max_entries}")
            self._handle.seek(0)
            self.zip = zipfile.ZipFile(self._handle)
            self.entries = self._checked_entries()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, struct.error) as exc:
            self.close()
            raise IntegrityError(f"{self.path.name}: corrupt zip archive ({exc})") from None
        except BaseException:
            self.close()
            raise

    def _checked_entries(self) -> dict[str, zipfile.ZipInfo]:
        infos = self.zip.infolist()
        if len(infos) > self.limits.max_entries:
            raise IntegrityError(f"{self.path.name}: {len(infos)} entries, over the limit of {self.limits.max_entries}")
        entries: dict[str, zipfile.ZipInfo] = {}
        folded: dict[str, str] = {}
        for info in infos:
            name = check_name(info.orig_filename, self.limits)
            if info.filename != name:
                raise IntegrityError(f"unsafe zip entry {name!r}: name rewritten by the zip reader")
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode:
                if stat.S_ISLNK(mode):
                    raise IntegrityError(f"unsafe zip entry {name!r}: symbolic link")
                if not stat.S_ISREG(mode):
                    raise IntegrityError(f"unsafe zip entry {name!r}: not a regular file (mode {mode:o})")
            if info.external_attr & 0x10:  # MS-DOS directory attribute
                raise IntegrityError(f"unsafe zip entry {name!r}: directory entry")
            if info.flag_bits & 0x1:
                raise IntegrityError(f"zip entry {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise IntegrityError(f"zip entry {name!r} uses unsupported compression {info.compress_type}")
            if name in entries:
                raise IntegrityError(f"duplicate zip entry {name!r}: two entries would claim one file")
            key = unicodedata.normalize("NFC", name).casefold()
            if key in folded:
                raise IntegrityError(f"zip entries {folded[key]!r} and {name!r} collide on a case-insensitive file system")
            folded[key] = name
            entries[name] = info
        return entries

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def read_capped(self, name: str, cap: int) -> bytes:
        """The entry's bytes, refusing it unread if it declares more than ``cap`` and stopping at ``cap`` + 1."""
        info = self._info(name)
        if info.file_size > cap:
            raise IntegrityError(f"zip entry {name!r} declares {info.file_size} bytes, over the limit of {cap}")
        chunks = list(self._stream(info, cap))
        return b"".join(chunks)

    def copy_verified(self, name: str, length: int, sha256: str, target: BinaryIO | None) -> None:
        """Stream the entry to ``target`` (or nowhere), requiring exactly ``length`` bytes with ``sha256``."""
        info = self._info(name)
        if info.file_size != length:
            raise IntegrityError(f"{name}: zip header declares {info.file_size} bytes, the manifest says {length}")
        digest, seen = hashlib.sha256(), 0
        for chunk in self._stream(info, length):
            digest.update(chunk)
            seen += len(chunk)
            if target is not None:
                target.write(chunk)
        if seen != length:
            raise IntegrityError(f"{name}: {seen} bytes, the manifest says {length}")
        if digest.hexdigest() != sha256:
            raise IntegrityError(f"{name}: sha256 {digest.hexdigest()[:16]}... does not match the manifest "
                                 f"({sha256[:16]}...): the file was modified")

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = self.entries.get(name)
        if info is None:
            raise IntegrityError(f"{self.path.name}: entry {name!r} listed in the manifest is missing")
        return info

    def _stream(self, info: zipfile.ZipInfo, cap: int):
        read = 0
        try:
            with self.zip.open(info) as handle:
                while True:
                    chunk = handle.read(min(_CHUNK, cap + 1 - read))
                    if not chunk:
                        return
                    read += len(chunk)
                    if read > cap:
                        raise IntegrityError(f"zip entry {info.filename!r} is longer than its declared {cap} bytes")
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise IntegrityError(f"zip entry {info.filename!r} is corrupt ({exc})") from None

    def close(self) -> None:
        zf = getattr(self, "zip", None)
        if zf is not None:
            zf.close()
        self._handle.close()

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative`` for an already checked name, verified again after resolving (defense in depth)."""
    check_name(relative)
    root_resolved = root.resolve()
    target = (root_resolved / relative).resolve()
    if root_resolved not in target.parents:
        raise IntegrityError(f"zip entry {relative!r} resolves outside the destination")
    return target


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one (temporary file, fsync,
    rename), never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def create_exclusive(path: Path):
    """Open a new file for writing; never follow a symlink and never replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o644), "wb")
