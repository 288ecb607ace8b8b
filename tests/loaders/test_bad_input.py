"""Every failure a user can cause: one clear error, the documented exit code, nothing written."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

import deploykit
from deploykit.core.errors import ConversionError, InputError, UnsafeInputError, UnsupportedOperatorError, UsageError
from deploykit.pipeline.request import VerifyOptions
from tests.conftest import save_keras, save_onnx, save_pt2


def assert_nothing_written(out: Path):
    assert not out.exists() or list(out.iterdir()) == [], f"{out} holds {list(out.iterdir())}"


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="model not found"):
        deploykit.convert(tmp_path / "nope.onnx", out=tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_unknown_format(tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(InputError, match="cannot tell the format") as info:
        deploykit.convert(junk, out=tmp_path / "out")
    assert ".onnx" in info.value.hint
    assert_nothing_written(tmp_path / "out")


def test_artifact_given_as_source(tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"\x1c\x00\x00\x00TFL3")
    with pytest.raises(InputError, match="output of deploykit"):
        deploykit.load_source(fake)


@pytest.mark.parametrize("spec, message", [
    ("1x3x32", "rank 4"),
    ("image=1x3xA", "bad --input"),
    ("label=1x3x32x32", "not inputs of the model"),
    ("1x3x64x64", "fixes shape"),
    ("image=1x3x[32,64]x[32,64]", "fixes dimension 2 to 32"),
    ("image=1x3x(32..64)x(32..64)", "only its dynamic dimensions can be flexible"),
])
def test_wrong_input_spec(spec, message, model_dir, tmp_path):
    with pytest.raises(UsageError, match=message):
        deploykit.convert(save_onnx("mobilenet", model_dir), inputs=[spec], out=tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_torchscript_needs_input_shapes(tmp_path):
    import torch

    from tests.zoo import torch_nets

    path = tmp_path / "m.ts.pt"
    torch.jit.save(torch.jit.trace(torch_nets.build("mobilenet"), torch.rand(1, 3, 32, 32)), path)
    with pytest.raises(UsageError, match="dynamic or unknown shape") as info:
        deploykit.convert(path, out=tmp_path / "out")
    assert "--input x=" in info.value.hint


def test_h5_refused_unless_allowed(tmp_path):
    from tests.zoo import keras_nets

    path = tmp_path / "legacy.h5"
    keras_nets.build("mobilenet").save(path)
    with pytest.raises(UnsafeInputError, match="safe_mode") as info:
        deploykit.convert(path, to="tflite", out=tmp_path / "out")
    assert "--allow-h5" in info.value.hint
    assert_nothing_written(tmp_path / "out")
    report = deploykit.convert(path, to="tflite", out=tmp_path / "out", allow_h5=True)
    assert report.artifacts[0].size_bytes > 0


def test_keras_lambda_layer_refused(tmp_path):
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UnsafeInputError, match="arbitrary Python"):
        deploykit.convert(path, out=tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_pickled_module_refused(tmp_path):
    import torch

    from tests.zoo import torch_nets

    path = tmp_path / "whole.pt"
    torch.save(torch_nets.build("mobilenet"), path)
    with pytest.raises(UnsafeInputError, match="never unpickles") as info:
        deploykit.convert(path, out=tmp_path / "out")
    assert "torch.export.save" in info.value.hint


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/deploykit-test-exploit-ran")


def test_malicious_pt2_payload_refused_before_unpickling(model_dir, tmp_path):
    MARKER.unlink(missing_ok=True)
    good = save_pt2("mobilenet", model_dir)
    bad = tmp_path / "evil.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                victim = first["path_name"]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
        folder = next(n for n in src.namelist() if n.endswith("model_weights_config.json")).rsplit("/", 1)[0]
    with zipfile.ZipFile(bad, "a") as dst:
        dst.writestr(f"{folder}/{victim}.evil", b"")  # keep the archive valid while replacing the payload below
    entries = {}
    with zipfile.ZipFile(bad) as src:
        for item in src.infolist():
            entries[item.filename] = src.read(item)
    entries[f"{folder}/{victim}"] = pickle.dumps(_Exploit())
    with zipfile.ZipFile(bad, "w") as dst:
        for name, data in entries.items():
            dst.writestr(name, data)
    with pytest.raises(UnsafeInputError, match="not plain tensors"):
        deploykit.convert(bad, out=tmp_path / "out")
    assert not MARKER.exists(), "the pickle payload ran"


def test_weights_that_pickle_objects_are_refused(tmp_path):
    import torch

    weights = tmp_path / "weights.pth"
    torch.save({"layer": _Exploit()}, weights)
    entry = tmp_path / "nets.py"
    entry.write_text("from tests.zoo import torch_nets\n\ndef build():\n    return torch_nets.build('mobilenet')\n")
    MARKER.unlink(missing_ok=True)
    with pytest.raises(UnsafeInputError, match="weights_only"):
        deploykit.convert(f"{entry}:build", weights=weights, inputs=["1x3x32x32"], out=tmp_path / "out")
    assert not MARKER.exists()


def test_weights_that_do_not_fit(tmp_path):
    import torch

    from tests.zoo import torch_nets

    weights = tmp_path / "resnet.pth"
    torch.save(torch_nets.build("resnet").state_dict(), weights)
    entry = tmp_path / "nets.py"
    entry.write_text("from tests.zoo import torch_nets\n\ndef build():\n    return torch_nets.build('mobilenet')\n")
    with pytest.raises(UsageError, match="do not fit"):
        deploykit.convert(f"{entry}:build", weights=weights, inputs=["1x3x32x32"], out=tmp_path / "out")


def _onnx_with_external(tmp_path: Path, location: str) -> Path:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])], [weight])
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    path = model_dir / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "C:\\secret.bin"])
def test_onnx_external_data_escaping_directory_refused(location, tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(UnsafeInputError, match="escapes"):
        deploykit.load_source(_onnx_with_external(tmp_path, location))


def test_onnx_external_data_symlink_and_hardlink_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    path = _onnx_with_external(tmp_path, "weights.bin")
    (path.parent / "weights.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        deploykit.load_source(path)
    (path.parent / "weights.bin").unlink()
    os.link(tmp_path / "secret.bin", path.parent / "weights.bin")
    with pytest.raises(UnsafeInputError, match="hard link"):
        deploykit.load_source(path)


def test_onnx_external_data_inside_directory_loads(tmp_path):
    import numpy as np

    path = _onnx_with_external(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(np.eye(4, dtype=np.float32).tobytes())
    model = deploykit.load_source(path)
    assert model.outputs[0].shape == (1, 4)


@pytest.mark.heavy  # ~100 s: every route of both ladders; tests/cli/test_convert_cmd.py checks the Core ML refusal by default
def test_unsupported_operator(tmp_path):
    entry = tmp_path / "det.py"
    entry.write_text("import torch\n\nclass Det(torch.nn.Module):\n    def forward(self, x):\n"
                     "        return torch.linalg.det(x)\n\ndef build():\n    return Det()\n")
    for target in ("tflite", "coreml"):
        with pytest.raises(UnsupportedOperatorError, match="det"):
            deploykit.convert(f"{entry}:build", to=target, inputs=["1x3x3"], out=tmp_path / "out")
        assert_nothing_written(tmp_path / "out")


def test_failure_in_second_target_publishes_nothing(tmp_path):
    """tflite converts, coreml fails: the finished .tflite must not appear either."""
    entry = tmp_path / "mixed.py"
    entry.write_text("import torch\n\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                     "        return torch.fft.rfft(x, dim=-1).abs() + torch.linalg.det(x[..., :4]).unsqueeze(-1).unsqueeze(-1)\n\n"
                     "def build():\n    return Net()\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises((UnsupportedOperatorError, ConversionError)):
        deploykit.convert(f"{entry}:build", to="tflite,coreml", inputs=["1x4x4"], out=out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_unknown_target_and_deployment_target(model_dir, tmp_path):
    with pytest.raises(UsageError, match="unknown target"):
        deploykit.convert(save_keras("mobilenet", model_dir), to="tfjs", out=tmp_path / "out")
    with pytest.raises(UsageError, match="deployment target"):
        deploykit.convert(save_keras("mobilenet", model_dir), coreml_target="iOS9", out=tmp_path / "out")


def test_data_that_does_not_fit_is_not_retried_by_other_rungs(model_dir, tmp_path):
    """--data of the wrong shape is the user's error: the ladder stops at it instead of trying the fallback route."""
    import numpy as np

    from tests.conftest import TORCH_SHAPE

    source = save_onnx("mobilenet", model_dir)
    data = tmp_path / "data.npz"
    wrong = (2,) + tuple(TORCH_SHAPE[1:-1]) + (TORCH_SHAPE[-1] + 3,)
    np.savez(data, image=np.zeros(wrong, np.float32))
    with pytest.raises(InputError, match="the data has") as info:
        deploykit.convert(source, to="coreml", out=tmp_path / "out", verify_options=VerifyOptions(data=str(data)))
    assert "also tried" not in info.value.message
    assert_nothing_written(tmp_path / "out")
