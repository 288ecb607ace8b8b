"""Where a .tflite file keeps its weights: the byte range of every buffer, read from the flatbuffer in place.

A buffer's data is a flatbuffer vector inside the file (a 4-byte length, then the bytes), or, for models
over 2 GB (and ai-edge-quantizer's layout), a range after the flatbuffer named by ``offset`` / ``size``. The
bundle cuts its delta-update chunks at these ranges (``deploykit.bundle.chunking``), so a tensor that a
fine-tune left alone keeps its chunk wherever the converter placed it.
"""

from __future__ import annotations

from deploykit.formats import litert_facade


def buffer_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every non-empty buffer's bytes; [] when ``data`` is not a readable flatbuffer."""
    schema = litert_facade.schema()
    try:
        model = schema.Model.GetRootAs(data, 0)
        spans = []
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            field = buffer._tab.Offset(4)  # slot 0: data (the generated accessors hide where it lies)
            if field:
                start, length = buffer._tab.Vector(field), buffer._tab.VectorLen(field)
                if length and start + length <= len(data):
                    spans.append((start, length))
            offset, size = int(buffer.Offset() or 0), int(buffer.Size() or 0)
            if offset > 1 and size and offset + size <= len(data):  # 1 is the schema's "no data" marker
                spans.append((offset, size))
        return spans
    except Exception:  # noqa: BLE001 - not a flatbuffer we can walk: content-defined chunks only
        return []
