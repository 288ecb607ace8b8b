"""Metadata inside a .tflite file, in the two places a LiteRT app can read it.

What the runtime reads: a TFLite model has a ``metadata`` vector of (name, buffer) pairs. LiteRT's
InterpreterBuilder copies every entry into ``Interpreter::metadata()`` (C++), and the TFLite Support
``MetadataExtractor`` (Java/Kotlin, and Android Studio's ML Model Binding) reads the entry named
``TFLITE_METADATA``. We write:

- ``TFLITE_METADATA``: a ``ModelMetadata`` flatbuffer (file identifier ``M001``) laid out per
  tflite-support's metadata_schema.fbs: model name, description, version, author, license, and per
  input/output tensor its name, description, content (image with RGB/grayscale color space, or
  feature; a detector's boxes as BoundingBoxProperties), normalization (NormalizationOptions mean/std) and,
  for the labelled output, an associated file ``labels.txt`` of type TENSOR_AXIS_LABELS (TENSOR_VALUE_LABELS
  on a detector's class ids, ``labels["of"] == "values"``). As tflite-support does, associated files are packed
  as a zip appended after the flatbuffer (the flatbuffer verifier ignores trailing bytes).
- ``deploykit``: compact JSON with the bundle's name, version, sequence, variant and io, for apps
  that read ``Interpreter::metadata()`` directly.

Limits, honestly: tflite-support is not installed here, so the ``TFLITE_METADATA`` buffer is built with
the plain flatbuffers builder against the schema's field order, and read back by ``read_metadata``
below (written against the same schema). Only schema 1.0.0 fields are used (min_parser_version 1.0.0).
Models whose buffers live outside the flatbuffer (the >2 GB layout) are left unchanged. The model is
re-serialized with the LiteRT schema's object API; buffer data is re-aligned to 16 bytes as the
converter does. ``runs_identically`` checks that the result loads and gives bit-identical outputs.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from deploykit.core.types import ModelDescription
from deploykit.formats import litert_facade
from deploykit.formats.tflite.flatbuffer import read_model, write_model

METADATA_NAME = b"TFLITE_METADATA"
DEPLOYKIT_NAME = b"deploykit"
LABELS_FILE = "labels.txt"
_IMAGE, _FEATURE, _BOUNDING_BOX = 2, 1, 3  # ContentProperties union tags
_RGB, _GRAY = 1, 2  # ColorSpaceType
_NORMALIZATION = 1  # ProcessUnitOptions union tag
_AXIS_LABELS, _VALUE_LABELS = 2, 3  # AssociatedFileType: labels of an axis (class scores), of values (class ids)
_BOUNDARIES, _RATIO = 1, 0  # BoundingBoxType, CoordinateType


FLATBUFFER_LIMIT = 2**31 - 2**20  # a flatbuffer addresses 2 GB; keep room for the tables


class NotEmbeddable(Exception):
    """The model can't take embedded metadata; the bundle still carries everything in its manifest."""


@dataclass(frozen=True)
class TfliteMetadata(ModelDescription):
    extra: dict[str, Any]  # merged into the "deploykit" JSON entry


def _schema():
    schema_py_generated = litert_facade.schema()

    return schema_py_generated


def min_runtime_version(data: bytes) -> str | None:
    """The converter's own ``min_runtime_version`` metadata entry, if present."""
    schema = _schema()
    model = schema.Model.GetRootAs(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"min_runtime_version":
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return bytes(raw).split(b"\0", 1)[0].decode("ascii", "replace") or None
    return None


def embed(data: bytes, meta: TfliteMetadata) -> bytes:
    """``data`` with both metadata entries set (replacing earlier ones) and labels appended as a zip."""
    schema = _schema()
    if len(data) >= FLATBUFFER_LIMIT:
        raise NotEmbeddable("the model is over 2 GB and keeps its buffers outside the flatbuffer")
    model = read_model(data)  # moves buffers stored after the flatbuffer (ai-edge-quantizer) inside it
    payloads = {
        METADATA_NAME: _model_metadata(meta),
        DEPLOYKIT_NAME: json.dumps(_deploykit_entry(meta), sort_keys=True, separators=(",", ":")).encode(),
    }
    model.metadata = list(model.metadata or [])
    for name, payload in payloads.items():
        entry = next((m for m in model.metadata if _as_bytes(m.name) == name), None)
        if entry is None:
            entry = schema.MetadataT()
            entry.name, entry.buffer = name.decode(), len(model.buffers)
            model.buffers.append(schema.BufferT())
            model.metadata.append(entry)
        model.buffers[entry.buffer].data = payload
    out = write_model(model, len(data) + 4096)
    if meta.labels:
        out += _associated_zip({LABELS_FILE: ("\n".join(meta.labels) + "\n").encode("utf-8")})
    return out


def _as_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _associated_zip(files: dict[str, bytes]) -> bytes:
    from deploykit.core.timestamps import zip_timestamp

    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=zip_timestamp())
            info.create_system, info.external_attr = 3, 0o100644 << 16
            archive.writestr(info, files[name])
    return sink.getvalue()


