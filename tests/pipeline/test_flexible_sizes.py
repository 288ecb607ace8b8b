"""Flexible input sizes (--input with [a,b], a|b or (lo..hi)): real conversions, checked at every size.

Besides deploykit's own parity record, the artifacts are run here directly at sizes other than the
default (LiteRT resized through its signature runner, the Core ML evaluator on the package) and
compared with the source model, and the packages are read back for the sizes they declare.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploykit.core.errors import ConversionError, ParityError, UsageError
from deploykit.core.flexible import FlexibleShape, parse_dims, sizes_to_check
from deploykit import convert
from deploykit.core.types import TensorSpec
from tests.conftest import save_onnx


def _record(out: Path):
    record = json.loads((out / "deploykit-report.json").read_text())
    return {(a["target"], a["variant"]): a for a in record["artifacts"]}, record


def _pt2_with_dynamic_size(folder: Path, name="mobilenet") -> Path:
    """A .pt2 exported with its height and width dynamic, as a user who wants several sizes exports it."""
    import torch

    from tests.zoo import torch_nets

    path = folder / f"{name}_dynamic.pt2"
    if not path.exists():
        height, width = torch.export.Dim("h", min=16, max=128), torch.export.Dim("w", min=16, max=128)
        program = torch.export.export(torch_nets.build(name), (torch.rand(1, 3, 32, 32),),
                                      dynamic_shapes=({2: height, 3: width},))
        torch.export.save(program, path)
    return path


# -- parsing ---------------------------------------------------------------------------------------


def test_brackets_enumerate_every_combination_and_bars_list_whole_shapes():
    product = parse_dims("x", "1x3x[224,320]x[224,320]")
    assert product.shapes == ((1, 3, 224, 224), (1, 3, 224, 320), (1, 3, 320, 224), (1, 3, 320, 320))
    assert product.default == (1, 3, 224, 224)
    listed = parse_dims("x", "1x3x224x224|1x3x320x320")
    assert listed.shapes == ((1, 3, 224, 224), (1, 3, 320, 320))
    assert listed.compact() == "2 sizes (default 1x3x224x224)" and product.compact() == "1x3x[224,320]x[224,320]"
    assert parse_dims("x", "1x3x[224]x224") == (1, 3, 224, 224)  # one choice is a fixed size


def test_a_range_is_checked_at_its_ends_and_middle():
    ranged = parse_dims("x", "(1..8)x3x(160..640)x(160..640)")
    assert ranged.bounds == ((1, 8), (3, 3), (160, 640), (160, 640))
    assert ranged.check_shapes() == ((1, 3, 160, 160), (4, 3, 400, 400), (8, 3, 640, 640))
    assert ranged.accepts((3, 3, 200, 641)) is False and ranged.accepts((3, 3, 200, 640)) is True
    assert FlexibleShape.from_json(ranged.to_json()) == ranged


@pytest.mark.parametrize("text, message", [
    ("1x3x[224,320]x(160..640)", "not both"),
    ("1x3x(160..)x224", "not a size or a range"),
    ("1x3x(640..160)x224", "0 < low < high"),
    ("1x3x[1,2,3,4,5,6]x[1,2,3,4,5,6]", "more than 32 sizes"),
    ("1x3x224|1x3x224x224", "same rank"),
])
def test_bad_flexible_sizes_are_refused(text, message):
    with pytest.raises(UsageError, match=message):
        parse_dims(f"x={text}", text)


def test_several_flexible_inputs_advance_together():
    inputs = (TensorSpec("a", (1, 8), flexible=FlexibleShape("enumerated", shapes=((1, 8), (1, 16), (1, 32))).to_json()),
              TensorSpec("b", (1, 4), flexible=FlexibleShape("enumerated", shapes=((1, 4), (1, 2))).to_json()),
              TensorSpec("c", (1, 1)))
    assert sizes_to_check(inputs) == [((1, 16), (1, 2), (1, 1)), ((1, 32), (1, 4), (1, 1))]


# -- conversions -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enumerated(model_dir, tmp_path_factory):
    """A .pt2 with dynamic height and width, converted to both targets at 2 x 2 enumerated sizes, with fp16."""
    out = tmp_path_factory.mktemp("flex") / "dist"
    convert(_pt2_with_dynamic_size(model_dir), to=("tflite", "coreml"), out=out, quantize="fp16",
            inputs=["x=1x3x[32,48]x[32,64]"])
    return out


def test_enumerated_sizes_pass_parity_at_each_size(enumerated):
    artifacts, record = _record(enumerated)
    assert record["source"]["inputs"][0]["shape"] == [1, 3, 32, 32]  # the default: the first size
    assert set(artifacts) == {("tflite", "fp32"), ("tflite", "fp16"), ("coreml", "fp32"), ("coreml", "fp16")}
    for artifact in artifacts.values():
        sizes = artifact["parity"]["sizes"]
        assert [s["shapes"]["x"] for s in sizes] == [[1, 3, 32, 32], [1, 3, 32, 64], [1, 3, 48, 32], [1, 3, 48, 64]]
        assert all(s["passed"] for s in sizes) and artifact["parity"]["passed"]
        bound = 1e-4 if artifact["variant"] == "fp32" else 1e-2
        assert all(0 < s["outputs"]["output"]["max_rel_error"] < bound for s in sizes)
        assert artifact["inputs"][0]["flexible"]["shapes"] == [s["shapes"]["x"] for s in sizes]


def test_core_ml_declares_the_enumerated_shapes_and_refuses_others(enumerated):
    from deploykit.formats.coreml.spec import load_spec
    from deploykit.targets import runner_for as runner_for_artifact

    spec = load_spec(enumerated / "mobilenet_dynamic.fp32.mlpackage")
    array = spec.description.input[0].type.multiArrayType
    declared = sorted(tuple(s.shape) for s in array.enumeratedShapes.shapes)
    assert declared == [(1, 3, 32, 32), (1, 3, 32, 64), (1, 3, 48, 32), (1, 3, 48, 64)]
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 48, 64)).astype(np.float32)
    with runner_for_artifact(enumerated / "mobilenet_dynamic.fp32.mlpackage") as coreml:
        assert coreml.infer({"x": x})["output"].shape == (1, 10)
        with pytest.raises(UsageError, match="accepts 1x3x32x32 | .* got \\(1, 3, 40, 40\\)"):
            coreml.infer({"x": np.zeros((1, 3, 40, 40), np.float32)})


def test_tflite_resizes_at_run_time_and_matches_the_source(enumerated, model_dir):
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from tests.zoo import torch_nets

    interpreter = Interpreter(model_path=str(enumerated / "mobilenet_dynamic.fp32.tflite"))
    (detail,) = interpreter.get_input_details()
    assert list(detail["shape_signature"]) == [1, 3, -1, -1]
    runner = interpreter.get_signature_runner()
    source = torch_nets.build("mobilenet")
    for shape in [(1, 3, 48, 64), (1, 3, 40, 40)]:  # 40x40 is not enumerated: LiteRT takes any size in the bounds
        x = np.random.default_rng(2).uniform(-1, 1, shape).astype(np.float32)
        with torch.no_grad():
            want = source(torch.from_numpy(x)).numpy()
        got = runner(x=x)["output"]
        assert got.shape == want.shape == (1, 10)
        assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()


def test_the_bundle_manifest_lists_the_accepted_shapes(enumerated, tmp_path):
    import zipfile

    from deploykit.bundle.builder import BundleOptions, bundle
    from deploykit.bundle.manifest import validate

    built = bundle([enumerated / "mobilenet_dynamic.fp32.mlpackage"], BundleOptions(
        name="com.example.flex", version="1.0.0", out=tmp_path / "bundles"))
    validate(built[0].manifest, "manifest", "test")
    (tensor,) = built[0].manifest["io"]["inputs"]
    assert tensor["flexible"]["kind"] == "enumerated" and len(tensor["flexible"]["shapes"]) == 4
    readme = zipfile.ZipFile(built[0].path).read("integration/README.md").decode()
    assert "accepts one of these sizes: 1x3x32x32, 1x3x32x64, 1x3x48x32, 1x3x48x64" in readme
    assert "| `x` | float32 | 1x3x[32,48]x[32,64] |" in readme


def test_a_range_with_a_dynamic_batch(tmp_path):
    """Keras with None height, width and batch; the range's low end, middle and high end are checked."""
    from tests.zoo import keras_nets

    path = tmp_path / "resnet.keras"
    keras_nets.build("resnet", size=None).save(path)
    out = tmp_path / "dist"
    convert(path, to=("tflite", "coreml"), out=out, inputs=["image=(1..3)x(32..64)x(32..64)x3"])
    artifacts, _ = _record(out)
    for artifact in artifacts.values():
        sizes = artifact["parity"]["sizes"]
        assert [s["shapes"]["image"] for s in sizes] == [[1, 32, 32, 3], [2, 48, 48, 3], [3, 64, 64, 3]]
        assert all(s["passed"] for s in sizes)
    from deploykit.formats.coreml.spec import load_spec

    ranges = load_spec(out / "resnet.fp32.mlpackage").description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert [(r.lowerBound, r.upperBound) for r in ranges] == [(1, 3), (32, 64), (32, 64), (3, 3)]


