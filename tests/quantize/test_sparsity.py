"""Pruning schemes through the real pipeline: what each artifact stores, read back from the artifact itself.

The model is a small Keras net whose prunable weights are heavy-tailed, as trained weights are: a few carry
the signal and most are a hundred times smaller, so that pruning them is benign and the parity check must
pass. TFLite weights are read back through LiteRT itself (the tensors its DENSIFY ops produce), Core ML
weights through deploykit's evaluator, whose decompression is checked against coremltools' own ops.
"""

from __future__ import annotations

import numpy as np
import pytest

from deploykit import convert
from deploykit.core.errors import UsageError

SCHEMES = "fp16,sparse50,sparse90,sparse2:4,sparse50+lut4,sparse50+int8"
PRUNED = ("body", "expand", "logits")  # 4608, 2048 and 2560 weights; the stem is first, the depthwise 288 < 2048
TARGET = {"sparse50": 0.5, "sparse90": 0.9, "sparse2of4": 0.5, "sparse50+lut4": 0.5, "sparse50+int8": 0.5}
LAYERS = ("stem", "body", "dw", "expand", "logits")


def _key(name: str) -> str:
    """The Keras layer an artifact's name comes from (TFLite: functional_1/body_1/Relu, and Identity for the graph's
    output, the classifier; Core ML: body_1_conv...)."""
    if name == "Identity":
        return "logits"
    return next(key for key in LAYERS if name.startswith(f"{key}_") or f"/{key}_" in name)


def benign_model(path):
    import keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(16, 3, 2, padding="same", activation="relu", name="stem")(inp)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="body")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(64, 1, activation="relu", name="expand")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inp, L.Dense(40, name="logits")(x))
    rng = np.random.default_rng(3)
    for name in PRUNED:
        layer = model.get_layer(name)
        weights = layer.get_weights()
        kernel = weights[0]
        large = rng.random(kernel.shape) < 0.08
        spread = float(kernel.std()) * 3
        weights[0] = np.where(large, rng.normal(0, spread, kernel.shape), rng.normal(0, spread / 100, kernel.shape)).astype("float32")
        layer.set_weights(weights)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparsity")
    source = benign_model(folder / "benign.keras")
    report = convert(source, to="tflite,coreml", out=folder / "out", coreml_target="iOS18", quantize=SCHEMES)
    return {(a.target, a.variant): a for a in report.artifacts}, folder / "out", source


def test_records_list_each_layer_and_parity_passes(variants):
    artifacts, _, _ = variants
    assert sorted(artifacts) == sorted([("tflite", v) for v in ("fp32", "fp16", "sparse50", "sparse90", "sparse50+int8")]
                                       + [("coreml", v) for v in ("fp32", "fp16", "sparse50", "sparse90", "sparse2of4",
                                                                  "sparse50+lut4", "sparse50+int8")])
    for (target, variant), artifact in artifacts.items():
        assert artifact.parity["passed"] and artifact.parity["profile"] == variant, (target, variant, artifact.parity)
        if variant not in TARGET:
            continue
        record = artifact.quantization["sparsity"]
        layers = {_key(row["name"]): row for row in record["layers"]}
        assert len(layers) == 5 and record["pruned_layers"] == 3 and record["spared_layers"] == 2
        spared = {key: row["spared"] for key, row in layers.items() if "spared" in row}
        assert spared == {"stem": "the first conv / dense layer", "dw": "small: 288 elements, under 2048"}, (target, spared)
        assert layers["stem"]["zeros"] == layers["dw"]["zeros"] == 0
        for key in PRUNED:
            row = layers[key]
            assert row["elements"] == {"body": 4608, "expand": 2048, "logits": 2560}[key]
            if target == "tflite":  # exactly floor(elements x target) zeros (int8 rounding may add a few)
                exact = int(np.floor(row["elements"] * TARGET[variant]))
                assert row["zeros"] == exact or variant.endswith("+int8") and row["zeros"] >= exact, (variant, row)
            else:  # coremltools zeroes |w| <= the interpolated percentile: one short, or fp16 ties add a few
                excess = row["zeros"] - row["elements"] * TARGET[variant]
                assert -1 <= excess and (excess <= 0.005 * row["elements"] or variant.endswith("+int8")), (variant, row)
        if variant.endswith("+int8"):  # int8 rounding turns the smallest kept weights into more zeros
            assert record["prunable_sparsity"] >= TARGET[variant] - 0.001
        else:
            assert record["prunable_sparsity"] == pytest.approx(TARGET[variant], abs=0.005 if target == "coreml" else 0.0005)
        assert record["overall_sparsity"] < record["prunable_sparsity"]


