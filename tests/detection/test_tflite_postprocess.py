"""The TFLite post-process (decode + NMS appended to the artifact) on heads whose candidates are known.

The fast tests convert a model whose raw output *is* its input (a yolov8 head, 3 classes, 6 candidates), so the
boxes that must survive are written down here; the heavy one appends the post-process to a real PicoDet and
compares it with the numpy reference on the corpus's pictures.
"""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import UsageError
from deploykit.detection.decode import decode
from deploykit.detection.nms import suppress
from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import TFLITE_OUTPUTS, read_detections
from deploykit.detection.presets import fit

HEIGHT, WIDTH = 64, 96  # unequal, so that a swapped normalization shows
# x1 y1 x2 y2 in input pixels, class scores (3 classes)
CANDIDATES = [
    ((10, 10, 50, 40), (0.90, 0.05, 0.00)),  # A: kept
    ((12, 11, 52, 41), (0.80, 0.10, 0.00)),  # B: class 0 like A, IoU 0.85 with it: suppressed
    ((10, 10, 50, 40), (0.10, 0.70, 0.00)),  # C: A's box, class 1: kept unless class-agnostic
    ((60, 30, 90, 60), (0.00, 0.00, 0.30)),  # D: alone: kept
    ((70, 40, 80, 50), (0.20, 0.00, 0.00)),  # E: under the threshold
    ((40, 30, 70, 60), (0.05, 0.60, 0.00)),  # F: class 1, IoU 0.05 with C: kept
    ((0, 0, 8, 8), (0.00, 0.00, 0.00)),  # G, H: no score (more candidates than rows, as real heads have)
    ((0, 0, 8, 8), (0.00, 0.00, 0.00)),
]
SHAPE = (1, 4 + 3, len(CANDIDATES))  # ultralytics' layout: [1, 4 + classes, candidates]


def _table(channels_first: bool = True) -> np.ndarray:
    """The yolov8 output: [1, 4 + classes, candidates] of centre x, centre y, width, height and scores."""
    rows = []
    for (x1, y1, x2, y2), scores in CANDIDATES:
        rows.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *scores])
    table = np.array(rows, np.float32)  # [N, 4 + C]
    return (table.T if channels_first else table)[None]


def _identity_tflite(path, shape, transposed: bool = False, extra: bool = False):
    """A .tflite whose output ``output0`` is its input ``x`` (transposed when asked), with a signature naming them
    as the TFLite paths name them; ``extra``: a second output, the sum of ``x``, that no head reads."""
    import tensorflow as tf

    from deploykit.formats.tflite.flatbuffer import set_signature

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def model(x):
        y = x * 1.0 + 0.0
        y = tf.transpose(y, (0, 2, 1)) if transposed else y
        return (y, tf.reduce_sum(x * 3.0, axis=1)) if extra else y

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()])
    names = ["output0" if not transposed else "Identity"] + (["extra"] if extra else [])
    path.write_bytes(set_signature(converter.convert(), ["x"], names))
    return path


def _ops(path) -> list[str]:
    from deploykit.formats.litert_facade import interpreter

    return sorted({op["op_name"] for op in interpreter(path, delegates=False)._get_ops_details()})


def _run(path, table: np.ndarray) -> dict:
    from deploykit.formats.litert_facade import interpreter

    runner = interpreter(path).get_signature_runner()
    return runner(x=table)


@pytest.fixture(scope="module")
def yolov8_head():
    head = fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"output0": SHAPE})
    assert head.channels_first and head.classes == 3
    return head


def _expected(head, options) -> tuple:
    reference = suppress(decode(head, {"output0": _table(head.channels_first)}), options)
    return reference


def test_the_kept_boxes_are_the_references_and_the_outputs_are_the_four(tmp_path, yolov8_head):
    from deploykit.detection.tflite_postprocess import append_postprocess
    from deploykit.formats.litert_facade import interpreter

    path = _identity_tflite(tmp_path / "head.tflite", SHAPE)
    options = DetectorOptions("yolov8", max_detections=5)
    description = append_postprocess(path, yolov8_head, options)
    assert "NON_MAX_SUPPRESSION_V5" in description and "transposed" not in description

    runner = interpreter(path).get_signature_runner()
    assert list(runner.get_output_details()) == list(TFLITE_OUTPUTS)
    assert [list(d["shape"]) for d in runner.get_output_details().values()] == [[1, 5, 4], [1, 5], [1, 5], [1]]
    outputs = runner(x=_table())
    assert outputs["num_detections"].tolist() == [4.0]
    assert outputs["detection_classes"][0].tolist() == [0, 1, 1, 2, 0]  # A, C, F, D, padding
    np.testing.assert_allclose(outputs["detection_scores"][0], [0.9, 0.7, 0.6, 0.3, 0], atol=1e-6)
    np.testing.assert_allclose(outputs["detection_boxes"][0], [  # ymin xmin ymax xmax, normalized
        [10 / HEIGHT, 10 / WIDTH, 40 / HEIGHT, 50 / WIDTH], [10 / HEIGHT, 10 / WIDTH, 40 / HEIGHT, 50 / WIDTH],
        [30 / HEIGHT, 40 / WIDTH, 60 / HEIGHT, 70 / WIDTH], [30 / HEIGHT, 60 / WIDTH, 60 / HEIGHT, 90 / WIDTH],
        [0, 0, 0, 0]], atol=1e-6)
    reference = _expected(yolov8_head, options)
    found = read_detections(outputs, (HEIGHT, WIDTH))
    assert found.classes.tolist() == reference.classes.tolist()
    np.testing.assert_allclose(found.boxes, reference.boxes, atol=1e-4)
    np.testing.assert_allclose(found.scores, reference.scores, atol=1e-6)


