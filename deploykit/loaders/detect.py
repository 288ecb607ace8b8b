"""Tell the model format from the path and the file's first bytes, without loading any framework."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from deploykit.errors import InputError, UnsafeInputError

SUPPORTED = (
    ".keras (Keras 3), a TensorFlow SavedModel directory, .h5 (with --allow-h5), "
    ".pt2 (torch.export.save), TorchScript (torch.jit.save), path/to/file.py:factory or package.module:factory, .onnx"
)

_ENTRYPOINT = re.compile(r"^(?P<target>[^:]+?\.py|[A-Za-z_][\w.]*):(?P<factory>[A-Za-z_]\w*)$")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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
    suffix = path.suffix.lower()
    if head.startswith(HDF5_MAGIC) or suffix in (".h5", ".hdf5"):
        return "h5"
    if zipfile.is_zipfile(path):
        return _detect_zip(path)
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
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
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
