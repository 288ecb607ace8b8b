"""Reproducer of two Core ML compression faults on an "fp16 weights, float32 compute" base (the fp16 candidate
deploykit keeps when the FLOAT16 program fails its profile; PP-OCRv4's recogniser is one, see README.md).

    .venv/bin/python -m bench.accuracy.repro_cast_base        # 64-wide layers: the lut plan fault
    .venv/bin/python -m bench.accuracy.repro_cast_base 48     # 48 input channels: the int4 fault as well

Uses tests/quantize/test_fp16_mixed.py's offset model (activations near 3000: fp16 results fail, fp16 weights
pass) with the FLOAT16 search allowed no layer, as that test does. Prints, per variant, the record's table plan
and uncompressed weights beside what the program really stores (artifacts.coreml_weights). Seen on 8079c07 and
on the working tree of 2026-12-07 00:05 (with the per-layer repair being added):

- lut4: the record's plan is ``{}`` (it saw no weight), yet both weights are palettized, one table per tensor;
  on PP-OCRv4 the plan covers the 8 float32 weights of the base and 39 others get one table per tensor.
- int4 with 48 input channels (not a multiple of the 32-channel block): both weights are left uncompressed and
  stored as **float32** (13.9 kB, the fp32 artifact's size; the fp16 base holds them in 8.7 kB).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def main(width: int = 64) -> None:
    import tests.quantize.test_fp16_mixed as mixed_test
    from bench.accuracy.artifacts import coreml_weights
    from deploykit import convert
    from deploykit.core.errors import ParityError
    from deploykit.quantize import fp16_mixed

    fp16_mixed.MAX_LAYERS = 0
    mixed_test.WIDTH = width
    folder = Path(tempfile.mkdtemp())
    source = mixed_test._offset_model(folder / "offset.onnx")
    try:
        convert(source, to=["coreml"], out=folder / "out", quantize="fp16,lut4,int4", coreml_target="iOS18")
    except ParityError:
        pass  # a failing variant is still written, with its record
    record = json.loads((folder / "out" / "deploykit-report.json").read_text())
    for artifact in record["artifacts"]:
        q = artifact.get("quantization") or {}
        print(f"{artifact['variant']}: {artifact['size_bytes']} bytes; compute: {q.get('compute')}; plan tables: "
              f"{q.get('tables')}; uncompressed: {q.get('uncompressed_weights')}; stored: "
              f"{coreml_weights(folder / 'out' / artifact['path'])}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
