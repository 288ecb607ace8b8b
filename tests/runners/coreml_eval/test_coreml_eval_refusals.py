"""Loud refusals: programs the evaluator cannot compute exactly, corrupt weight files, paths that
leave the package, and bad feeds. Packages are edited by hand from one small converted program."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest

from coreml_eval_support import save_small_program
from deploykit.core.errors import InputError, UnsafeInputError, UnsupportedOperatorError, UsageError

ct = pytest.importorskip("coremltools")

SPEC = "Data/com.apple.CoreML/model.mlmodel"
WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return save_small_program(tmp_path_factory.mktemp("refusals") / "base.mlpackage")


X = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)


def _copy(src, tmp_path, name="edited.mlpackage"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _edit_spec(src, tmp_path, edit):
    from coremltools.proto import Model_pb2

    dst = _copy(src, tmp_path)
    model = Model_pb2.Model()
    model.ParseFromString((dst / SPEC).read_bytes())
    edit(model)
    (dst / SPEC).write_bytes(model.SerializeToString())
    return dst


def _ops(model):
    fn = model.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset].operations


def _op(model, op_type):
    return next(op for op in _ops(model) if op.type == op_type)


def _const_feeding(model, op_type, key):
    name = _op(model, op_type).inputs[key].arguments[0].name
    return next(op for op in _ops(model) if op.type == "const" and op.outputs[0].name == name)


def _evaluate(path):
    from deploykit.runners.coreml_eval import evaluate

    return evaluate(path, {"x": X})


def test_base_package_evaluates(package):
    out = _evaluate(package)["gelu_out"]
    assert out.shape == (1, 8, 8, 8) and np.isfinite(out).all()


# -- unsupported programs ------------------------------------------------------------------------
def test_unknown_op_type(package, tmp_path):
    path = _edit_spec(package, tmp_path, lambda m: setattr(_op(m, "relu"), "type", "relu_squared"))
    with pytest.raises(UnsupportedOperatorError, match=r"relu_squared.*relu_out"):
        _evaluate(path)


def test_unknown_pad_type(package, tmp_path):
    def edit(model):
        const = _const_feeding(model, "conv", "pad_type")
        const.attributes["val"].immediateValue.tensor.strings.values[0] = "reflect_same"
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(UnsupportedOperatorError, match=r"'conv'.*conv_out.*pad_type='reflect_same'"):
        _evaluate(path)


def test_unknown_gelu_mode(package, tmp_path):
    def edit(model):
        _const_feeding(model, "gelu", "mode").attributes["val"].immediateValue.tensor.strings.values[0] = "ERF_FAST"
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(UnsupportedOperatorError, match=r"'gelu'.*gelu_out.*mode='ERF_FAST'"):
        _evaluate(path)


def test_unknown_argument(package, tmp_path):
    """An argument the implementation never reads is refused, not ignored."""
    def edit(model):
        pad = _const_feeding(model, "conv", "pad").outputs[0].name
        _op(model, "relu").inputs["max_value"].arguments.add().name = pad
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(UnsupportedOperatorError, match=r"'relu'.*relu_out.*max_value"):
        _evaluate(path)


def test_nonzero_pad_with_valid_pad_type(package, tmp_path):
    def edit(model):
        _const_feeding(model, "conv", "pad_type").attributes["val"].immediateValue.tensor.strings.values[0] = "valid"
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(UnsupportedOperatorError, match=r"'conv'.*pad=\[1, 1, 1, 1\]"):
        _evaluate(path)


def test_declared_shape_mismatch(package, tmp_path):
    """The computed shape is checked against the program's declaration."""
    def edit(model):
        _op(model, "relu").outputs[0].type.tensorType.dimensions[2].constant.size = 7
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(UnsupportedOperatorError, match=r"'relu'.*computed shape \(1, 8, 8, 8\)"):
        _evaluate(path)


def test_not_an_ml_program(tmp_path):
    from coremltools.proto import Model_pb2

    path = tmp_path / "nn.mlpackage"
    (path / "Data/com.apple.CoreML").mkdir(parents=True)
    model = Model_pb2.Model(specificationVersion=4)
    model.neuralNetwork.SetInParent()
    (path / SPEC).write_bytes(model.SerializeToString())
    (path / "Manifest.json").write_text(json.dumps({
        "fileFormatVersion": "1.0.0", "rootModelIdentifier": "a",
        "itemInfoEntries": {"a": {"path": "com.apple.CoreML/model.mlmodel"}}}))
    with pytest.raises(InputError, match="not an ML Program"):
        _evaluate(path)


