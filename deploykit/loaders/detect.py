"""Tell the model format from the path and the file's first bytes, without loading any framework; a zip
archive (.pt2, TorchScript, .keras) is also checked whole here, before any framework parses it."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from deploykit.core.errors import InputError, UnsafeInputError

SUPPORTED = (
    ".keras (Keras 3), a TensorFlow SavedModel directory, .h5 (with --allow-h5), "
    ".pt2 (torch.export.save), TorchScript (torch.jit.save), path/to/file.py:factory or package.module:factory, .onnx"
)

_ENTRYPOINT = re.compile(r"^(?P<target>[^:]+?\.py|[A-Za-z_][\w.]*):(?P<factory>[A-Za-z_]\w*)$")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"  # a local file header: .pt2, TorchScript and .keras files all start with one
DAMAGED_HINT = "the file was cut short or changed after it was saved; fetch or export the model again"


def split_entrypoint(source: str) -> tuple[str, str] | None:
    match = _ENTRYPOINT.match(source)
    return (match["target"], match["factory"]) if match else None


def detect_format(source: str | Path) -> str:
    text = str(source)
    entry = split_entrypoint(text)
    if entry and (entry[0].endswith(".py") or not Path(text).exists()):
        if entry[0].endswith(".py") and not Path(entry[0]).is_file():
            raise InputError(f"entry point file not found: {entry[0]}")
        return "entrypoint"
    path = Path(text)
    if not path.exists():
        raise InputError(f"model not found: {path}", hint=f"deploykit reads {SUPPORTED}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        if path.suffix == ".mlpackage":
            raise InputError(f"{path} is a Core ML package: it is an output of deploykit, not a source",
                             hint="convert from the Keras, PyTorch or ONNX model it came from")
        raise InputError(f"{path} is a directory without saved_model.pb", hint=f"deploykit reads {SUPPORTED}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise InputError(f"{path} is empty (0 bytes)", hint="the download or copy was cut short; fetch the model again")
    suffix = path.suffix.lower()
    if head.startswith(HDF5_MAGIC) or suffix in (".h5", ".hdf5"):
        return "h5"
    try:
        is_zip = zipfile.is_zipfile(path)
    except zipfile.BadZipFile as exc:  # is_zipfile itself raises on some damaged end records
        raise InputError(f"{path} is a damaged zip archive: {exc}", hint=DAMAGED_HINT) from exc
    if is_zip:
        return _detect_zip(path)
    if head.startswith(ZIP_MAGIC):
        raise InputError(f"{path} is a damaged or truncated zip archive: it has no zip directory at its end",
                         hint=DAMAGED_HINT)
    if suffix == ".onnx" or _looks_like_onnx(head):
        return "onnx"
    if suffix == ".tflite":
        raise InputError(f"{path} is a TFLite model: it is an output of deploykit, not a source",
                         hint="convert from the Keras, PyTorch or ONNX model it came from")
    if head[:1] == b"\x80" and suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        raise UnsafeInputError(
            f"{path} is a raw Python pickle; deploykit never unpickles arbitrary objects",
            hint="export the model with torch.export.save(...) to a .pt2 file, or pass an entry point with --weights",
        )
    raise InputError(f"cannot tell the format of {path}", hint=f"deploykit reads {SUPPORTED}")


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    return head[:1] == b"\x08"


def _detect_zip(path: Path) -> str:
    names = _checked_zip_names(path)
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "pt2"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("config.json") for n in names) and any(n.endswith("model.weights.h5") for n in names):
        return "keras"
    if any(n.endswith("data.pkl") for n in names):
        raise UnsafeInputError(
            f"{path} was written by torch.save: a pickled Python object (a whole module or a state dict); "
            "deploykit never unpickles arbitrary objects",
            hint="for a state dict pass the architecture as an entry point: deploykit convert net.py:build --weights "
            f"{path.name}; for a module export it with torch.export.save(torch.export.export(model, (example,)), 'model.pt2')",
        )
    raise InputError(f"{path} is a zip archive deploykit does not recognize", hint=f"deploykit reads {SUPPORTED}")


def _checked_zip_names(path: Path) -> list[str]:
    """The member names of the zip archive at ``path``, after checking that it is whole.

    torch reads .pt2 and TorchScript archives with its own zip reader, which checks no CRC (a flipped
    weight byte loads silently), and Keras fails on a damaged member only deep inside loading. So
    every member is read once here and its CRC-32 checked (about a second per GB). The directory
    must also list as many members as its end record declares (Python's reader lets one record's
    oversized comment swallow the ones after it), and the archive must start at byte 0: a directory
    found further in is a nested archive (the sample inputs a .pt2 stores) showing through a file
    whose own end was cut off.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos or min(i.header_offset for i in infos) != 0:
                raise InputError(f"{path} is a damaged or truncated zip archive: its directory does not describe "
                                 "the file from its first byte", hint=DAMAGED_HINT)
            declared = _declared_members(archive)
            if declared is not None and declared != len(infos):
                raise InputError(f"{path} is a damaged zip archive: its directory lists {len(infos)} members, "
                                 f"its end record {declared}", hint=DAMAGED_HINT)
            for info in infos:
                with archive.open(info) as member:  # reading to the end checks the CRC-32
                    while member.read(1 << 24):
                        pass
    except InputError:
        raise
    except Exception as exc:  # BadZipFile, but also ValueError, NotImplementedError, zlib.error, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{path} is a damaged zip archive: {first}", hint=DAMAGED_HINT) from exc
    return [i.filename for i in infos]


def _declared_members(archive: zipfile.ZipFile) -> int | None:
    """The member count the end record (zip64 when present) declares; None if this Python cannot tell."""
    read_end = getattr(zipfile, "_EndRecData", None)  # private, but unchanged since Python 2
    if read_end is None:
        return None
    end = read_end(archive.fp)
    return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else None