def _litert_weights(path):
    """{weight tensor name: the dense weight LiteRT computes with}: a DENSIFY's output as the interpreter holds it
    after a run (no delegate, every tensor preserved), else the stored buffer."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(path.read_bytes())
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.invoke()
    weights, densified = {}, set()
    for i in range(len(graph.graph.operators)):
        kind = graph.op_type(i)
        if kind == "DENSIFY":
            densified.add(graph.output(i))
        if kind in tflite_graph.CONV_LIKE:
            t = int(graph.graph.operators[i].inputs[1])
            weights[graph.tensor_name(graph.output(i))] = (graph.tensor_name(t), t in densified, interpreter.get_tensor(t))
    return weights


def test_tflite_pruned_weights_as_litert_densifies_them(variants):
    """LiteRT's own DENSIFY output equals the fp32 weight with its smallest magnitudes zeroed; spared layers are
    stored dense and unchanged; the sparse-encoded file is smaller and runs under XNNPACK like the dense weights."""
    from deploykit.quantize.sparsity import prune_magnitude

    artifacts, out, _ = variants
    fp32 = _litert_weights(out / artifacts["tflite", "fp32"].path)
    for variant in ("sparse50", "sparse90"):
        path = out / artifacts["tflite", variant].path
        pruned = _litert_weights(path)
        assert pruned.keys() == fp32.keys()
        for layer, (name, densified, weight) in pruned.items():
            reference = fp32[layer][2]
            if _key(layer) in PRUNED:
                assert densified, layer
                np.testing.assert_array_equal(weight, prune_magnitude(reference, TARGET[variant]))
                assert np.count_nonzero(weight == 0) == int(np.floor(weight.size * TARGET[variant]))
            else:
                assert not densified and np.count_nonzero(weight == 0) == 0, layer
                np.testing.assert_array_equal(weight, reference)
        assert artifacts["tflite", variant].size_bytes < artifacts["tflite", "fp32"].size_bytes
    assert artifacts["tflite", "sparse50+int8"].op_histogram.get("DENSIFY") is None
    from deploykit.formats.tflite.metadata import min_runtime_version

    assert min_runtime_version((out / artifacts["tflite", "sparse90"].path).read_bytes()) == "2.2.0"  # DENSIFY's
    assert artifacts["tflite", "sparse90"].op_histogram["DENSIFY"] == 3


def test_tflite_joint_int8_keeps_spared_layers_float(variants):
    from deploykit.formats.tflite import graph as tflite_graph

    artifacts, out, _ = variants
    graph = tflite_graph.read((out / artifacts["tflite", "sparse50+int8"].path).read_bytes())
    types = {}
    for i in range(len(graph.graph.operators)):
        if graph.op_type(i) in tflite_graph.CONV_LIKE:
            t = int(graph.graph.operators[i].inputs[1])
            types[_key(graph.tensor_name(graph.output(i)))] = graph.graph.tensors[t].type
    assert types == {"stem": 0, "body": 9, "dw": 0, "expand": 9, "logits": 9}  # float32 spared, int8 pruned


def _evaluator_weights(path):
    """{layer: weight} as deploykit's evaluator decompresses the package."""
    from deploykit.formats.coreml.spec import load_spec, main_block
    from deploykit.runners.coreml_eval import load_program

    constants = load_program(path).constants
    found = {}
    for op in main_block(load_spec(path)).operations:
        if op.type in ("conv", "matmul"):
            argument = op.inputs["y" if op.type == "matmul" else "weight"].arguments[0].name
            found[_key(op.outputs[0].name)] = np.asarray(constants[argument]).astype(np.float32)
    return found


def test_coreml_weights_through_the_evaluator(variants):
    artifacts, out, _ = variants
    dense = _evaluator_weights(out / artifacts["coreml", "fp16"].path)
    for variant in TARGET:
        weights = _evaluator_weights(out / artifacts["coreml", variant].path)
        for key in ("stem", "dw"):  # spared: the fp16 base's weight, also in the joint schemes
            np.testing.assert_array_equal(weights[key], dense[key])
        for key in PRUNED:
            zeros = np.count_nonzero(weights[key] == 0)
            excess = zeros - weights[key].size * TARGET[variant]
            assert -1 <= excess and (excess <= 0.005 * weights[key].size or variant.endswith("+int8")), (variant, key, zeros)
            kept = weights[key] != 0
            if variant in ("sparse50", "sparse90"):  # pruning alone keeps every other fp16 weight as it was,
                np.testing.assert_array_equal(weights[key][kept], dense[key][kept])
                assert np.abs(dense[key][~kept]).max() <= np.abs(dense[key][kept]).min()  # and zeroes the smallest


