"""A variant slower than its target's fp32 artifact on the host says so, and why (issue 22, item 6).

The rule is a pure function, tested on figures measured here. One real conversion of a small depthwise-separable
Keras net (three 3x3 depthwise + 1x1 blocks on 32x32x128) makes TFLite int8-weights, whose depthwise convolutions
are hybrid and left to LiteRT's builtin kernels, and int4, whose weights are DEQUANTIZE'd into float ops XNNPACK
does not take: the reasons are read from the files (no timing), and whether each record carries a note is checked
against the latencies the same record holds, never against a time limit. Core ML int8 figures are estimates: the
note there is deterministic.
"""

from __future__ import annotations

import json

import pytest

from deploykit.cli.tables import slower_line
from deploykit.formats.tflite.delegation import delegation, explain
from deploykit.pipeline.latency_notes import MIN_MS, MIN_RATIO, confirmed, slower
from deploykit.report.html import render_report
from deploykit.targets import get as target_named

# MobileNetV2 (Keras, random weights), `deploykit bench`, 1 thread: docs/quantization.md "Measured".
FP32, FP16, INT8_WEIGHTS, INT8, INT4 = 8.1, 7.3, 14.7, 3.3, 20.4
# One fp32 MobileNetV2 file timed ten times in a row as convert times it, other jobs running (latency_notes.py).
SAME_FILE = [43.659, 42.68, 47.081, 44.287, 42.958, 44.259, 47.021, 47.045, 45.885, 39.197]


def test_rule_on_measured_medians():
    assert slower(INT8_WEIGHTS, FP32) and slower(INT4, FP32)
    assert not slower(FP16, FP32) and not slower(INT8, FP32) and not slower(FP32, FP32)
    assert not slower(0.023 * 2, 0.023)  # twice as slow, but 0.023 ms: the timing loop's scale (MIN_MS)
    assert slower(FP32 * MIN_RATIO + 1e-9, FP32) and not slower(FP32 * MIN_RATIO - 1e-3, FP32)
    assert not slower(1.0 + MIN_MS * 0.9, 1.0) and slower(1.0 + max(MIN_MS, 0.1) + 1e-9, 1.0)


