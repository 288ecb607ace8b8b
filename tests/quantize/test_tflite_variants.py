"""TFLite variants from real conversions: what each scheme stores, how far outputs move, the record."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from deploykit import convert
from tests.conftest import save_keras, save_onnx, save_pt2
from tests.pipeline.tflite_run import run_tflite

TYPES = {0: "float32", 1: "float16", 2: "int32", 9: "int8", 17: "int4"}


def weight_types(path) -> Counter:
    """Storage type of each conv / fully-connected weight (through a DEQUANTIZE when there is one)."""
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(path.read_bytes())
    found = Counter()
    for i in range(len(graph.graph.operators)):
        if graph.op_type(i) in tflite_graph.CONV_LIKE:
            t = int(graph.graph.operators[i].inputs[1])
            if t in graph.producer and graph.op_type(graph.producer[t]) == "DEQUANTIZE":
                t = int(graph.graph.operators[graph.producer[t]].inputs[0])
            found[TYPES[graph.graph.tensors[t].type]] += 1
    return found


def activation_types(path) -> Counter:
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(path.read_bytes())
    return Counter(TYPES[graph.graph.tensors[graph.output(i)].type] for i in range(len(graph.graph.operators))
                   if graph.op_type(i) in tflite_graph.CONV_LIKE)


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "samples.npy"
    np.save(path, np.random.default_rng(1).random((32, 32, 32, 3), dtype=np.float32))
    return path


@pytest.fixture(scope="module")
def keras_variants(tmp_path_factory, calibration_file):
    folder = tmp_path_factory.mktemp("keras_variants")
    source = save_keras("mobilenet", folder)
    out = folder / "out"
    report = convert(source, to="tflite", out=out, quantize="fp16,int8-weights,int8,int4", calibration=calibration_file)
    return report, out


def test_one_artifact_per_scheme_with_its_record(keras_variants):
    report, out = keras_variants
    assert [a.variant for a in report.artifacts] == ["fp32", "fp16", "int8-weights", "int8", "int4"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["deploykit-report.json", "report.html"] + [f"mobilenet_0.{v}.tflite" for v in ("fp32", "fp16", "int8-weights", "int8", "int4")])
    for artifact in report.artifacts:
        limit = artifact.size_limit
        assert limit["parameters"] == 4234 and limit["limit_bytes"] == math.ceil(4234 * limit["bits_per_weight"] / 8)
        assert limit["ratio"] == round(artifact.size_bytes / limit["limit_bytes"], 4)
        assert artifact.passes[-1]["ok"] and artifact.passes[-1]["fused_activations"] == 5
    int8 = report.artifacts[3]
    assert int8.quantization["calibration"] == {"source": str(int8.quantization["calibration"]["source"]), "samples": 32, "available": 32}
    assert int8.quantization["engine"] == "ai-edge-quantizer" and int8.quantization["io"] == "float32"


def test_what_each_scheme_stores(keras_variants):
    _, out = keras_variants
    path = lambda v: out / f"mobilenet_0.{v}.tflite"  # noqa: E731
    assert weight_types(path("fp32")) == {"float32": 6}
    assert weight_types(path("fp16")) == {"float16": 6}
    # dynamic range keeps weights under 1024 elements float (the legacy TFLite rule): 1 of 6 layers here
    assert weight_types(path("int8-weights")) == {"int8": 1, "float32": 5}
    assert activation_types(path("int8-weights")) == {"float32": 6}
    assert weight_types(path("int8")) == {"int8": 6} and activation_types(path("int8")) == {"int8": 6}
    assert weight_types(path("int4"))["int4"] >= 3  # CONV_2D and FULLY_CONNECTED; depthwise stays float


def test_outputs_stay_close_to_fp32(keras_variants):
    _, out = keras_variants
    x = {"image": np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)}
    reference = next(iter(run_tflite(out / "mobilenet_0.fp32.tflite", x).values()))
    scale = float(np.abs(reference).max())
    tolerance = {"fp16": 1e-2, "int8-weights": 0.05, "int8": 0.15, "int4": 0.5}  # of the output range
    for variant, allowed in tolerance.items():
        result = next(iter(run_tflite(out / f"mobilenet_0.{variant}.tflite", x).values()))
        assert float(np.abs(result - reference).max()) <= allowed * scale, variant


def test_int8_io_per_tensor_and_keep_float(tmp_path, calibration_file):
    source = save_keras("mobilenet", tmp_path)
    report = convert(source, to="tflite", out=tmp_path / "o", quantize="int8", calibration=calibration_file,
                     calibration_samples=8, int8_io=True, per_tensor=True, keep_float="first")
    artifact = report.artifacts[1]
    (image,) = artifact.inputs
    assert image.dtype == "int8" and image.quantization is not None
    assert artifact.outputs[0].dtype == "int8"
    assert artifact.quantization["weights"] == "int8 symmetric per-tensor" and len(artifact.quantization["kept_float"]) == 1
    assert artifact.quantization["calibration"]["samples"] == 8
    types = weight_types(tmp_path / "o" / artifact.path)
    assert types == {"float32": 1, "int8": 5}
    from deploykit.formats.tflite.flatbuffer import read_model

    graph = read_model((tmp_path / "o" / artifact.path).read_bytes()).subgraphs[0]
    scales = {len(t.quantization.scale) for t in graph.tensors if t.type == 9 and t.quantization is not None and t.quantization.scale is not None}
    assert scales == {1}


@pytest.mark.parametrize("save", [save_pt2, save_onnx])
def test_torch_and_onnx_paths(save, tmp_path):
    """Calibration samples are in the source layout (NCHW); the ONNX artifact is NHWC and gets them transposed."""
    source = save("mobilenet", tmp_path)
    samples = np.random.default_rng(3).random((16, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "c.npy", samples)
    report = convert(source, to="tflite", out=tmp_path / "o", quantize="fp16,int8", calibration=tmp_path / "c.npy")
    fp32, fp16, int8 = report.artifacts
    assert weight_types(tmp_path / "o" / fp16.path) == {"float16": 6}
    assert activation_types(tmp_path / "o" / int8.path) == {"int8": 6}
    feeds = {"image" if save is save_onnx else "x": samples[:1]}
    ref, got = (next(iter(run_tflite(tmp_path / "o" / a.path, feeds).values())) for a in (fp32, int8))
    assert float(np.abs(ref - got).max()) <= 0.15 * float(np.abs(ref).max())
    assert fp32.size_limit["parameters"] == 4234


def test_int8_file_is_compacted(keras_variants):
    """Weights inside the flatbuffer and each distinct quantization vector stored once, with outputs
    bit-identical to the same model packed the stock way (one zero-point vector per tensor)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from deploykit.formats.tflite.flatbuffer import read_model

    _, out = keras_variants
    compacted = (out / "mobilenet_0.int8.tflite").read_bytes()
    raw = schema.Model.GetRootAs(bytearray(compacted), 0)
    assert all(raw.Buffers(i).Offset() <= 1 for i in range(raw.BuffersLength()))
    model = read_model(compacted)
    zero_points = [np.asarray(t.quantization.zeroPoint) for t in model.subgraphs[0].tensors
                   if t.quantization is not None and t.quantization.zeroPoint is not None]
    duplicated = sum(z.nbytes for z in zero_points) - sum(len(b) for b in {z.tobytes() for z in zero_points})
    assert duplicated > 0  # per-channel weights and biases share all-zero vectors of the same length
    builder = flatbuffers.Builder(len(compacted))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    stock = bytes(builder.Output())
    assert len(stock) - len(compacted) >= duplicated
    x = {"image": np.random.default_rng(3).random((1, 32, 32, 3), dtype=np.float32)}
    shared = next(iter(run_tflite(out / "mobilenet_0.int8.tflite", x).values()))
    (out.parent / "stock.int8.tflite").write_bytes(stock)
    assert np.array_equal(shared, next(iter(run_tflite(out.parent / "stock.int8.tflite", x).values())))


def test_buffer_past_the_end_is_refused():
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from deploykit.formats.tflite.flatbuffer import read_model

    model = schema.ModelT()
    model.version, model.subgraphs = 3, []
    buffer = schema.BufferT()
    buffer.offset, buffer.size = 10_000, 64
    model.buffers = [schema.BufferT(), buffer]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ValueError, match="past the end"):
        read_model(bytes(builder.Output()))