def _deploykit_entry(meta: TfliteMetadata) -> dict[str, Any]:
    return {"name": meta.name, "version": meta.version, "inputs": list(meta.inputs), "outputs": list(meta.outputs),
            "labels": list(meta.labels) if meta.labels else None, **meta.extra}


def _model_metadata(meta: TfliteMetadata) -> bytes:
    """The ModelMetadata flatbuffer. Slot numbers follow the field order of metadata_schema.fbs."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def table(nslots: int, offsets: dict[int, int], bytes_: dict[int, int] | None = None) -> int:
        b.StartObject(nslots)
        for slot, value in offsets.items():
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        for slot, value in (bytes_ or {}).items():
            b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for value in reversed(offsets):
            b.PrependUOffsetTRelative(value)
        return b.EndVector()

    def floats(values) -> int:
        b.StartVector(4, len(values), 4)
        for value in reversed(values):
            b.PrependFloat32(float(value))
        return b.EndVector()

    def tensor(spec: dict[str, Any], description: str, labelled: bool) -> int:
        name, desc = b.CreateString(spec["name"]), b.CreateString(description)
        image = spec.get("layout") in ("NHWC", "NCHW") and _channels(spec) in (1, 3)
        boxes = spec.get("content") == "boxes"  # detector boxes [1, M, 4]: ymin, xmin, ymax, xmax in 0..1
        if image:  # ImageProperties {color_space}
            props = table(2, {}, {0: _RGB if _channels(spec) == 3 else _GRAY})
        elif boxes:  # BoundingBoxProperties {index, type, coordinate_type}: the order of left, top, right, bottom
            b.StartVector(4, 4, 4)
            for value in reversed((1, 0, 3, 2)):
                b.PrependUint32(value)
            props = table(3, {0: b.EndVector()}, {1: _BOUNDARIES, 2: _RATIO})
        else:  # FeatureProperties {}
            props = table(0, {})
        kind = _IMAGE if image else _BOUNDING_BOX if boxes else _FEATURE
        parts = {1: props}
        if boxes:  # ValueRange {min, max}: the dimensions a box spans, 2 of [1, M, 4]
            b.StartObject(2)
            b.PrependInt32Slot(0, 2, 0)
            b.PrependInt32Slot(1, 2, 0)
            parts[2] = b.EndObject()
        content = table(3, parts, {0: kind})  # Content {type, value, range}
        fields = {0: name, 1: desc, 3: content}
        norm = spec.get("normalization")
        if norm:
            options = table(2, {0: floats(norm["mean"]), 1: floats(norm["std"])})  # NormalizationOptions
            unit = table(2, {1: options}, {0: _NORMALIZATION})  # ProcessUnit {options_type, options}
            fields[4] = vector([unit])
        if labelled:
            file_name, file_desc = b.CreateString(LABELS_FILE), b.CreateString("Class labels, one per line")
            kind = _VALUE_LABELS if spec["labels"].get("of") == "values" else _AXIS_LABELS
            associated = table(4, {0: file_name, 1: file_desc}, {2: kind})  # AssociatedFile
            fields[6] = vector([associated])
        return table(7, fields)  # TensorMetadata

    inputs = [tensor(t, f"Input {t['name']}: {_describe(t)}", False) for t in meta.inputs]
    outputs = [tensor(t, f"Output {t['name']}: {_describe(t)}", bool(meta.labels) and t.get("labels") is not None)
               for t in meta.outputs]
    subgraph = table(7, {0: b.CreateString(meta.name), 2: vector(inputs), 3: vector(outputs)})  # SubGraphMetadata
    strings = [b.CreateString(s) for s in (meta.name, meta.description, meta.version, meta.author, meta.license, "1.0.0")]
    root = table(8, {0: strings[0], 1: strings[1], 2: strings[2], 3: vector([subgraph]), 4: strings[3],
                     5: strings[4], 7: strings[5]})  # ModelMetadata
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def _channels(spec: dict[str, Any]) -> int | None:
    shape = spec.get("shape") or []
    if len(shape) != 4:
        return None
    return shape[3] if spec.get("layout") == "NHWC" else shape[1]


def _describe(spec: dict[str, Any]) -> str:
    shape = "x".join("?" if d is None else str(d) for d in spec.get("shape", []))
    text = f"{spec.get('dtype')} [{shape}] {spec.get('layout') or ''}".strip()
    if spec.get("normalization"):
        text += f"; normalize (x - {spec['normalization']['mean']}) / {spec['normalization']['std']}"
    return text