def test_confirmation_on_repeated_timings_of_one_file():
    # The slowest and the fastest timing of one file look like a 1.20x trade-off ...
    assert slower(max(SAME_FILE), min(SAME_FILE))
    # ... timed again in turn, each side's fastest of three is not.
    assert not confirmed([SAME_FILE[2], SAME_FILE[3], SAME_FILE[4]], [SAME_FILE[9], SAME_FILE[0], SAME_FILE[1]])
    assert not confirmed([], [8.1])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import keras
    import numpy as np

    import deploykit

    folder = tmp_path_factory.mktemp("latency_notes")
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((32, 32, 128))
    for _ in range(3):  # 3x3x128 = 1152 weights each: above int8-weights' 1024-element floor, so they are hybrid
        x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(128, 1)(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(folder / "dw.keras")
    np.save(folder / "cal.npy", np.random.default_rng(0).random((8, 32, 32, 128), dtype=np.float32))
    out = folder / "out"
    report = deploykit.convert(folder / "dw.keras", to="tflite,coreml", out=out, verify=False, coreml_target="iOS17",
                               quantize="tflite=fp16,tflite=int8-weights,tflite=int4,coreml=int8",
                               calibration=folder / "cal.npy")
    return out, report, json.loads((out / "deploykit-report.json").read_text())


def _artifact(record, target, variant):
    return next(a for a in record["artifacts"] if a["target"] == target and a["variant"] == variant)


def test_reasons_are_read_from_the_files(converted):
    out, report, _ = converted
    base = delegation(out / "dw.fp32.tflite")
    assert (base.ops, base.delegated, base.partitions) == (8, 8, 1)
    hybrid = delegation(out / "dw.int8-weights.tflite")
    assert hybrid.hybrid == {"DEPTHWISE_CONV_2D": 3} and hybrid.outside == {"DEPTHWISE_CONV_2D": 3}
    assert hybrid.partitions == 3
    assert "3 DEPTHWISE_CONV_2D are hybrid" in explain(hybrid, base)
    decoded = delegation(out / "dw.int4.tflite")
    assert decoded.decoded_from == {"int4": 4} and decoded.decoded_weights == {"CONV_2D": 3, "FULLY_CONNECTED": 1}
    assert "4 DEQUANTIZE of int4 weights" in explain(decoded, base)
    assert explain(delegation(out / "dw.fp16.tflite"), base) is None  # XNNPACK takes fp16 weights whole
    artifacts = {(a.target, a.variant): a for a in report.artifacts}
    tflite = target_named("tflite")
    why = tflite.slower_reason(artifacts["tflite", "fp16"], out / "dw.fp16.tflite", artifacts["tflite", "fp32"],
                               out / "dw.fp32.tflite")
    assert why.startswith("XNNPACK takes as much of it as of fp32") and "likely" in why
    coreml = target_named("coreml")
    why = coreml.slower_reason(artifacts["coreml", "int8"], out / "dw.int8.mlpackage", artifacts["coreml", "fp32"],
                               out / "dw.fp32.mlpackage")
    extra_ops = artifacts["coreml", "int8"].latency["ops"] - artifacts["coreml", "fp32"].latency["ops"]
    assert why.startswith("an estimate, not a measurement") and extra_ops > 0 and "its extra" in why


def test_notes_agree_with_the_recorded_latencies(converted):
    _, _, record = converted
    for target in ("tflite", "coreml"):
        fp32 = _artifact(record, target, "fp32")["latency"]
        assert "slower_than_fp32" not in fp32 and "retimed_against_fp32" not in fp32
        for artifact in (a for a in record["artifacts"] if a["target"] == target and a["variant"] != "fp32"):
            latency = artifact["latency"]
            note, unconfirmed = latency.get("slower_than_fp32"), latency.get("retimed_against_fp32")
            if not slower(latency["median_ms"], fp32["median_ms"]):
                assert note is None and unconfirmed is None, artifact["path"]
                continue
            assert (note is None) != (unconfirmed is None), artifact["path"]
            seen = note or unconfirmed
            assert seen["fp32_ms"] == fp32["median_ms"]
            assert seen["ratio"] == round(latency["median_ms"] / fp32["median_ms"], 2)
            if latency["source"] == "estimate":  # deterministic: never timed again, never unconfirmed
                assert note is not None and "retimed" not in note and note["why"].startswith("an estimate")
                continue
            retimed = seen["retimed"]
            assert len(retimed["ms"]) == len(retimed["fp32_ms"]) == 3
            assert retimed["ms"][0] == latency["median_ms"] and retimed["fp32_ms"][0] == fp32["median_ms"]
            assert confirmed(retimed["ms"], retimed["fp32_ms"]) == (note is not None)
            if note is not None:
                expected = {"int8-weights": "3 DEPTHWISE_CONV_2D are hybrid", "int4": "4 DEQUANTIZE of int4 weights",
                            "fp16": "likely"}[artifact["variant"]]
                assert expected in note["why"]


def test_notes_reach_the_terminal_and_the_page(converted):
    out, _, record = converted
    noted = [a for a in record["artifacts"] if (a.get("latency") or {}).get("slower_than_fp32")]
    for artifact in record["artifacts"]:
        line = slower_line(artifact["path"], artifact.get("latency") or {})
        assert (line is not None) == (artifact in noted)
        if line:
            note = artifact["latency"]["slower_than_fp32"]
            assert line.startswith(f"[yellow]note[/] {artifact['path']}: {note['ratio']:.2f}x slower than fp32")
    page = (out / "report.html").read_text()
    assert page.count('class="small slower-note"') == len(noted)
    assert render_report(record).count('class="small slower-note"') == len(noted)
    for artifact in noted:
        assert f'data-ratio="{float(artifact["latency"]["slower_than_fp32"]["ratio"])!r}"' in page
