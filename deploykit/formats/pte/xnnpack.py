"""XNNPACK delegate payloads: an ``XH00`` header, an ``XNNGraph`` flatbuffer and constant data.

The graph is turned to JSON with the ``flatc`` and ``schema.fbs`` that ship in the executorch wheel, so every
XNNPACK node can be read with its shapes, data types and weights (stored bytes as the delegate keeps them).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from deploykit.formats.executorch_facade import wheel_file

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "qint8": "int8", "quint8": "uint8",
          "qint32": "int32", "qcint8": "int8", "qcint32": "int32", "qcint4": "int4", "qdint8": "int8",
          "qbint4": "int4", "qpint8": "int8", "int32": "int32", "pfp32": "float32"}
INVALID_ID = 0xFFFFFFFF


def xnnpack_graph(payload: bytes) -> dict:
    """The XNNGraph of an XNNPACK delegate payload, as the JSON flatc makes of it (every field, defaults too)."""
    if payload[4:8] == b"XH00":
        offset = int.from_bytes(payload[10:14], "little")
        size = int.from_bytes(payload[14:18], "little")
        flatbuffer = payload[offset:offset + size]
    else:  # payloads before the header existed are the bare flatbuffer
        flatbuffer = payload
    flatc, schema = wheel_file("data/bin/flatc"), wheel_file("backends/xnnpack/serialization/schema.fbs")
    with tempfile.TemporaryDirectory(prefix="deploykit-xnn-") as folder:
        blob = Path(folder) / "graph.bin"
        blob.write_bytes(flatbuffer)
        done = subprocess.run([str(flatc), "--json", "--strict-json", "--raw-binary", "--defaults-json",
                               "-o", folder, str(schema), "--", str(blob)], capture_output=True, text=True, timeout=120)
        out = Path(folder) / "graph.json"
        if done.returncode != 0 or not out.is_file():
            raise ValueError(f"flatc could not read the XNNPACK graph: {done.stderr.strip()[:200]}")
        # flatc writes an unbounded activation's clamp as a bare inf, which JSON has no word for
        text = re.sub(r"([:\[,]\s*)(-?)inf\b", r"\1\2Infinity", out.read_text())
        return json.loads(re.sub(r"([:\[,]\s*)-?nan\b", r"\1NaN", text))


def node_counts(payload: bytes) -> dict[str, int]:
    """How many nodes of each type the delegate holds (after XNNPACK's own fusions)."""
    return dict(Counter(n["xnode_union_type"] for n in xnnpack_graph(payload)["xnodes"]).most_common())
