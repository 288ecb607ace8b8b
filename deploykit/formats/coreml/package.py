"""Opening a saved ``.mlpackage``: its manifest, the ``Model`` protobuf and the weight blobs.

Layout (see shared/notes/coreml-on-linux.md)::

    X.mlpackage/Manifest.json                          item entries; rootModelIdentifier
    X.mlpackage/Data/com.apple.CoreML/model.mlmodel    serialized Model protobuf
    X.mlpackage/Data/com.apple.CoreML/weights/weight.bin

weight.bin: a 64-byte header (uint32 count, uint32 version = 2, reserved), then for each blob a
64-byte-aligned 64-byte record (uint32 sentinel 0xDEADBEEF, uint32 dtype code, uint64 size in
bytes, uint64 offset of the data, uint64 padding in bits for sub-byte types, reserved) followed
somewhere later by the data. A ``blobFileValue`` offset points at the record, not the data.

Every offset and size is checked against the file before it is used, so a truncated or corrupt
file raises ``InputError`` instead of returning garbage, and no path in the package may point
outside it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError, UnsafeInputError
from deploykit.formats import coremltools_facade

from .values import DType, unpack_bits

SENTINEL = 0xDEADBEEF
HEADER_SIZE = 64
RECORD_SIZE = 64
BLOB_VERSION = 2
MODEL_PATH_PREFIX = "@model_path/"
_RECORD = struct.Struct("<IIQQQ")


@dataclass(frozen=True)
class PackageFiles:
    """Where the parts of one package are, all resolved inside ``root``."""

    root: Path
    model_file: Path

    @property
    def model_dir(self) -> Path:
        return self.model_file.parent


def locate(path) -> PackageFiles:
    """Read Manifest.json and find the root model file, refusing paths that leave the package."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root} is not an .mlpackage directory",
                         hint="the numpy evaluator reads ML Program packages (.mlpackage) only")
    manifest_file = root / "Manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        entries = manifest["itemInfoEntries"]
        item = entries[manifest["rootModelIdentifier"]]
        relative = item["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_file}: unreadable or incomplete package manifest ({exc})") from exc
    if not isinstance(relative, str):
        raise InputError(f"{manifest_file}: the root model path is not a string")
    model_file = inside(root, root / "Data", relative)
    if not model_file.is_file():
        raise InputError(f"{root}: the manifest names {relative}, which does not exist")
    return PackageFiles(root=root.resolve(), model_file=model_file)


def inside(root: Path, base: Path, relative: str) -> Path:
    """``base / relative`` resolved (symlinks included), or UnsafeInputError if it leaves ``root``."""
    if Path(relative).is_absolute() or "\\" in relative:
        raise UnsafeInputError(f"{root}: path {relative!r} is absolute; package paths must be relative")
    target = (base / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UnsafeInputError(f"{root}: path {relative!r} points outside the package")
    return target


def load_model(files: PackageFiles):
    """The root ``Model`` protobuf message."""
    try:
        data = files.model_file.read_bytes()
    except OSError as exc:
        raise InputError(f"{files.model_file}: {exc}") from exc
    model = coremltools_facade.model_pb2().Model()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeError from upb
        raise InputError(f"{files.model_file}: not a Core ML model protobuf ({exc})") from exc
    return model


class BlobStore:
    """The weight files of one package, opened on first use and kept in memory while loading."""

    def __init__(self, files: PackageFiles):
        self._files = files
        self._open: dict[Path, BlobFile] = {}

    def read(self, file_name: str, offset: int, dtype: DType, count: int, where: str) -> np.ndarray:
        if not file_name.startswith(MODEL_PATH_PREFIX):
            raise UnsafeInputError(f"{where}: blob file {file_name!r} is not relative to @model_path")
        path = inside(self._files.root, self._files.model_dir, file_name[len(MODEL_PATH_PREFIX):])
        if path not in self._open:
            self._open[path] = BlobFile(path)
        return self._open[path].read(offset, dtype, count, where)


class BlobFile:
    """One weight.bin, validated header first, each record when read."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._data = memoryview(path.read_bytes())
        except OSError as exc:
            raise InputError(f"{path}: cannot read weight file ({exc})") from exc
        if len(self._data) < HEADER_SIZE:
            raise InputError(f"{path}: weight file is {len(self._data)} bytes, shorter than its 64-byte header")
        count, version = struct.unpack_from("<II", self._data, 0)
        if version != BLOB_VERSION:
            raise InputError(f"{path}: weight file version {version}, expected {BLOB_VERSION}")
        self.count = count

    def read(self, offset: int, dtype: DType, count: int, where: str) -> np.ndarray:
        """The ``count`` values of the blob whose record starts at ``offset``, as a flat array."""
        size = len(self._data)
        if offset < HEADER_SIZE or offset % RECORD_SIZE or offset + RECORD_SIZE > size:
            raise self._corrupt(where, f"record offset {offset} is not a 64-byte-aligned record inside the file ({size} bytes)")
        sentinel, code, nbytes, data_offset, padding_bits = _RECORD.unpack_from(self._data, offset)
        if sentinel != SENTINEL:
            raise self._corrupt(where, f"no blob record at offset {offset} (sentinel {sentinel:#x})")
        if dtype.blob_code is None or code != dtype.blob_code:
            raise self._corrupt(where, f"blob at offset {offset} has dtype code {code}, the program expects {dtype.name}")
        if data_offset < offset + RECORD_SIZE or data_offset + nbytes > size:
            raise self._corrupt(where, f"blob data [{data_offset}, {data_offset + nbytes}) lies outside the file ({size} bytes)")
        raw = self._data[data_offset: data_offset + nbytes]
        if dtype.bits is not None:
            needed = count * dtype.bits
            if nbytes * 8 < needed or nbytes * 8 - needed >= 8 or padding_bits >= 8:
                raise self._corrupt(where, f"{nbytes} bytes (padding {padding_bits} bits) for {count} {dtype.name} values")
            return unpack_bits(raw, count, dtype)
        if nbytes != count * dtype.public.itemsize:
            raise self._corrupt(where, f"blob holds {nbytes} bytes, {count} {dtype.name} values need {count * dtype.public.itemsize}")
        return np.frombuffer(raw, dtype.public).copy()

    def _corrupt(self, where: str, detail: str) -> InputError:
        return InputError(f"{self.path}: corrupt weight file: {detail} (reading {where})",
                          hint="re-save the model with coremltools; the file may be truncated")


def blob_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every blob's data in a weight.bin, walking its records in file order (each record
    follows the previous blob's data at the next 64-byte boundary, as coremltools writes them); the walk stops
    at the first record that does not check out. The bundle cuts its delta-update chunks here, keeping the
    records (which hold absolute offsets) out of the chunks of the weights they describe."""
    if len(data) < HEADER_SIZE:
        return []
    count, version = struct.unpack_from("<II", data, 0)
    spans, offset = [], HEADER_SIZE
    for _ in range(count if version == BLOB_VERSION else 0):
        if offset + RECORD_SIZE > len(data):
            break
        sentinel, _, nbytes, data_offset, _ = _RECORD.unpack_from(data, offset)
        if sentinel != SENTINEL or data_offset < offset + RECORD_SIZE or data_offset + nbytes > len(data):
            break
        spans.append((data_offset, nbytes))
        offset = -(-(data_offset + nbytes) // RECORD_SIZE) * RECORD_SIZE
    return spans