def test_coreml_two_of_four_along_the_input_axis(variants):
    artifacts, out, _ = variants
    weights = _evaluator_weights(out / artifacts["coreml", "sparse2of4"].path)
    for key, axis in (("body", 1), ("expand", 1), ("logits", 0)):  # conv [out, in, kh, kw]; matmul y [in, out]
        moved = np.moveaxis(weights[key], axis, -1)
        groups = moved.reshape(-1, moved.shape[-1] // 4, 4)
        assert (np.count_nonzero(groups == 0, axis=-1) >= 2).all(), key


def test_coreml_joint_ops_and_coremltools_decompression(variants):
    """The joint variants store each pruned weight as sparse + palettized / int8 ops (spared ones stay plain fp16
    consts), and every weight the evaluator decompresses equals what coremltools' own ops compute."""
    artifacts, out, _ = variants
    lut4, int8 = artifacts["coreml", "sparse50+lut4"], artifacts["coreml", "sparse50+int8"]
    assert {k: v for k, v in lut4.op_histogram.items() if k.startswith("constexpr")} == {
        "constexpr_lut_to_sparse": 3, "constexpr_sparse_to_dense": 3}
    assert {k: v for k, v in int8.op_histogram.items() if k.startswith("constexpr")} == {
        "constexpr_sparse_blockwise_shift_scale": 3, "constexpr_sparse_to_dense": 3}
    assert {k: v for k, v in artifacts["coreml", "sparse90"].op_histogram.items() if k.startswith("constexpr")} == {
        "constexpr_sparse_to_dense": 3}
    from deploykit.runners.coreml_eval import load_program

    for variant in TARGET:
        path = out / artifacts["coreml", variant].path
        ours, theirs = load_program(path).constants, _coremltools_weights(path)
        assert theirs
        for name, value in theirs.items():
            np.testing.assert_array_equal(np.asarray(ours[name]).astype(value.dtype), value, err_msg=f"{variant}: {name}")


def _coremltools_weights(path) -> dict:
    """Each constexpr op's outputs as coremltools' op classes compute them (``decompress``), by output name."""
    import inspect

    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    from deploykit.core.noise import capture_output
    from deploykit.formats import coremltools_facade

    spec = coremltools_facade.load_mlmodel(path).get_spec()
    with capture_output():
        program = load_milproto(spec, spec.specificationVersion, str(path / "Data/com.apple.CoreML/weights"))
    values = {}
    for op in program.functions["main"].operations:
        if not op.op_type.startswith("constexpr_"):
            continue
        inputs = {}
        for key in inspect.signature(type(op).decompress).parameters:
            var = op.inputs.get(key)
            inputs[key] = None if var is None else (var.val if var.val is not None else values[var.name])
        value = type(op).decompress(**inputs)
        for var, v in zip(op.outputs, value if isinstance(value, tuple) else (value,)):
            values[var.name] = np.asarray(v)
    return values


def test_joint_schemes_need_ios18_and_unknown_names_list_the_valid_ones(variants, tmp_path):
    from tests.cli.test_convert_cmd import run

    _, _, source = variants
    old = run("convert", source, "--to", "coreml", "--coreml-target", "iOS16", "--quantize", "sparse50+lut4", "--out", tmp_path / "o")
    assert old.returncode == 2, old.stderr
    assert "Core ML sparse50+lut4 needs --coreml-target iOS18 or macOS15 (got iOS16)" in old.stderr
    assert "add --coreml-target iOS18" in old.stderr
    unknown = run("convert", source, "--quantize", "sparse33", "--out", tmp_path / "o")
    assert unknown.returncode == 2 and "unknown sparsity scheme 'sparse33'" in unknown.stderr
    assert "sparse50, sparse75, sparse90, sparse2of4, sparse50+lut4, sparse50+int8" in unknown.stderr
    assert not (tmp_path / "o").exists()


def test_scheme_names_and_the_plan():
    from deploykit.quantize.options import KeepFloat, parse_quantize
    from deploykit.quantize.schemes import supported
    from deploykit.quantize.sparsity import Layer, parse, plan

    assert dict(parse_quantize("sparse2:4,sparse90+int8", ("tflite", "coreml"))) == {
        "tflite": ("fp32", "sparse90+int8"), "coreml": ("fp32", "sparse2of4", "sparse90+int8")}
    assert [s for s in supported("tflite") if s.startswith("sparse")] == [
        "sparse50", "sparse75", "sparse90", "sparse50+int8", "sparse75+int8", "sparse90+int8"]
    assert parse("sparse2:4").n_m == (2, 4) and parse("sparse75+lut4").then == "lut4"
    for bad in ("sparse33", "sparse50+lut2", "sparse"):
        with pytest.raises(UsageError, match="unknown sparsity scheme"):
            parse_quantize(bad, ("coreml",))
    with pytest.raises(UsageError, match="tflite cannot do sparse2of4"):
        parse_quantize("tflite=sparse2:4", ("tflite", "coreml"))
    layers = [Layer("a", "wa", 5000), Layer("b", "wb", 100), Layer("c", "wc", 3000), Layer("d", "wd", 3000)]
    assert plan(layers, {"d"}, KeepFloat().small_for("tflite", "sparse50")) == {
        "a": "the first conv / dense layer", "b": "small: 100 elements, under 2048", "c": None, "d": "--keep-float"}
    assert plan(layers, (), KeepFloat(small=50).small_for("coreml", "sparse90")) == {"a": "the first conv / dense layer", "b": None, "c": None, "d": None}