# -- corrupt files -------------------------------------------------------------------------------
def _first_record(path) -> int:
    data = (path / WEIGHTS).read_bytes()
    offset = data.index(struct.pack("<I", 0xDEADBEEF))
    assert offset % 64 == 0
    return offset


def _patch_bytes(path, offset, new: bytes):
    data = bytearray((path / WEIGHTS).read_bytes())
    data[offset:offset + len(new)] = new
    (path / WEIGHTS).write_bytes(bytes(data))


def test_truncated_weights(package, tmp_path):
    path = _copy(package, tmp_path)
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="corrupt weight file"):
        _evaluate(path)


def test_weights_shorter_than_header(package, tmp_path):
    path = _copy(package, tmp_path)
    (path / WEIGHTS).write_bytes(b"\x01\x00")
    with pytest.raises(InputError, match="shorter than its 64-byte header"):
        _evaluate(path)


@pytest.mark.parametrize("field,value,message", [
    (0, struct.pack("<I", 0xCAFEBABE), "sentinel"),
    (4, struct.pack("<I", 1), "dtype code 1"),  # fp16 where the program expects fp32
    (8, struct.pack("<Q", 10**9), "outside the file"),  # size
    (16, struct.pack("<Q", 10**9), "outside the file"),  # data offset
])
def test_corrupt_record(package, tmp_path, field, value, message):
    path = _copy(package, tmp_path)
    _patch_bytes(path, _first_record(path) + field, value)
    with pytest.raises(InputError, match=message):
        _evaluate(path)


def test_wrong_blob_version(package, tmp_path):
    path = _copy(package, tmp_path)
    _patch_bytes(path, 4, struct.pack("<I", 7))
    with pytest.raises(InputError, match="version 7"):
        _evaluate(path)


def test_blob_offset_not_a_record(package, tmp_path):
    def edit(model):
        const = _op(model, "const")
        for op in _ops(model):
            if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
                const = op
        const.attributes["val"].blobFileValue.offset += 64
    path = _edit_spec(package, tmp_path, edit)
    with pytest.raises(InputError, match="corrupt weight file"):
        _evaluate(path)


def test_garbage_model_file(package, tmp_path):
    path = _copy(package, tmp_path)
    (path / SPEC).write_bytes(b"\xff\xfe not a protobuf \x00" * 10)
    with pytest.raises(InputError):
        _evaluate(path)


def test_not_a_package(tmp_path):
    (tmp_path / "model.mlmodel").write_bytes(b"")
    with pytest.raises(InputError, match="not an .mlpackage"):
        _evaluate(tmp_path / "model.mlmodel")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(InputError, match="manifest"):
        _evaluate(tmp_path / "empty.mlpackage")


# -- paths leaving the package -------------------------------------------------------------------
def test_manifest_path_escaping(package, tmp_path):
    path = _copy(package, tmp_path)
    manifest = json.loads((path / "Manifest.json").read_text())
    root = manifest["rootModelIdentifier"]
    shutil.copy(path / SPEC, tmp_path / "outside.mlmodel")
    manifest["itemInfoEntries"][root]["path"] = "../../outside.mlmodel"
    (path / "Manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UnsafeInputError, match="outside the package"):
        _evaluate(path)


@pytest.mark.parametrize("file_name", ["@model_path/../../../weight.bin", "/etc/passwd"])
def test_blob_path_escaping(package, tmp_path, file_name):
    def edit(model):
        for op in _ops(model):
            if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
                op.attributes["val"].blobFileValue.fileName = file_name
    path = _edit_spec(package, tmp_path, edit)
    shutil.copy(package / WEIGHTS, tmp_path / "weight.bin")
    with pytest.raises(UnsafeInputError):
        _evaluate(path)


def test_weights_symlink_escaping(package, tmp_path):
    path = _copy(package, tmp_path)
    outside = tmp_path / "elsewhere.bin"
    shutil.move(path / WEIGHTS, outside)
    os.symlink(outside, path / WEIGHTS)
    with pytest.raises(UnsafeInputError, match="outside the package"):
        _evaluate(path)


# -- feeds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("feeds,message", [
    ({}, "missing input 'x'"),
    ({"x": X, "y": X}, "unknown input"),
    ({"x": X[:, :, :4]}, "shape"),
    ({"x": X.astype(np.int32)}, "dtype int32"),
])
def test_bad_feeds(package, feeds, message):
    from deploykit.runners.coreml_eval import evaluate

    with pytest.raises(UsageError, match=message):
        evaluate(package, feeds)
