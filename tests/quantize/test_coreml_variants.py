"""Core ML variants from real conversions, run with the numpy Core ML evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit import convert
from tests.conftest import save_keras

X = {"image": np.random.default_rng(4).random((1, 32, 32, 3), dtype=np.float32)}


def evaluate(path):
    from deploykit.runners.coreml_eval import evaluate as run

    return next(iter(run(path, X).values())).astype(np.float64)


@pytest.fixture(scope="module")
def coreml_variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coreml_variants")
    out = folder / "out"
    report = convert(save_keras("mobilenet", folder), to="coreml", out=out, coreml_target="iOS18",
                     quantize="fp16,int8-weights,lut4,int4", keep_float="last")
    return report, out


def test_ops_and_records(coreml_variants):
    report, _ = coreml_variants
    artifacts = {a.variant: a for a in report.artifacts}
    assert list(artifacts) == ["fp32", "fp16", "int8-weights", "lut4", "int4"]
    constexpr = {v: sorted(k for k in a.op_histogram if k.startswith("constexpr")) for v, a in artifacts.items()}
    assert constexpr["fp32"] == constexpr["fp16"] == []
    assert constexpr["int8-weights"] == constexpr["int4"] == ["constexpr_blockwise_shift_scale"]  # iOS18 ops
    assert constexpr["lut4"] == ["constexpr_lut_to_dense"]
    # --keep-float last: the classifier's weight is not compressed; the table plan (budget: 8 % of 4234 x 4
    # bits is under the 4 KB floor) covers the other 5 layers and may keep some of them fp16 too
    lut4 = artifacts["lut4"].quantization
    assert lut4["budget_percent"] == 8.0 and 0 <= lut4["extra_bytes"] <= lut4["budget_bytes"] == 4096
    assert sum(lut4["tables"].values()) == 5
    planned_fp16 = len(lut4["kept_fp16"])
    assert artifacts["lut4"].op_histogram["constexpr_lut_to_dense"] == 5 - planned_fp16 >= 1
    assert len(lut4["kept_float"]) == 1 and set(lut4["kept_float"]) <= set(lut4["uncompressed_weights"])
    assert len(lut4["uncompressed_weights"]) == 1 + planned_fp16
    # int4 blocks of 32 input channels: the stem (3), depthwise (1 per group) and first pointwise (16) stay fp16
    assert len(artifacts["int4"].quantization["uncompressed_weights"]) == 5
    for artifact in artifacts.values():
        assert artifact.deployment_target == "iOS18" and artifact.passes[-1]["ok"]
        assert artifact.size_limit["bits_per_weight"] == {"fp32": 32, "fp16": 16, "int8-weights": 8, "lut4": 4, "int4": 4}[artifact.variant]


def test_outputs_stay_close_to_fp32(coreml_variants):
    report, out = coreml_variants
    reference = evaluate(out / report.artifacts[0].path)
    scale = float(np.abs(reference).max())
    allowed = {"fp16": 5e-3, "int8-weights": 0.05, "lut4": 0.4, "int4": 0.4}
    for artifact in report.artifacts[1:]:
        moved = float(np.abs(evaluate(out / artifact.path) - reference).max())
        assert moved <= allowed[artifact.variant] * scale, (artifact.variant, moved, scale)


def test_grouped_lookup_tables_and_per_tensor_int8(tmp_path):
    report = convert(save_keras("mobilenet", tmp_path), to="coreml", out=tmp_path / "o", coreml_target="iOS18",
                     quantize="lut2,int8-weights", lut_group_size=8, per_tensor=True)
    _, lut2, int8 = report.artifacts
    assert lut2.variant == "lut2" and lut2.quantization["tables"] == "one per 8 output channels"
    assert int8.quantization["weights"] == "int8 linear symmetric per-tensor"
    assert lut2.op_histogram["constexpr_lut_to_dense"] == 5
    # the 10-class classifier has no whole group of 8 output channels: coremltools leaves it, the record says so
    assert len(lut2.quantization["uncompressed_weights"]) == 1
