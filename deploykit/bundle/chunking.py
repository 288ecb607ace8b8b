"""Where a bundle's files are cut into content-addressed chunks: the unit a delta update fetches.

A chunk is a byte range of one file, named by the sha256 of its bytes. The manifest lists every file's
chunks in order (``offset``, ``length``, ``sha256``); they tile the file exactly. A client that already holds
a chunk (in an installed version) never downloads it again, wherever it sits in the new file.

Boundaries, in order of preference:

1. **Weights, per tensor.** The file's target names the byte ranges that hold weight data
   (``Target.weight_spans``: a TFLite buffer, a Core ML ``weight.bin`` blob, an NCNN ``.bin`` blob, a ``.pte``
   segment or constant). A chunk starts and ends at both ends of every such range of at least
   ``span_floor`` bytes. Cutting by content rather than position is what makes a fine-tune cheap: a
   tensor that did not change keeps its id even if the converter moved or renumbered it, and the small
   position-dependent bytes around it (flatbuffer length prefixes, Core ML blob records holding absolute
   offsets, padding) sit in chunks of their own.
2. **Everything else** (the regions between weights, smaller tensors, whole files of other kinds:
   ``model.mlmodel``, labels, integration code) is cut by content-defined chunking: a gear rolling hash over
   a 32-byte window, a cut where its top bits are zero, FastCDC's normalized two-mask rule between a
   minimum and a maximum length. Inserting or changing bytes moves only the cuts next to the change.
   A weight range longer than the maximum chunk is cut the same way.

Sizes scale with the file: the average content-defined chunk is ``size / 256`` rounded up to a power of
two, between 8 KiB and 4 MiB (minimum a quarter, maximum four times that). A file gets at most
``budget`` chunks (the builder shares ``MAX_CHUNKS`` over a bundle's files so its manifest stays well under
the 1 MiB every reader caps it at): above that, the floor and the averages double until it fits.

The gear table is derived from sha256 and must never change: boundaries are reproducible, so the same
file always gives the same chunks and bundles stay byte-identical.
"""

from __future__ import annotations

import hashlib
import mmap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

MAX_CHUNKS = 3072  # per bundle: with ~150 bytes of manifest JSON per chunk, about 450 KB
MAX_CHUNKS_PER_FILE = 4096  # the schema's bound
MAX_CHUNK_BYTES = 64 << 20  # the schema's bound; the largest cut made here is 16 MiB
SPAN_FLOOR = 1024  # weight ranges below this ride in the surrounding content-defined chunks
_MIN_AVG, _MAX_AVG = 8 << 10, 4 << 20
_WINDOW = 32
_BLOCK = 8 << 20  # hash this many bytes at a time (memory stays ~5x this)


def _gear_table():
    import numpy as np

    words = [int.from_bytes(hashlib.sha256(b"deploykit-gear-%d" % i).digest()[:4], "little") for i in range(256)]
    return np.array(words, dtype=np.uint32)


@dataclass(frozen=True)
class CdcParams:
    """Content-defined chunking sizes: cuts fall between ``min`` and ``max`` bytes apart, ``avg`` on average."""

    avg: int

    @property
    def min(self) -> int:
        return self.avg // 4

    @property
    def max(self) -> int:
        return self.avg * 4

    @classmethod
    def for_size(cls, size: int, scale: int = 1) -> "CdcParams":
        avg = _MIN_AVG
        while avg < size / 256 and avg < _MAX_AVG:
            avg *= 2
        return cls(min(avg * scale, _MAX_AVG))


def cdc_cuts(data, start: int, end: int, params: CdcParams) -> list[int]:
    """The ends of the content-defined chunks of ``data[start:end]`` (the last one is ``end``)."""
    import numpy as np

    if end - start <= params.min:
        return [end]
    bits = params.avg.bit_length() - 1
    strict, loose = _candidates(data, start, end, 32 - (bits + 1), 32 - (bits - 1))
    cuts, cursor = [], start
    while end - cursor > params.min:
        low, middle, high = cursor + params.min, cursor + params.avg, min(cursor + params.max, end)
        cut = _first(strict, low, min(middle, high), np) or _first(loose, middle, high, np) or high
        cuts.append(cut)
        cursor = cut
    if cursor < end:
        cuts.append(end)
    return cuts


