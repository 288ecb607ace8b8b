"""The quantization flags, `deploykit bench` and their errors the way a user runs them."""

from __future__ import annotations

import json

import numpy as np

from tests.cli.test_convert_cmd import run


def test_convert_quantize_then_bench(keras_probe_file, tmp_path):
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((20, 32, 32, 3), dtype=np.float32))
    out = tmp_path / "out"
    result = run("convert", keras_probe_file, "--to", "tflite", "--quantize", "fp16,int8", "--calibration",
                 tmp_path / "cal.npy", "--calibration-samples", "10", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert [(a["variant"], a["path"]) for a in record["artifacts"]] == [
        ("fp32", "probe.fp32.tflite"), ("fp16", "probe.fp16.tflite"), ("int8", "probe.int8.tflite")]
    int8 = record["artifacts"][2]
    assert int8["quantization"]["calibration"]["samples"] == 10 and int8["size_limit"]["bits_per_weight"] == 8
    assert int8["passes"][-1]["name"] == "graph_check" and int8["passes"][-1]["ok"]

    timed = run("bench", out, "--runs", "5", "--warmup", "1", "--threads", "1", "--json")
    assert timed.returncode == 0, timed.stderr
    rows = {r["artifact"].rsplit("/", 1)[-1]: r for r in json.loads(timed.stdout)}
    assert set(rows) == {"probe.fp32.tflite", "probe.fp16.tflite", "probe.int8.tflite"}
    for row in rows.values():
        assert 0 < row["median_ms"] <= row["p90_ms"] and row["peak_rss_mb"] > 0 and row["delegate"] == "XNNPACK"
    table = run("bench", out / "probe.int8.tflite", "--runs", "3")
    assert table.returncode == 0 and "probe.int8.tflite" in table.stdout and "median" in table.stdout


def test_impossible_scheme_is_a_usage_error(keras_probe_file, tmp_path):
    result = run("convert", keras_probe_file, "--to", "tflite", "--quantize", "lut4", "--out", tmp_path / "o")
    assert result.returncode == 2
    assert "usage error: tflite cannot do lut4" in result.stderr
    assert "tflite can do: fp32, fp16, int8-weights, int8, int16x8, int4" in result.stderr
    missing = run("convert", keras_probe_file, "--quantize", "int8", "--out", tmp_path / "o")
    assert missing.returncode == 2 and "int8 needs calibration data" in missing.stderr
    tflite_only = run("convert", keras_probe_file, "--to", "coreml", "--quantize", "int16x8", "--out", tmp_path / "o")
    assert tflite_only.returncode == 2 and "usage error: coreml cannot do int16x8" in tflite_only.stderr
    assert "(int16x8 is for tflite)" in tflite_only.stderr
    assert not (tmp_path / "o").exists()


def test_bench_refuses_core_ml(tmp_path):
    (tmp_path / "m.mlpackage").mkdir()
    result = run("bench", tmp_path / "m.mlpackage")
    assert result.returncode == 2 and "Core ML runs only on Apple devices" in result.stderr