def test_a_size_the_model_gets_wrong_fails_parity_at_that_size(tmp_path):
    """jit.trace bakes ``float(x.shape[2])`` into the Core ML program as 32: right at the default size,
    wrong at 48. Only the check at the other size can see it."""
    entry = tmp_path / "scaled.py"
    entry.write_text(
        "import torch\n\n"
        "class Scaled(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)\n\n"
        "    def forward(self, x):\n"
        "        return self.conv(x).mean((2, 3)) * float(x.shape[2])\n\n\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return Scaled().eval()\n")
    out = tmp_path / "dist"
    with pytest.raises(ParityError, match=r"scaled.fp32.mlpackage at x=1x3x48x48"):
        convert(f"{entry}:build", to="coreml", out=out, inputs=["x=1x3x32x32|1x3x48x48"])
    artifacts, _ = _record(out)
    sizes = artifacts[("coreml", "fp32")]["parity"]["sizes"]
    assert [s["passed"] for s in sizes] == [True, False]
    assert sizes[1]["outputs"]["output"]["max_rel_error"] > 0.3  # 32 / 48: a third off
    assert artifacts[("coreml", "fp32")]["parity"]["passed"] is False


def test_onnx_paths_refuse_flexible_sizes_clearly(model_dir, tmp_path):
    import onnx

    path = save_onnx("mobilenet", model_dir)
    model = onnx.load(path)
    for axis in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = f"d{axis}"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, dynamic)
    for target, path in (("tflite", "onnx2tf"), ("coreml", "onnx2coreml")):
        with pytest.raises(ConversionError, match=f"\\({path}\\) cannot make flexible input sizes \\(image\\)") as info:
            convert(dynamic, to=target, out=tmp_path / "dist", inputs=["image=1x3x[32,48]x[32,48]"])
        assert "PyTorch or Keras source" in info.value.hint
        assert not (tmp_path / "dist").exists()


def test_an_image_input_takes_one_size(tmp_path, model_dir):
    from deploykit.image_io.spec import ImageInputOptions

    with pytest.raises(UsageError, match="flexible sizes is not supported"):
        convert(_pt2_with_dynamic_size(model_dir), out=tmp_path / "dist", inputs=["x=1x3x[32,48]x[32,48]"],
                image_inputs=ImageInputOptions(names=("x",)))
    assert not (tmp_path / "dist").exists()
