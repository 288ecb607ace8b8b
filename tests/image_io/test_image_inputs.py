"""Image inputs (--image-input): the artifacts take pixels and carry the preprocessing; parity runs on images.

Every check runs the real converters. Besides deploykit's own parity check, the artifacts are run here
directly on uint8 pixels (LiteRT) or on the pixel tensor Core ML would hand the program (the evaluator),
and compared with the source fed the preprocessing computed by hand: an independent check that the
preamble inside the artifact is the declared preprocessing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploykit.image_io.sample_images import sample_images
from deploykit.image_io.spec import ImageInputOptions
from deploykit import convert
from tests.conftest import save_onnx, save_pt2

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.94, 116.78, 123.68)


def _record(out):
    record = json.loads((out / "deploykit-report.json").read_text())
    return record, {(a["target"], a["variant"]): a for a in record["artifacts"]}


def _litert(path, pixels):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()
    return next(iter(runner(**{name: pixels}).values()))


def _coreml_description_input(package):
    from deploykit.formats.coreml.metadata import read_spec

    return read_spec(package).description.input[0]


@pytest.fixture(scope="module")
def torch_rgb(model_dir, tmp_path_factory):
    source = save_pt2("mobilenet", model_dir)
    out = tmp_path_factory.mktemp("image_torch") / "out"
    options = ImageInputOptions(("x",), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    convert(source, to=["tflite", "coreml"], out=out, image_inputs=options, quantize="fp16")
    return source, out


def test_torch_artifacts_take_pixels(torch_rgb):
    _, out = torch_rgb
    record, artifacts = _record(out)
    assert record["source"]["image_inputs"]["x"]["mean"] == list(IMAGENET_MEAN)
    tflite = artifacts[("tflite", "fp32")]
    (spec,) = tflite["inputs"]
    assert (spec["dtype"], spec["shape"], spec["layout"]) == ("uint8", [1, 32, 32, 3], "NHWC")
    assert spec["image"]["pixels"].startswith("uint8 RGB")
    feature = _coreml_description_input(out / artifacts[("coreml", "fp32")]["path"])
    assert feature.type.WhichOneof("Type") == "imageType"
    assert (feature.type.imageType.width, feature.type.imageType.height, feature.type.imageType.colorSpace) == (32, 32, 20)
    for key, artifact in artifacts.items():
        parity = artifact["parity"]
        assert parity["passed"], key
        assert parity["inputs"] == "generated images" and parity["samples"] == 8
        if key[1] == "fp32":
            assert parity["outputs"]["logits" if "logits" in parity["outputs"] else "output"]["max_rel_error"] < 1e-4


def test_torch_preamble_is_the_declared_preprocessing(torch_rgb):
    """Independently of deploykit's parity check: LiteRT on uint8 pixels against the module on the tensor
    computed by hand, and the Core ML program on the float pixels Core ML would hand it."""
    import torch

    from deploykit.runners.coreml_eval.runner import CoreMLEvaluatorRunner

    source, out = torch_rgb
    _, artifacts = _record(out)
    module = torch.export.load(source).module()
    pixels = np.stack(sample_images(3, 32, 32, seed=7))
    by_hand = ((pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(0, 3, 1, 2)
    for i in range(3):
        expected = module(torch.from_numpy(by_hand[i:i + 1].astype(np.float32))).detach().numpy()
        tflite = _litert(out / artifacts[("tflite", "fp32")]["path"], pixels[i:i + 1])
        with CoreMLEvaluatorRunner(out / artifacts[("coreml", "fp32")]["path"]) as runner:
            coreml = next(iter(runner.infer({"x": pixels[i:i + 1].transpose(0, 3, 1, 2).astype(np.float32)}).values()))
        scale = np.abs(expected).max()
        assert np.abs(tflite - expected).max() / scale < 1e-4
        assert np.abs(coreml - expected).max() / scale < 1e-4


@pytest.fixture(scope="module")
def onnx_bgr(model_dir, tmp_path_factory):
    source = save_onnx("resnet", model_dir)
    out = tmp_path_factory.mktemp("image_onnx") / "out"
    options = ImageInputOptions(("image",), color="BGR", pixel_range="0-255", mean=CAFFE_BGR_MEAN, std=58.0)
    convert(source, to=["tflite", "coreml"], out=out, image_inputs=options)
    return source, out


def test_onnx_bgr_source_gets_reversed_channels(onnx_bgr):
    import onnxruntime as ort

    source, out = onnx_bgr
    _, artifacts = _record(out)
    assert all(a["parity"]["passed"] for a in artifacts.values())
    feature = _coreml_description_input(out / artifacts[("coreml", "fp32")]["path"])
    assert feature.type.imageType.colorSpace == 30  # BGR: Core ML hands the program blue first
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    pixels = np.stack(sample_images(2, 32, 32, seed=3))  # RGB, as an Android Bitmap gives them
    bgr = pixels[..., ::-1].astype(np.float32)
    by_hand = ((bgr - np.array(CAFFE_BGR_MEAN, np.float32)) / 58.0).transpose(0, 3, 1, 2)
    for i in range(2):
        expected = session.run(None, {"image": by_hand[i:i + 1].astype(np.float32)})[0]
        tflite = _litert(out / artifacts[("tflite", "fp32")]["path"], pixels[i:i + 1])
        assert np.abs(tflite - expected).max() / np.abs(expected).max() < 1e-4
        wrong = session.run(None, {"image": np.ascontiguousarray(by_hand[i:i + 1, ::-1]).astype(np.float32)})[0]
        assert np.abs(tflite - wrong).max() / np.abs(expected).max() > 1e-3  # the channel order matters here


def test_verify_catches_a_preprocessing_that_is_not_the_models(onnx_bgr, tmp_path):
    """The record says RGB, the artifact reverses channels for a BGR source: parity must fail."""
    import shutil

    from deploykit.pipeline.verify import verify

    source, out = onnx_bgr
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    record, artifacts = _record(copy)
    for artifact in record["artifacts"]:
        for spec in artifact["inputs"]:
            spec["image"]["color"] = "RGB"
    (copy / "deploykit-report.json").write_text(json.dumps(record))
    report = verify(source, copy / artifacts[("tflite", "fp32")]["path"])
    assert not report
    assert max(o.metrics["max_rel_error"] for o in report.outputs) > 1e-3
    assert verify(source, out / artifacts[("tflite", "fp32")]["path"])  # the true record passes
