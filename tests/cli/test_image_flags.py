"""--image-input from the command line: bad flags end in one message and exit 2; an image folder is read with
the declared resize mode; the bundle's manifest carries the preprocessing block and its README the table."""

from __future__ import annotations

import base64
from dataclasses import replace
import json
import zipfile

import numpy as np
import pytest

from deploykit.image_io.resize import fit
from deploykit.image_io.sample_images import sample_images
from deploykit.image_io.spec import ImageInput
from tests.conftest import save_pt2
from tests.cli.test_convert_cmd import run


@pytest.mark.parametrize("flags, message", [
    (["--image-input", "nope"], "the model has no such input"),
    (["--image-input", "x", "--color", "GRAY"], "needs 1"),
    (["--image-input", "x", "--std", "0.2,0,0.2"], "--std must not contain zero"),
    (["--image-input", "x", "--mean", "0.1,0.2"], "--mean has 2 values"),
    (["--image-input", "x", "--resize", "zoom"], "unknown --resize"),
    (["--image-input", "x", "--crop-fraction", "0.875"], "--crop-fraction applies to --resize shorter-side only"),
    (["--image-input", "x", "--quantize", "int8", "--calibration", "{samples}"], "full-integer int8 is not supported yet"),
    # issue 21, item 4: statistics that cannot be meant with the pixel range (image_io/consistency.py)
    (["--image-input", "x", "--mean", "127.5", "--std", "127.5"], "--mean 127.5 is outside --pixel-range 0-1"),
    (["--image-input", "x", "--mean", "123.675,116.28,103.53"], "pass --pixel-range 0-255"),
    (["--image-input", "x", "--pixel-range", "0-255", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"],
     "are 0-1 statistics but --pixel-range is 0-255"),
])
def test_bad_image_flags_exit_2(model_dir, tmp_path, flags, message):
    source = save_pt2("mobilenet", model_dir)
    samples = tmp_path / "samples.npy"
    np.save(samples, np.zeros((4, 3, 32, 32), np.float32))
    flags = [f.format(samples=samples) for f in flags]
    result = run("convert", source, "--to", "tflite", "--out", tmp_path / "out", *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _photos(folder, sizes):
    from PIL import Image

    folder.mkdir()
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(sample_images(1, height, width, seed=index)[0]).save(folder / f"photo_{index}.png")
    return folder


def test_image_folder_checked_with_the_declared_resize(model_dir, tmp_path):
    source = save_pt2("mobilenet", model_dir)
    photos = _photos(tmp_path / "photos", [(60, 90), (120, 40), (32, 32)])
    out = tmp_path / "out"
    result = run("convert", source, "--to", "tflite,coreml", "--out", out, "--image-input", "x", "--resize", "shorter-side",
                 "--crop-fraction", "0.875", "--data", photos, "--mean", "0.5", "--std", "0.25")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "deploykit-report.json").read_text())
    for artifact in record["artifacts"]:
        assert artifact["parity"]["passed"] and artifact["parity"]["inputs"] == "images"
        assert artifact["parity"]["samples"] == 3
        assert artifact["inputs"][0]["image"]["resize"] == "shorter-side"
    bundles = tmp_path / "bundles"
    result = run("bundle", out / "mobilenet_0.fp32.tflite", out / "mobilenet_0.fp32.mlpackage", "--name", "com.example.cls",
                 "--version", "1.0.0", "--out", bundles)
    assert result.returncode == 0, result.stderr
    (android,) = bundles.glob("*android*.zip")
    with zipfile.ZipFile(android) as archive:
        readme = archive.read("integration/README.md").decode()
        envelope = json.loads(archive.read("manifest.json"))
    assert "| resize | scale so the picture covers 32x32 with the shorter side at 0.875 of it" in readme
    assert "computed by the model" in readme
    manifest = json.loads(base64.b64decode(envelope["payload"]))  # validated against manifest.schema.json on build
    block = manifest["io"]["inputs"][0]["preprocessing"]
    assert block == {"size": [32, 32], "resize": "shorter-side", "crop": "center", "crop_fraction": 0.875,
                     "interpolation": "bilinear", "fill": 0, "color": "RGB", "pixel_range": "0-1", "mean": [0.5] * 3,
                     "std": [0.25] * 3, "normalized_by": "model", "feed": "uint8-pixels"}


