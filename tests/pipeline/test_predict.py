"""``deploykit predict`` is the reference an app must match: on real photos (the two JPEGs scikit-learn's wheel
ships) and a generated picture of another aspect ratio, a verified bundle's top-1 and scores are the source
model's on the same picture with the same preprocessing, for every resize mode and both targets (the Core ML
artifact a classifier, the TFLite one with label metadata: the labels given at conversion)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploykit.image_io.resize import fit
from deploykit.image_io.sample_images import sample_images
from deploykit.image_io.spec import ImageInput, ImageInputOptions
from deploykit.labels.spec import ClassifierOptions
from deploykit import convert
from deploykit.pipeline.predict import PredictOptions, predict
from tests.conftest import save_pt2
from tests.cli.test_convert_cmd import run

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MODES = {"stretch": {}, "shorter-side": {"crop_fraction": 0.875}, "letterbox": {"fill": 114}}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    from PIL import Image
    from sklearn.datasets import load_sample_image

    folder = tmp_path_factory.mktemp("pictures")
    for name in ("china.jpg", "flower.jpg"):
        Image.fromarray(load_sample_image(name)).save(folder / name, quality=95)
    Image.fromarray(sample_images(1, 50, 160, seed=5)[0]).save(folder / "wide.png")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from deploykit.bundle.signing import generate_keypair, load_public_key, load_signing_key

    private, public, _ = generate_keypair(tmp_path_factory.mktemp("keys"))
    return load_signing_key(private), load_public_key(public), public


@pytest.fixture(scope="module", params=sorted(MODES))
def bundles(request, model_dir, tmp_path_factory, keys):
    from deploykit.bundle.builder import BundleOptions, bundle

    mode = request.param
    folder = tmp_path_factory.mktemp(f"predict_{mode}")
    source = save_pt2("mobilenet", model_dir)
    options = ImageInputOptions(("x",), mean=MEAN, std=STD, resize=mode, **MODES[mode])
    labels = folder / "labels.txt"
    labels.write_text("".join(f"class-{i}\n" for i in range(10)))
    convert(source, to=["tflite", "coreml"], out=folder / "out", image_inputs=options, classifier=ClassifierOptions(labels))
    built = bundle([folder / "out" / "mobilenet_0.fp32.tflite", folder / "out" / "mobilenet_0.fp32.mlpackage"],
                   BundleOptions(name="com.example.predict", version="1.0.0", out=folder / "bundles",
                                 sign_keys=(keys[0],)))  # the labels come from the record
    return mode, source, folder, {b.manifest["platform"]: b.path for b in built}


def _source_scores(source, picture, mode):
    import torch
    from PIL import Image

    image = ImageInput("x", resize=mode, **MODES[mode])
    with Image.open(picture) as opened:
        pixels = fit(opened.convert("RGB"), image, 32, 32).astype(np.float32)
    tensor = ((pixels / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
    logits = torch.export.load(source).module()(torch.from_numpy(tensor)).detach().numpy().reshape(-1)
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_predict_matches_the_source(bundles, pictures, keys, platform):
    mode, source, _, built = bundles
    results = predict(built[platform], pictures, PredictOptions(top_k=3, trusted_keys=(keys[1],)))
    assert [r.image for r in results] == [str(p) for p in pictures]
    for result, picture in zip(results, pictures):
        expected = _source_scores(source, picture, mode)
        index, label, score = result.top[0]
        assert index == int(np.argmax(expected)) and label == f"class-{index}"
        assert score == pytest.approx(float(expected.max()), rel=1e-4)


def test_resize_modes_see_different_pixels(bundles, pictures, keys, tmp_path):
    """--dump-input: the exact tensor fed; for the wide picture it is what fit() makes of it (by mode)."""
    mode, _, _, built = bundles
    dumped = tmp_path / "fed.npy"
    predict(built["android"], [pictures[-1]], PredictOptions(trusted_keys=(keys[1],), dump_input=dumped))
    fed = np.load(dumped)
    assert fed.dtype == np.uint8 and fed.shape == (1, 32, 32, 3)
    if mode == "letterbox":  # 160x50 -> 32x10, centred: 11 rows of fill above
        assert (fed[0, :10] == 114).all() and not (fed[0, 12:20] == 114).all()
    else:
        assert not (fed[0, :10] == 114).all()


def test_cli_predict_and_its_errors(bundles, pictures, keys, tmp_path):
    mode, _, folder, built = bundles
    if mode != "stretch":
        pytest.skip("the command line once is enough")
    from deploykit.bundle.signing import generate_keypair

    _, other, _ = generate_keypair(tmp_path / "other")
    result = run("predict", built["ios"], *pictures, "--trusted-key", keys[2], "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert len(predictions) == 3 and len(predictions[0]["top"]) == 2
    assert predictions[0]["top"][0]["label"].startswith("class-")
    refused = run("predict", built["ios"], pictures[0], "--trusted-key", other)
    assert refused.returncode == 4 and "Traceback" not in refused.stderr  # signed by someone else
    unsigned = run("predict", built["ios"], pictures[0])
    assert unsigned.returncode == 2 and "--trusted-key" in unsigned.stderr
    artifact = run("predict", folder / "out" / "mobilenet_0.fp32.tflite", tmp_path / "missing.jpg")
    assert artifact.returncode == 2 and "not found" in artifact.stderr


SWIFT = {"stretch": (".scaleFill", "1.0", "0.0"), "shorter-side": (".scaleFill", "0.875", "0.0"),
         "letterbox": (".scaleFill", "1.0", "114.0")}


def test_swift_template_implements_the_block(bundles):
    """No Swift toolchain here: the rendered Swift is checked for the block's values and Vision's option."""
    import zipfile

    mode, _, _, built = bundles
    with zipfile.ZipFile(built["ios"]) as archive:
        swift = archive.read("integration/swift/DeployKitModel.swift").decode()
        usage = archive.read("integration/README.md").decode()
    option, fraction, fill = SWIFT[mode]
    assert f'imageResize = "{mode}"' in swift and f"visionOption: VNImageCropAndScaleOption? = {option}" in swift
    assert f"imageCropFraction: CGFloat = {fraction}" in swift and f"imageFill: CGFloat = {fill}" in swift
    assert "CGSize(width: 32, height: 32)" in swift and "isClassifier = true" in swift
    assert "DeployKitModelInfo.classify(model, image: cgImage)" in usage and "VNClassificationObservation" in usage


def test_kotlin_template_implements_the_block(bundles):
    """The Android part needs the Android SDK to compile (the verifier part is compiled: tests/bundle); its
    rendered constants are the block's."""
    import zipfile

    mode, _, _, built = bundles
    with zipfile.ZipFile(built["android"]) as archive:
        kotlin = archive.read("integration/kotlin/DeployKitModel.kt").decode()
        usage = archive.read("integration/README.md").decode()
    _, fraction, fill = SWIFT[mode]
    assert f'IMAGE_RESIZE = "{mode}"' in kotlin and f"IMAGE_CROP_FRACTION = {fraction}f" in kotlin
    assert f"IMAGE_FILL = {int(float(fill))}" in kotlin and 'IMAGE_FEED = "uint8-pixels"' in kotlin
    assert "IMAGE_WIDTH = 32" in kotlin and "IMAGE_HEIGHT = 32" in kotlin
    assert "DeployKitModelInfo.toInput(DeployKitModelInfo.prepare(bitmap))" in usage
