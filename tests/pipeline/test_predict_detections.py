"""``deploykit predict`` on a detector: the artifact's boxes in the picture's pixels (the letterbox undone), the
drawn PNG, the command line's text and JSON, and the refusals. The artifact's run is a stand-in runner returning
fixed detector outputs (the record is ``convert --detector``'s, written by hand): what is checked is everything
predict does around the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploykit.core.errors import UsageError
from deploykit.detection.draw import colour
from deploykit.image_io.spec import ImageInput
from deploykit.pipeline.predict import PredictOptions, predict
from tests.detection.records import LABELS, block, tflite_io, write_record

LETTERBOX = ImageInput("images", resize="letterbox", fill=114)
# The picture is 200x100: letterboxed into 64x64 at scale 0.32, 16 rows of padding above. Its box (50, 20, 150, 80)
# is (16, 22.4, 48, 41.6) in the input, normalized ymin 0.35, xmin 0.25, ymax 0.65, xmax 0.75.
PICTURE_BOX = [50.0, 20.0, 150.0, 80.0]
OUTPUTS = {"detection_boxes": np.array([[[0.35, 0.25, 0.65, 0.75], [0.0, 0.0, 0.5, 0.5]] + [[0, 0, 0, 0]] * 8],
                                       np.float32),
           "detection_classes": np.array([[1, 0] + [0] * 8], np.float32),
           "detection_scores": np.array([[0.9, 0.4] + [0] * 8], np.float32),
           "num_detections": np.array([1], np.float32)}  # the second box is past the count: not a detection


class FakeRunner:
    def __init__(self, outputs):
        self.outputs, self.fed = outputs, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, feeds):
        self.fed.append(feeds)
        return dict(self.outputs)


@pytest.fixture
def detector(tmp_path, monkeypatch):
    """A TFLite detector artifact with its record, a 200x100 picture, and the runner its runs go to."""
    from PIL import Image

    artifact = tmp_path / "dist" / "det.fp32.tflite"
    artifact.parent.mkdir()
    artifact.write_bytes(b"stand-in: the runner is replaced")
    inputs, outputs = tflite_io((64, 64), LETTERBOX)
    write_record(artifact, "tflite", inputs, outputs, block())
    picture = tmp_path / "street.jpg"
    Image.fromarray(np.full((100, 200, 3), 90, np.uint8)).save(picture, quality=95)
    runner = FakeRunner(OUTPUTS)
    monkeypatch.setattr("deploykit.targets.runner_for", lambda path, target=None, **_: runner)
    return artifact, picture, runner


def test_boxes_come_back_in_the_picture_pixels(detector):
    artifact, picture, runner = detector
    (result,) = predict(artifact, [picture])
    assert result.size == (200, 100) and result.frame.startswith("the picture's pixels")
    assert result.detections == ({"class": 1, "label": "dog", "score": 0.9, "box": PICTURE_BOX},)
    fed = runner.fed[0]["images"]  # what the artifact got: the letterboxed pixels, 16 rows of fill above
    assert fed.shape == (1, 64, 64, 3) and fed.dtype == np.uint8 and (fed[0, :16] == 114).all()


def test_draw_writes_the_picture_with_its_box_in_the_class_colour(detector, tmp_path):
    from PIL import Image

    artifact, picture, _ = detector
    (result,) = predict(artifact, [picture, picture], PredictOptions(draw=tmp_path / "drawn"))[:1]
    assert result.drawn == str(tmp_path / "drawn" / "street.png")
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["street-2.png", "street.png"]
    with Image.open(result.drawn) as drawn:
        assert drawn.format == "PNG" and drawn.size == (200, 100)
        pixels = np.asarray(drawn.convert("RGB"))
    dog = colour(1)
    x1, y1, x2, y2 = (int(v) for v in PICTURE_BOX)
    for x, y in ((x1, 50), (x2 - 1, 50), (100, y2 - 1), (140, y1)):  # left, right, bottom and top edges
        assert tuple(pixels[y, x]) == dog, (x, y, pixels[y, x])
    assert abs(int(pixels[50, 100, 0]) - 90) <= 3  # inside the box: the picture (a JPEG's grey)
    assert abs(int(pixels[90, 20, 0]) - 90) <= 3  # outside it too
    assert tuple(pixels[y1 - 2, x1 + 1]) == dog  # the label's tag sits on the box, above it


def test_draw_for_a_classifier_is_refused(tmp_path):
    artifact = tmp_path / "dist" / "net.fp32.tflite"
    artifact.parent.mkdir()
    artifact.write_bytes(b"a classifier")
    inputs, _ = tflite_io((64, 64), LETTERBOX)
    write_record(artifact, "tflite", inputs, [{"name": "logits", "shape": [1, 3], "dtype": "float32", "layout": None}],
                 None)
    picture = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(picture)
    with pytest.raises(UsageError, match="not a detector") as info:
        predict(artifact, [picture], PredictOptions(draw=tmp_path / "drawn"))
    assert "--detector" in info.value.hint and not (tmp_path / "drawn").exists()


def test_output_flag_is_refused_for_a_detector(detector):
    artifact, picture, _ = detector
    with pytest.raises(UsageError, match="--output"):
        predict(artifact, [picture], PredictOptions(output="detection_scores"))


def test_command_line_prints_labels_scores_and_boxes(detector, tmp_path, monkeypatch, capsys):
    """The command's own function (typer's runner cannot take the console on a duplicate of stderr)."""
    import io

    from rich.console import Console

    from deploykit.cli.predict_cmd import predict as command

    artifact, picture, _ = detector
    text = io.StringIO()
    monkeypatch.setattr("deploykit.cli.output.terminal", lambda: Console(file=text, width=1000))
    args = dict(top_k=5, labels=None, output=None, trusted_key=None, dump_input=None)
    command(artifact, [picture], draw=tmp_path / "out", json_output=False, **args)
    shown = text.getvalue()
    assert f"(200x100): 1 detection, drawn to {tmp_path / 'out' / 'street.png'}" in shown
    assert "dog 0.900  (50.0, 20.0) - (150.0, 80.0)" in shown and "the picture's pixels" in shown
    command(artifact, [picture], draw=None, json_output=True, **args)
    (entry,) = json.loads(capsys.readouterr().out)["predictions"]
    assert entry["detections"] == [{"class": 1, "label": LABELS[1], "score": 0.9, "box": PICTURE_BOX}]
    assert entry["size"] == [200, 100] and "drawn" not in entry


def test_command_line_refuses_draw_for_a_classifier(tmp_path):
    from tests.cli.test_convert_cmd import run

    artifact = tmp_path / "net.fp32.tflite"
    artifact.write_bytes(b"a classifier")
    inputs, _ = tflite_io((64, 64), LETTERBOX)
    write_record(artifact, "tflite", inputs, [{"name": "logits", "shape": [1, 3], "dtype": "float32", "layout": None}],
                 None)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    refused = run("predict", artifact, tmp_path / "p.png", "--draw", tmp_path / "drawn")
    assert refused.returncode == 2 and "not a detector" in refused.stderr and "Traceback" not in refused.stderr


def _emitters_missing() -> bool:
    from deploykit.targets import get
    from deploykit.targets.base import Target

    return any(type(get(name)).attach_detector is Target.attach_detector for name in ("tflite", "coreml"))


# A head whose raw output is constant (ultralytics' [1, 4 + classes, candidates]): the boxes that must come out
# are known whatever the picture. Input 64 high, 96 wide; boxes x1 y1 x2 y2 in its pixels, 3 class scores.
HEAD = [((24, 8, 72, 40), (0.1, 0.9, 0.0)), ((0, 0, 10, 10), (0.0, 0.0, 0.1)), ((30, 20, 60, 50), (0.0, 0.0, 0.7))]
HEAD += [((0, 0, 4, 4), (0.0, 0.0, 0.0))] * 6


@pytest.mark.skipif(_emitters_missing(), reason="the TFLite and Core ML detector post-processes are not in yet")
def test_end_to_end_convert_predict_bundle(tmp_path):
    """convert --detector (both targets, letterbox), predict on each artifact and on each verified bundle: a
    300x150 picture letterboxed into 96x64 at scale 0.32 below 8 rows of padding, so the input's (24, 8, 72, 40)
    is the picture's (75, 0, 225, 100)."""
    import torch
    from PIL import Image

    from deploykit import convert
    from deploykit.bundle.builder import BundleOptions, bundle
    from deploykit.bundle.signing import generate_keypair, load_public_key, load_signing_key
    from deploykit.detection.options import DetectorOptions
    from deploykit.image_io.spec import ImageInputOptions
    from deploykit.labels.spec import ClassifierOptions

    table = torch.tensor(np.array([[(a + c) / 2, (b + d) / 2, c - a, d - b, *s] for (a, b, c, d), s in HEAD],
                                  np.float32).T[None])

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", table)

        def forward(self, x):
            return self.table + 0.0 * x.mean()

    source = tmp_path / "head.pt2"
    torch.export.save(torch.export.export(Head().eval(), (torch.rand(1, 3, 64, 96),)), str(source))
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    convert(source, to=("tflite", "coreml"), out=tmp_path / "dist", detector=DetectorOptions("yolov8"),
            image_inputs=ImageInputOptions(("x",), resize="letterbox", fill=114), classifier=ClassifierOptions(labels))
    picture = tmp_path / "wide.png"
    Image.fromarray(np.full((150, 300, 3), 90, np.uint8)).save(picture)
    expected = ({"class": 1, "label": "dog", "score": 0.9, "box": [75.0, 0.0, 225.0, 100.0]},
                {"class": 2, "label": "bird", "score": 0.7, "box": [93.75, 37.5, 187.5, 131.25]})
    artifacts = [tmp_path / "dist" / "head.fp32.tflite", tmp_path / "dist" / "head.fp32.mlpackage"]
    for artifact in artifacts:
        (result,) = predict(artifact, [picture], PredictOptions(draw=tmp_path / artifact.suffix[1:]))
        assert result.detections == expected, artifact.name
    private, public, _ = generate_keypair(tmp_path / "keys")
    built = bundle(artifacts, BundleOptions(name="com.example.detector", version="1.0.0", out=tmp_path / "bundles",
                                            sign_keys=(load_signing_key(private),)))
    for made in built:
        assert made.manifest["detector"]["labels"] == ["cat", "dog", "bird"]
        (result,) = predict(made.path, [picture], PredictOptions(trusted_keys=(load_public_key(public),)))
        assert result.detections == expected, made.manifest["platform"]