def test_class_agnostic_suppression_and_a_transposed_output(tmp_path, yolov8_head):
    """onnx2tf may write a 3-D output channels-last under another name: found by its shape, transposed back."""
    from deploykit.detection.tflite_postprocess import append_postprocess
    from deploykit.formats.tflite.metadata import TfliteMetadata, embed
    from deploykit.formats.tflite.metadata_read import read_metadata

    path = _identity_tflite(tmp_path / "head.tflite", SHAPE, transposed=True)
    described = TfliteMetadata(name="head", version="1", description="", author="", license="", labels=("a", "b", "c"),
                               inputs=({"name": "x", "shape": list(SHAPE)},), outputs=({"name": "Identity"},), extra={})
    path.write_bytes(embed(path.read_bytes(), described))  # what ``finish`` leaves: labels on the raw output
    options = DetectorOptions("yolov8", class_agnostic=True, score_threshold=0.5, max_detections=3)
    assert "output0 transposed" in append_postprocess(path, yolov8_head, options)
    outputs = _run(path, _table())
    assert outputs["num_detections"].tolist() == [2.0]  # A, F: C is A's box (any class), D under 0.5
    assert outputs["detection_classes"][0].tolist() == [0, 1, 0]
    np.testing.assert_allclose(outputs["detection_scores"][0], [0.9, 0.6, 0], atol=1e-6)
    # the descriptions of the raw output are gone (stale), the converter's own entries stay
    assert read_metadata(path.read_bytes())["entries"] == ["CONVERSION_METADATA", "min_runtime_version"]


def test_an_output_the_head_does_not_read_is_dropped_with_its_ops(tmp_path, yolov8_head):
    from deploykit.detection.tflite_postprocess import append_postprocess

    path = _identity_tflite(tmp_path / "head.tflite", SHAPE, extra=True)
    assert "SUM" in _ops(path)
    append_postprocess(path, yolov8_head, DetectorOptions("yolov8"))
    assert "SUM" not in _ops(path) and "NON_MAX_SUPPRESSION_V5" in _ops(path)
    outputs = _run(path, _table())
    assert list(outputs) == list(TFLITE_OUTPUTS) and outputs["num_detections"].tolist() == [4.0]
    with pytest.raises(UsageError, match="detections already"):
        append_postprocess(path, yolov8_head, DetectorOptions("yolov8"))


@pytest.mark.parametrize("iou", [0.45, 1.0])
def test_boxes_scores_and_boxes_without_area(tmp_path, iou):
    """Two outputs (boxes x1 y1 x2 y2 in pixels, scores). A box without area (inverted, or a point) overlaps nothing
    in the reference and is kept once; LiteRT's kernel alone measures an inverted box corner to corner, and keeps
    a box of no area again and again up to max_detections. At --iou 1 nothing is suppressed."""
    import tensorflow as tf

    from deploykit.detection.tflite_postprocess import append_postprocess
    from deploykit.formats.tflite.flatbuffer import set_signature

    table = np.array([[10, 10, 50, 40, 0.9, 0.0],  # P: kept
                      [50, 40, 10, 10, 0.8, 0.0],  # Q: P's corners swapped, no area: kept
                      [12, 11, 52, 41, 0.7, 0.0],  # R: IoU 0.85 with P: suppressed (at --iou 1 kept)
                      [20, 20, 20, 20, 0.0, 0.6],  # T: a point: kept, once
                      [60, 30, 90, 60, 0.0, 0.5]], np.float32)[None]  # S: kept

    @tf.function(input_signature=[tf.TensorSpec(table.shape, tf.float32)])
    def model(x):
        return x[:, :, :4] * 1.0, x[:, :, 4:] * 1.0

    path = tmp_path / "boxes.tflite"
    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()])
    path.write_bytes(set_signature(converter.convert(), ["x"], ["boxes", "scores"]))
    options = DetectorOptions("boxes-scores", boxes_output="boxes", scores_output="scores", box_format="xyxy", iou=iou)
    head = fit(options, (HEIGHT, WIDTH), {"boxes": (1, 5, 4), "scores": (1, 5, 2)})
    append_postprocess(path, head, options)
    found = read_detections(_run(path, table), (HEIGHT, WIDTH))
    reference = suppress(decode(head, {"boxes": table[..., :4], "scores": table[..., 4:]}), options)
    assert found.classes.tolist() == reference.classes.tolist() == ([0, 0, 0, 1, 1] if iou == 1 else [0, 0, 1, 1])
    np.testing.assert_allclose(found.boxes, reference.boxes, atol=1e-4)
    np.testing.assert_allclose(found.boxes[1], [50, 40, 10, 10], atol=1e-4)  # written back as the model wrote it


