"""Where a ``.pte`` keeps its data: the byte range of every segment, and of every constant tensor inside the
constant segment, read from the file's extended header and the program flatbuffer without executorch.

Layout: the program flatbuffer first (its root offset, ``ET12`` at bytes 4-8, then the extended header
``eh00``: header length, program size, segment base offset), then the segments, each at
``segment_base_offset + DataSegment.offset``. ``Program.segments`` (field 4) lists them; ``constant_segment``
(field 5) names the segment holding the constant tensors and each tensor's offset inside it; delegate payloads
(XNNPACK's) and named data (its weights, since ExecuTorch 0.7) are segments of their own. The bundle cuts its
delta-update chunks at these ranges.
"""

from __future__ import annotations

import struct

from flatbuffers.number_types import Uint32Flags, Uint64Flags
from flatbuffers.table import Table

_SEGMENTS, _CONSTANT_SEGMENT = 4, 5  # Program's field numbers in program.fbs


def segment_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every segment and constant tensor; [] when ``data`` is not a .pte with segments."""
    try:
        return _spans(data)
    except (struct.error, IndexError, ValueError):
        return []


def _spans(data: bytes) -> list[tuple[int, int]]:
    if len(data) < 32 or data[4:6] != b"ET" or data[8:12] != b"eh00":
        return []
    base = struct.unpack_from("<Q", data, 24)[0]
    root = Table(data, struct.unpack_from("<I", data, 0)[0])
    segments = []
    for position in _vector_tables(root, _SEGMENTS):
        segment = Table(data, position)
        offset, size = _u64(segment, 0), _u64(segment, 1)
        segments.append((base + offset, size))
    spans = [s for s in segments if s[1] and s[0] + s[1] <= len(data)]
    field = root.Offset(4 + 2 * _CONSTANT_SEGMENT)
    if field:
        constants = Table(data, root.Indirect(root.Pos + field))
        index_field = constants.Offset(4)
        index = constants.Get(Uint32Flags, index_field + constants.Pos) if index_field else 0
        offsets_field = constants.Offset(6)
        if offsets_field and index < len(segments):
            start, size = segments[index]
            vector, count = constants.Vector(offsets_field), constants.VectorLen(offsets_field)
            offsets = sorted({struct.unpack_from("<Q", data, vector + 8 * i)[0] for i in range(count)} | {size})
            inner = [(start + a, b - a) for a, b in zip(offsets, offsets[1:]) if 0 <= a < b <= size]
            if inner:
                spans = [s for s in spans if s != (start, size)] + inner
    return spans


def _vector_tables(table, field_number: int) -> list[int]:
    field = table.Offset(4 + 2 * field_number)
    if not field:
        return []
    vector = table.Vector(field)
    return [table.Indirect(vector + 4 * i) for i in range(table.VectorLen(field))]


def _u64(table, slot: int) -> int:
    field = table.Offset(4 + 2 * slot)
    return table.Get(Uint64Flags, field + table.Pos) if field else 0