def test_bundle_refuses_mean_for_an_image_input(model_dir, tmp_path):
    source = save_pt2("mobilenet", model_dir)
    out = tmp_path / "out"
    assert run("convert", source, "--to", "tflite", "--out", out, "--image-input", "x", "--no-verify").returncode == 0
    result = run("bundle", out / "mobilenet_0.fp32.tflite", "--name", "com.example.cls", "--version", "1.0.0",
                 "--mean", "0.5", "--std", "0.5", "--out", tmp_path / "bundles")
    assert result.returncode == 2 and "converted with --image-input" in result.stderr


def test_resize_modes():
    from PIL import Image

    picture = Image.fromarray(np.arange(40 * 80 * 3, dtype=np.uint32).reshape(40, 80, 3).astype(np.uint8) | 1)
    stretch = fit(picture, ImageInput("x"), 16, 16)
    assert stretch.shape == (16, 16, 3)
    letterbox = fit(picture, ImageInput("x", resize="letterbox", fill=0), 16, 16)
    assert (letterbox[:4] == 0).all() and (letterbox[-4:] == 0).all() and (letterbox[4:12] > 0).all()  # 80x40 -> 16x8
    centre = fit(picture, ImageInput("x", resize="shorter-side", interpolation="nearest"), 40, 40)
    assert np.array_equal(centre, np.asarray(picture)[:, 20:60])  # scale 1, the centre 40 columns
    gray = fit(picture.convert("L"), ImageInput("x", color="GRAY", resize="letterbox", fill=114), 16, 16)
    assert gray.shape == (16, 16, 1) and (gray[:4] == 114).all()


def test_unreadable_pictures_and_labels_exit_2(model_dir, tmp_path):
    source = save_pt2("mobilenet", model_dir)
    photos = _photos(tmp_path / "photos", [(40, 40)])
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    result = run("convert", source, "--to", "tflite", "--out", tmp_path / "out", "--image-input", "x", "--data", photos)
    assert result.returncode == 2 and "broken.jpg: not a readable image" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
    labels = tmp_path / "labels.txt"
    labels.write_bytes(bytes(range(256)))
    result = run("convert", source, "--to", "tflite", "--out", tmp_path / "out", "--labels", labels)
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr
    out = tmp_path / "ok"
    assert run("convert", source, "--to", "tflite", "--out", out, "--image-input", "x", "--no-verify").returncode == 0
    result = run("predict", out / "mobilenet_0.fp32.tflite", photos / "broken.jpg")
    assert result.returncode == 2 and "not a readable image" in result.stderr and "Traceback" not in result.stderr
    plain = tmp_path / "plain"
    assert run("convert", source, "--to", "tflite", "--out", plain, "--no-verify").returncode == 0
    result = run("predict", plain / "mobilenet_0.fp32.tflite", photos / "photo_0.png")
    assert result.returncode == 2 and "exactly one image input" in result.stderr


def test_onnx_preamble_reaches_subgraphs(tmp_path):
    """An If branch that reads the image input by its outer name reads the normalized value after wrapping."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from deploykit.image_io.wrap import with_pixel_inputs
    from deploykit.targets import get
    from deploykit.loaders import load_source

    branch = lambda name, op: helper.make_graph(  # noqa: E731
        [helper.make_node(op, ["x"], [f"{name}_out"])], name, [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 3, 4, 4])])
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", "Relu"), else_branch=branch("else", "Neg"))]
    graph = helper.make_graph(nodes, "branchy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    path = tmp_path / "branchy.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    image = ImageInput("x", mean=(0.5,) * 3, std=(0.25,) * 3)
    model = load_source(path)
    wrapped = with_pixel_inputs(replace(model, images=(image,)), (image,), get("tflite").pixel_feed)
    onnx.checker.check_model(wrapped.handle)
    pixels = np.stack(sample_images(1, 4, 4, seed=2)).transpose(0, 3, 1, 2)  # the ONNX preamble keeps NCHW
    by_hand = ((pixels / 255.0 - 0.5) / 0.25).astype(np.float32)
    run_graph = lambda proto, feed: ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": feed})[0]  # noqa: E731
    assert np.allclose(run_graph(wrapped.handle, pixels.astype(np.uint8)), run_graph(model.handle, by_hand), atol=1e-6)
