"""``--to ncnn`` the way a user runs it: the CLI on zoo nets from .pt2, TorchScript and ONNX, the record, the pair as
ncnn reads it, verify, inspect, bench, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, save_onnx, save_pt2, save_torchscript

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def run(*args):
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=900)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One fp32 + fp16 conversion of the zoo's depthwise-separable net from .pt2, shared by the tests below."""
    folder = tmp_path_factory.mktemp("ncnn")
    source = save_pt2("mobilenet", folder)
    result = run("convert", source, "--to", "ncnn", "--quantize", "fp16", "--out", folder / "dist", "--json")
    assert result.returncode == 0, result.stderr
    return source, folder / "dist", json.loads(result.stdout)


def test_pt2_converts_to_an_ncnn_pair_that_matches_the_source(converted):
    source, dist, record = converted
    fp32, fp16 = record["artifacts"]
    assert (fp32["variant"], fp16["variant"]) == ("fp32", "fp16")
    assert fp32["converter"] == "torch->ncnn (torch.jit.trace + pnnx)"
    assert sorted(p.name for p in (dist / fp32["path"]).iterdir()) == ["model.ncnn.bin", "model.ncnn.param"]
    assert fp32["parity"]["passed"] and fp16["parity"]["passed"]
    assert fp32["parity"]["profile"] == "fp32" and fp16["parity"]["profile"] == "fp16"
    worst32 = max(o["max_rel_error"] for o in fp32["parity"]["outputs"].values())
    worst16 = max(o["max_rel_error"] for o in fp16["parity"]["outputs"].values())
    assert worst32 < 1e-5 and 1e-5 < worst16 < 1e-2
    # fp16 weights: about half the bytes (biases stay float32)
    assert 0.45 < fp16["size_bytes"] / fp32["size_bytes"] < 0.6
    assert record["tool_versions"]["pnnx"] and record["tool_versions"]["ncnn"]
    assert fp32["quantization"]["runtime_options"]["use_fp16_storage"] is False
    assert fp16["quantization"]["runtime_options"]["use_fp16_arithmetic"] is True
    assert fp32["latency"]["source"] == "ncnn" and fp32["latency"]["median_ms"] > 0


def test_blobs_carry_the_source_names_and_the_record_maps_them(converted):
    from deploykit.formats.ncnn import param

    _, dist, record = converted
    fp32 = record["artifacts"][0]
    graph = param.read(dist / fp32["path"] / "model.ncnn.param")
    assert graph.input_blobs == ("x",) and graph.output_blobs == ("output",)
    assert graph.input_shape("x") == (3, 32, 32)  # no batch axis
    blobs = next(p for p in fp32["passes"] if p["name"] == "ncnn_blob_names")
    assert blobs["items"] == ["in0 -> x", "out0 -> output"]
    assert fp32["op_histogram"]["ConvolutionDepthWise"] >= 1
    assert [t["name"] for t in fp32["inputs"]] == ["x"] and fp32["inputs"][0]["shape"] == [1, 3, 32, 32]


def test_the_pair_runs_in_ncnn_as_the_record_says(converted):
    """The pair itself, fed by hand the way an app would, gives the PyTorch module's output."""
    import torch

    from deploykit.formats import ncnn_facade

    source, dist, record = converted
    folder = dist / record["artifacts"][0]["path"]
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    expected = torch.export.load(str(source)).module()(torch.from_numpy(x)).detach().numpy()
    net = ncnn_facade.open_net(folder / "model.ncnn.param", folder / "model.ncnn.bin", fp16=False)
    got = ncnn_facade.run(net, {"x": x[0]}, ("output",))["output"].reshape(expected.shape)
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max()))


def test_verify_inspect_and_bench_take_the_pair(converted):
    source, dist, record = converted
    fp16 = dist / record["artifacts"][1]["path"]
    verified = run("verify", source, fp16, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["passed"] is True
    inspected = run("inspect", fp16, "--json")
    assert inspected.returncode == 0, inspected.stderr
    figures = json.loads(inspected.stdout)
    assert figures["format"] == "ncnn" and figures["params"] > 0 and figures["macs"] > 0
    timed = run("bench", fp16, "--runs", "5", "--warmup", "1", "--json")
    assert timed.returncode == 0, timed.stderr
    assert json.loads(timed.stdout)[0]["median_ms"] > 0


@pytest.mark.parametrize("kind", ["onnx", pytest.param("torchscript", marks=pytest.mark.heavy)])
def test_onnx_and_torchscript_sources(tmp_path, kind):
    source = save_onnx("resnet", tmp_path) if kind == "onnx" else save_torchscript("resnet", tmp_path)
    shape = [] if kind == "onnx" else ["--input", "x=1,3,32,32"]  # a TorchScript file records no input shapes
    result = run("convert", source, "--to", "ncnn", *shape, "--out", tmp_path / "dist", "--json")
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)["artifacts"][0]
    assert artifact["converter"] == ("onnx->ncnn (pnnx)" if kind == "onnx" else "torch->ncnn (torch.jit.trace + pnnx)")
    assert artifact["parity"]["passed"]
    assert max(o["max_rel_error"] for o in artifact["parity"]["outputs"].values()) < 1e-5
    if kind == "onnx":
        assert [t["name"] for t in artifact["outputs"]] == ["logits"]


@pytest.mark.parametrize("scheme, words", [("int8", "ncnn2table"), ("lut4", "ncnn can do: fp32, fp16")])
def test_schemes_ncnn_cannot_make_are_refused_with_the_reason(tmp_path, scheme, words):
    source = save_pt2("mobilenet", tmp_path)
    result = run("convert", source, "--to", "ncnn", "--quantize", f"ncnn={scheme}", "--out", tmp_path / "dist")
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "dist").exists()


@pytest.mark.heavy  # ~35 s: two CLI processes that load torch and Keras
def test_a_batch_of_two_and_a_keras_source_are_refused(tmp_path):
    from tests.conftest import save_keras

    source = save_torchscript("mobilenet", tmp_path)  # records no shapes: any batch can be asked for
    batch = run("convert", source, "--to", "ncnn", "--input", "x=2,3,32,32", "--out", tmp_path / "a")
    assert batch.returncode == 2 and "batch axis of 1" in batch.stderr
    keras = run("convert", save_keras("mobilenet", tmp_path), "--to", "ncnn", "--out", tmp_path / "b")
    assert keras.returncode == 2 and "--to ncnn needs a torch or onnx source" in keras.stderr