def _candidates(data, start: int, end: int, strict_shift: int, loose_shift: int):
    """Offsets (the position after the byte the hash ends on) where the gear hash passes each mask."""
    import numpy as np

    gear = _gear_table()
    strict, loose = [], []
    block_start = start
    while block_start < end:
        lead = min(_WINDOW - 1, block_start - start)  # the window reaches back into the previous block, never before start
        block_end = min(end, block_start + _BLOCK)
        values = gear[np.frombuffer(data, dtype=np.uint8, count=block_end - block_start + lead, offset=block_start - lead)]
        hashes = values.copy()
        for k in range(1, _WINDOW):
            hashes[k:] += values[:-k] << np.uint32(k)
        hashes = hashes[lead:]
        top = hashes >> np.uint32(loose_shift)
        loose_at = np.flatnonzero(top == 0)
        strict_at = loose_at[(hashes[loose_at] >> np.uint32(strict_shift)) == 0]
        loose.append(loose_at + block_start + 1)
        strict.append(strict_at + block_start + 1)
        block_start = block_end
    return np.concatenate(strict), np.concatenate(loose)


def _first(candidates, low: int, high: int, np) -> int | None:
    """The first candidate in [low, high), or None."""
    if low >= high:
        return None
    at = int(np.searchsorted(candidates, low))
    return int(candidates[at]) if at < len(candidates) and candidates[at] < high else None


def cut_points(data, spans: Sequence[tuple[int, int]], budget: int = MAX_CHUNKS_PER_FILE) -> list[int]:
    """The chunk ends of one file: at both ends of every weight span of at least the floor, content-defined
    elsewhere and inside spans longer than the maximum chunk; coarser until at most ``budget`` chunks."""
    size = len(data)
    if size == 0:
        return []
    clean = _clean(spans, size)
    scale = 1
    while True:
        params, floor = CdcParams.for_size(size, scale), SPAN_FLOOR * scale
        cuts: list[int] = []
        cursor = 0
        for offset, length in clean:
            if length < floor:
                continue
            if offset > cursor:
                cuts += cdc_cuts(data, cursor, offset, params)
            cuts += cdc_cuts(data, offset, offset + length, params) if length > params.max else [offset + length]
            cursor = offset + length
        if cursor < size:
            cuts += cdc_cuts(data, cursor, size, params)
        if len(cuts) <= max(1, budget) or params.avg >= _MAX_AVG and floor >= size:
            return cuts
        scale *= 2


def _clean(spans: Sequence[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Sorted, inside the file, non-empty, not overlapping (a span overlapping the previous one is dropped)."""
    out: list[tuple[int, int]] = []
    for offset, length in sorted((int(o), int(n)) for o, n in spans):
        if length <= 0 or offset < 0 or offset + length > size:
            continue
        if out and offset < out[-1][0] + out[-1][1]:
            continue
        out.append((offset, length))
    return out


def chunk_list(data, spans: Sequence[tuple[int, int]] = (), budget: int = MAX_CHUNKS_PER_FILE) -> list[dict[str, Any]]:
    """The manifest's ``chunks`` of one file: ``{"offset", "length", "sha256"}`` in file order."""
    chunks, start = [], 0
    view = memoryview(data)
    for end in cut_points(data, spans, budget):
        chunks.append({"offset": start, "length": end - start, "sha256": hashlib.sha256(view[start:end]).hexdigest()})
        start = end
    view.release()  # a memory-mapped file can only be closed once no view of it is left
    return chunks


@contextmanager
def _opened(source: bytes | bytearray | Path) -> Iterator[Any]:
    """The file's bytes: as given, or memory-mapped (a model file may be larger than is pleasant to copy)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield source
        return
    with open(source, "rb") as handle:
        if Path(source).stat().st_size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped


def add_chunks(entries: list[dict[str, Any]], sources: Mapping[str, bytes | Path],
               spans: Mapping[str, Sequence[tuple[int, int]]], total_budget: int = MAX_CHUNKS) -> None:
    """Give every manifest file entry its ``chunks``, sharing ``total_budget`` over the files by size."""
    total = sum(e["length"] for e in entries) or 1
    for entry in entries:
        budget = max(8, min(MAX_CHUNKS_PER_FILE, total_budget * entry["length"] // total))
        with _opened(sources[entry["path"]]) as data:
            entry["chunks"] = chunk_list(data, spans.get(entry["path"], ()), budget)


def tiling_problem(entry: Mapping[str, Any]) -> str | None:
    """Why a file entry's chunks do not tile it exactly (None when they do, or when it lists none)."""
    chunks = entry.get("chunks")
    if chunks is None:
        return None
    cursor = 0
    for i, chunk in enumerate(chunks):
        if chunk["offset"] != cursor:
            return f"chunk {i} starts at {chunk['offset']}, not at {cursor}"
        cursor += chunk["length"]
    if cursor != entry["length"]:
        return f"its chunks cover {cursor} bytes, the file has {entry['length']}"
    return None