def test_labels_go_on_the_class_ids(tmp_path, yolov8_head):
    from deploykit.formats.tflite.metadata_read import associated_files, read_metadata
    from deploykit.targets import get

    path = _identity_tflite(tmp_path / "head.tflite", SHAPE)
    block = get("tflite").attach_detector(path, yolov8_head, DetectorOptions("yolov8"), ("cat", "dog", "bird"))
    assert block["outputs"] == dict(zip(("boxes", "classes", "scores", "count"), TFLITE_OUTPUTS))
    assert "NON_MAX_SUPPRESSION_V5" in block["postprocess"] and block["labels"] == ["cat", "dog", "bird"]
    data = path.read_bytes()
    assert associated_files(data)["labels.txt"].decode().split() == ["cat", "dog", "bird"]
    outputs = {o["name"]: o for o in read_metadata(data)["model_metadata"]["outputs"]}
    assert list(outputs) == list(TFLITE_OUTPUTS)
    assert outputs["detection_classes"]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_VALUE_LABELS"}]
    assert outputs["detection_boxes"]["content"] == "bounding_box"
    assert _run(path, _table())["num_detections"].tolist() == [4.0]  # still runs with the metadata


def test_an_integer_output_is_refused(tmp_path, yolov8_head):
    from deploykit.detection.tflite_postprocess import append_postprocess
    from deploykit.formats.tflite.flatbuffer import read_model, write_model

    path = _identity_tflite(tmp_path / "head.tflite", SHAPE)
    model = read_model(path.read_bytes())
    graph = model.subgraphs[0]
    graph.tensors[graph.outputs[0]].type = 9  # INT8, as an --int8-io variant writes it
    path.write_bytes(write_model(model))
    with pytest.raises(UsageError, match="int8-io"):
        append_postprocess(path, yolov8_head, DetectorOptions("yolov8"))


@pytest.mark.heavy
def test_picodet_matches_the_reference_on_the_corpus_pictures(tmp_path):
    """layout-cdla (PicoDet, 8 raw outputs, 800x608): converted as a user would, the post-process appended, every
    detection of the numpy reference on the source's raw outputs found with IoU >= 0.999 and scores within 1e-4."""
    import onnxruntime as ort

    import deploykit
    from bench.corpus.build import DEFAULT_OUT, build_entry
    from bench.corpus.sources import ENTRIES
    from deploykit.detection.match import Tolerance, match
    from deploykit.detection.tflite_postprocess import append_postprocess
    from deploykit.formats.litert_facade import interpreter

    folder = build_entry(next(e for e in ENTRIES if e.name == "layout-cdla"), DEFAULT_OUT)
    images = np.load(folder / "data.npz")["image"][:4]
    report = deploykit.convert(folder / "model.onnx", to="tflite", out=tmp_path / "out", verify=False)
    path = tmp_path / "out" / report.artifacts[0].path
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    raws = [dict(zip(names, session.run(None, {"image": x[None]}))) for x in images]
    options = DetectorOptions("picodet", score_threshold=0.3, iou=0.5)
    head = fit(options, (800, 608), {name: value.shape for name, value in raws[0].items()})
    assert "NON_MAX_SUPPRESSION_V5" in append_postprocess(path, head, options)
    runner = interpreter(path).get_signature_runner()
    (name, detail), = runner.get_input_details().items()
    matched = 0
    for x, raw in zip(images, raws):
        candidates = decode(head, raw)
        reference = suppress(candidates, options)
        feed = x[None] if tuple(detail["shape"]) == x[None].shape else x.transpose(1, 2, 0)[None]
        found = read_detections(runner(**{name: feed}), (800, 608))
        result = match(reference, found, candidates, options, Tolerance(0.999, 1e-4))
        assert result.passed and not result.missing and not result.extra, result.to_json()
        matched += result.matched
    assert matched >= 10  # the pictures hold text blocks, titles, figures
