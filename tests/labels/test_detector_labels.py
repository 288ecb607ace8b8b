"""An ONNX detector-style model (boxes and per-box class scores) with an image input and labels.

The scores output is 1 x cells x classes: its labels travel as TFLite TENSOR_AXIS_LABELS and Core ML
metadata (a Core ML classifier is one label per prediction, which a detector is not), the image input
takes pixels on both targets, parity passes on pictures, and ``predict`` on the signed bundle names the
class with the highest score anywhere in the picture, as the source does on the same preprocessing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploykit.image_io.spec import ImageInput, ImageInputOptions
from deploykit.labels.spec import ClassifierOptions
from deploykit import convert

LABELS = ["person", "bicycle", "car", "dog", "cat"]
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _detector_onnx(path):
    import torch

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU())
            self.boxes = torch.nn.Conv2d(32, 4, 1)
            self.scores = torch.nn.Conv2d(32, len(LABELS), 1)

        def forward(self, image):
            features = self.backbone(image)
            boxes = self.boxes(features).flatten(2).transpose(1, 2)  # 1 x 64 cells x 4
            scores = torch.sigmoid(self.scores(features)).flatten(2).transpose(1, 2)  # 1 x 64 cells x 5 classes
            return boxes, scores

    torch.manual_seed(3)
    model = Detector().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(model, torch.rand(1, 3, 32, 32), str(path), input_names=["image"], output_names=["boxes", "scores"],
                      opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    from deploykit.bundle.builder import BundleOptions, bundle
    from deploykit.bundle.signing import generate_keypair, load_public_key, load_signing_key

    folder = tmp_path_factory.mktemp("detector")
    source = _detector_onnx(folder / "detector.onnx")
    labels = folder / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    convert(source, to=["tflite", "coreml"], out=folder / "out", image_inputs=ImageInputOptions(("image",), mean=MEAN, std=STD),
            classifier=ClassifierOptions(labels, output="scores"))
    private, public, _ = generate_keypair(folder / "keys")
    built = bundle([folder / "out" / "detector.fp32.tflite", folder / "out" / "detector.fp32.mlpackage"],
                   BundleOptions(name="com.example.detector", version="1.0.0", out=folder / "bundles",
                                 sign_keys=(load_signing_key(private),)))
    record = json.loads((folder / "out" / "deploykit-report.json").read_text())
    artifacts = {(a["target"], a["variant"]): a for a in record["artifacts"]}
    return source, folder, artifacts, {b.manifest["platform"]: b.path for b in built}, load_public_key(public)


def test_both_targets_take_pixels_carry_the_labels_and_pass_parity(detector):
    from deploykit.formats.coreml.metadata import read_spec
    from deploykit.formats.tflite.metadata_read import associated_files, read_metadata

    _, folder, artifacts, _, _ = detector
    for artifact in artifacts.values():
        assert artifact["parity"]["passed"] and artifact["parity"]["inputs"] == "generated images"
        assert artifact["classifier"]["axis"] == 2 and artifact["classifier"]["kind"] == "class scores"
        assert artifact["parity"]["outputs"]["scores"]["max_rel_error"] < 1e-4
    tflite = (folder / "out" / artifacts[("tflite", "fp32")]["path"]).read_bytes()
    assert artifacts[("tflite", "fp32")]["inputs"][0]["dtype"] == "uint8"
    assert associated_files(tflite)["labels.txt"].decode().split() == LABELS
    outputs = {o["name"]: o for o in read_metadata(tflite)["model_metadata"]["outputs"]}
    assert outputs["scores"]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
    spec = read_spec(folder / "out" / artifacts[("coreml", "fp32")]["path"])
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert sorted(o.name for o in spec.description.output) == ["boxes", "scores"]  # no classLabel: not a classifier
    user = spec.description.metadata.userDefined
    assert json.loads(user["com.deploykit.labels"]) == LABELS
    assert json.loads(user["com.deploykit.labels_output"]) == {"output": "scores", "axis": 2}


def _source_best_class(source, picture) -> int:
    import onnxruntime as ort
    from PIL import Image

    from deploykit.image_io.resize import fit

    with Image.open(picture) as opened:
        pixels = fit(opened.convert("RGB"), ImageInput("image"), 32, 32).astype(np.float32)
    tensor = ((pixels / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
    scores = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(["scores"], {"image": tensor})[0]
    return int(scores[0].max(axis=0).argmax())


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_predict_on_the_bundle_names_the_sources_best_class(detector, platform, tmp_path):
    from PIL import Image

    from deploykit.image_io.sample_images import sample_images
    from deploykit.pipeline.predict import PredictOptions, predict

    source, _, _, bundles, public = detector
    pictures = []
    for index, pixels in enumerate(sample_images(4, 40, 40, seed=11)):
        pictures.append(tmp_path / f"picture{index}.png")
        Image.fromarray(pixels).save(pictures[-1])
    results = predict(bundles[platform], pictures, PredictOptions(top_k=2, trusted_keys=(public,)))
    assert [r.top[0][1] for r in results] == [LABELS[_source_best_class(source, p)] for p in pictures]
    assert all(r.scores_are == "best score per class over all positions" for r in results)
    assert all(0 < r.top[0][2] < 1 for r in results)  # sigmoid scores, not a softmax over classes
