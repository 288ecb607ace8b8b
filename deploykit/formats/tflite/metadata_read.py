"""Read back what ``formats.tflite.metadata`` embeds, and check that the model still runs the same in LiteRT.

The ``TFLITE_METADATA`` reader walks the flatbuffer generically (vtable slot = field order in
metadata_schema.fbs), the way the generated tflite-support accessors do, so it is usable without
tflite-support installed. Used by tests, by ``verify-bundle --json`` and as a self-check after embedding.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from deploykit.formats import litert_facade
from deploykit.formats.tflite.metadata import DEPLOYKIT_NAME, METADATA_NAME


def metadata_entries(data: bytes) -> dict[str, bytes]:
    """Every (name -> buffer bytes) pair of the model's metadata vector: what Interpreter::metadata() holds."""
    schema = litert_facade.schema()

    model = schema.Model.GetRootAs(bytearray(data), 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        raw = model.Buffers(entry.Buffer()).DataAsNumpy()
        entries[entry.Name().decode()] = bytes(raw) if not isinstance(raw, int) else b""
    return entries


def associated_files(data: bytes) -> dict[str, bytes]:
    """Files packed after the flatbuffer as a zip (the tflite-support convention)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if info.file_size < (1 << 24)}
    except zipfile.BadZipFile:
        return {}


def read_metadata(data: bytes) -> dict[str, Any]:
    """Decoded ``TFLITE_METADATA`` and ``deploykit`` entries plus the associated file names."""
    entries = metadata_entries(data)
    result: dict[str, Any] = {"entries": sorted(entries), "associated_files": sorted(associated_files(data))}
    if DEPLOYKIT_NAME.decode() in entries:
        result["deploykit"] = json.loads(entries[DEPLOYKIT_NAME.decode()])
    if METADATA_NAME.decode() in entries:
        result["model_metadata"] = _decode_model_metadata(entries[METADATA_NAME.decode()])
    return result


class _Table:
    def __init__(self, buf: bytes, pos: int):
        from flatbuffers.table import Table

        self.tab = Table(bytearray(buf), pos)

    def _off(self, slot: int) -> int:
        return self.tab.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        off = self._off(slot)
        return self.tab.String(off + self.tab.Pos).decode() if off else None

    def u8(self, slot: int) -> int:
        from flatbuffers import number_types

        off = self._off(slot)
        return self.tab.Get(number_types.Uint8Flags, off + self.tab.Pos) if off else 0

    def table(self, slot: int) -> "_Table | None":
        off = self._off(slot)
        return _Table(self.tab.Bytes, self.tab.Indirect(off + self.tab.Pos)) if off else None

    def tables(self, slot: int) -> list["_Table"]:
        off = self._off(slot)
        if not off:
            return []
        start = self.tab.Vector(off)
        return [_Table(self.tab.Bytes, self.tab.Indirect(start + 4 * i)) for i in range(self.tab.VectorLen(off))]

    def floats(self, slot: int) -> list[float]:
        from flatbuffers import number_types

        off = self._off(slot)
        if not off:
            return []
        start = self.tab.Vector(off)
        return [self.tab.Get(number_types.Float32Flags, start + 4 * i) for i in range(self.tab.VectorLen(off))]


def _decode_model_metadata(buf: bytes) -> dict[str, Any]:
    import flatbuffers

    if buf[4:8] != b"M001":
        raise ValueError("TFLITE_METADATA does not carry the M001 file identifier")
    root = _Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(buf), 0))
    subgraphs = root.tables(3)
    return {
        "name": root.string(0), "description": root.string(1), "version": root.string(2),
        "author": root.string(4), "license": root.string(5), "min_parser_version": root.string(7),
        "inputs": [_decode_tensor(t) for t in subgraphs[0].tables(2)] if subgraphs else [],
        "outputs": [_decode_tensor(t) for t in subgraphs[0].tables(3)] if subgraphs else [],
    }


def _decode_tensor(t: _Table) -> dict[str, Any]:
    content = t.table(3)
    kind = {1: "feature", 2: "image", 3: "bounding_box"}.get(content.u8(0), "none") if content else "none"
    color = None
    if kind == "image":
        color = {0: "unknown", 1: "rgb", 2: "grayscale"}[content.table(1).u8(0)]
    normalization = None
    for unit in t.tables(4):
        if unit.u8(0) == 1:
            options = unit.table(1)
            normalization = {"mean": options.floats(0), "std": options.floats(1)}
    files = [{"name": f.string(0), "type": {2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS"}.get(f.u8(2), f.u8(2))}
             for f in t.tables(6)]
    return {"name": t.string(0), "description": t.string(1), "content": kind, "color_space": color,
            "normalization": normalization, "associated_files": files}


def runs_identically(original: bytes, embedded: bytes, seed: int = 0) -> bool | None:
    """Both models loaded in ai_edge_litert, fed the same seeded inputs: are all outputs bit-identical?

    None when the original itself does not load here (custom or Flex ops): nothing to compare against.
    """
    import numpy as np

    try:
        reference = _run(original, seed)
    except Exception:  # noqa: BLE001 - upstream raises plain RuntimeError/ValueError for unsupported ops
        return None
    candidate = _run(embedded, seed)
    return len(reference) == len(candidate) and all(np.array_equal(a, b) for a, b in zip(reference, candidate))


def _run(data: bytes, seed: int):
    import numpy as np

    from deploykit.formats.litert_facade import interpreter as open_interpreter

    interpreter = open_interpreter(content=data, threads=1)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype, shape = detail["dtype"], detail["shape"]
        if np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            value = rng.integers(0, 2, shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]
