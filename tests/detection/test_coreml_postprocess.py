"""The Core ML post-process (decode in the ML Program + Core ML's NonMaximumSuppression model, in a pipeline) and the
numpy evaluator that runs it.

The fast tests convert programs whose raw outputs *are* their inputs, so the boxes that must survive are written
down here (a yolov8 head, 3 classes, 6 candidates), and every preset's decode is checked against the numpy reference
on random heads; the evaluator's NonMaximumSuppression is checked against ``detection.nms`` on random candidates with
ties. The heavy test converts a corpus YOLOv8 with ``--detector`` as a user would and compares it with the reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploykit.core.errors import ConversionError
from deploykit.detection.coreml_postprocess import (
    CONFIDENCE_INPUT,
    IOU_INPUT,
    append_postprocess,
    class_labels,
    padded_classes,
)
from deploykit.detection.decode import Candidates, decode
from deploykit.detection.match import Tolerance, match
from deploykit.detection.nms import suppress
from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import COREML_OUTPUTS, read_detections
from deploykit.detection.presets import fit
from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner, evaluate
from deploykit.runners.coreml_eval.suppression import suppress as coreml_suppress

HEIGHT, WIDTH = 64, 96  # unequal, so that a swapped normalization shows
# x1 y1 x2 y2 in input pixels, class scores (3 classes)
CANDIDATES = [
    ((10, 10, 50, 40), (0.90, 0.05, 0.00)),  # A: kept
    ((12, 11, 52, 41), (0.80, 0.10, 0.00)),  # B: class 0 like A, IoU 0.85 with it: suppressed
    ((10, 10, 50, 40), (0.10, 0.70, 0.00)),  # C: A's box, class 1: kept unless class-agnostic
    ((60, 30, 90, 60), (0.00, 0.00, 0.30)),  # D: alone: kept
    ((70, 40, 80, 50), (0.20, 0.00, 0.00)),  # E: under the threshold
    ((40, 30, 70, 60), (0.05, 0.60, 0.00)),  # F: class 1, IoU 0.05 with C: kept
    ((0, 0, 6, 6), (0.00, 0.00, 0.00)),  # G, H: nothing (and more candidates than 4 + classes: the layout is plain)
    ((88, 56, 96, 64), (0.00, 0.01, 0.00)),
]
EXACT = Tolerance(0.999, 1e-5)


def _table(channels_first: bool = True) -> np.ndarray:
    """The yolov8 output: [1, 4 + classes, candidates] of centre x, centre y, width, height and scores."""
    rows = [[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *scores] for (x1, y1, x2, y2), scores in CANDIDATES]
    table = np.array(rows, np.float32)
    return (table.T if channels_first else table)[None]


def _identity_package(path, outputs: dict, *, fp16: bool = False, through_weights: bool = False, extra: bool = False):
    """An ML Program whose output ``name`` is its input ``x{i}`` (``outputs``: name -> shape), saved at ``path``.
    ``fp16``: fp16 inputs and outputs (iOS16); ``through_weights``: each output is its input times an identity weight
    matrix (a weight for the compression schemes to compress); ``extra``: one more output no head reads."""
    from deploykit.formats import coremltools_facade

    ct, mb, types = coremltools_facade.package(), coremltools_facade.mil_builder(), coremltools_facade.mil_types()
    dtype, scalar = (types.fp16, np.float16) if fp16 else (types.fp32, np.float32)
    specs = [mb.TensorSpec(shape=shape, dtype=dtype) for shape in outputs.values()]

    def body(*xs):
        made = []
        for x, (name, shape) in zip(xs, outputs.items()):
            if through_weights:
                made.append(mb.matmul(x=x, y=np.eye(shape[-1], dtype=scalar), name=name))
            else:
                made.append(mb.mul(x=x, y=scalar(1.0), name=name))
        if extra:
            made.append(mb.reduce_sum(x=xs[0], axes=[1], name="unread"))
        return tuple(made)

    arguments = ", ".join(f"x{i}" for i in range(len(outputs)))  # MIL names a program's inputs after its arguments
    scope = {"body": body}
    exec(f"def main({arguments}):\n    return body({arguments})", scope)  # noqa: S102  (a fixed template)
    program = mb.program(input_specs=specs, opset_version=ct.target.iOS16)(scope["main"])

    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32)
    model.save(str(path))
    return path


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def yolov8_head():
    return fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"output0": (1, 7, len(CANDIDATES))})


@pytest.fixture(scope="module")
def yolov8_raw(tmp_path_factory):
    return _identity_package(tmp_path_factory.mktemp("raw") / "head.mlpackage", {"output0": (1, 7, len(CANDIDATES))})


def _detector(tmp_path, raw, head, options, labels=None, name="det.mlpackage"):
    path = _copy(raw, tmp_path / name)
    description = append_postprocess(path, head, options, labels)
    return path, description


# -- the kept boxes ----------------------------------------------------------------------------------------
def test_the_kept_boxes_are_the_references_and_vision_reads_them(tmp_path, yolov8_raw, yolov8_head):
    from deploykit.formats.coreml.spec import load_spec

    options = DetectorOptions("yolov8", max_detections=5)
    path, description = _detector(tmp_path, yolov8_raw, yolov8_head, options, ("cat", "dog", "bird"))
    assert "NonMaximumSuppression" in description and "padded with zeros to 80" in description
    outputs = evaluate(path, {"x0": _table()})
    assert list(outputs) == list(COREML_OUTPUTS)
    confidence, coordinates = outputs["confidence"], outputs["coordinates"]
    assert confidence.shape == (4, 80) and coordinates.shape == (4, 4) and confidence.dtype == np.float32
    assert confidence.argmax(1).tolist() == [0, 1, 1, 2]  # A, C, F, D: by confidence
    np.testing.assert_allclose(confidence.max(1), [0.9, 0.7, 0.6, 0.3], atol=1e-6)
    assert not confidence[:, 3:].any()  # the padded class columns
    np.testing.assert_allclose(coordinates, [  # centre x, centre y, width, height, normalized
        [30 / WIDTH, 25 / HEIGHT, 40 / WIDTH, 30 / HEIGHT], [30 / WIDTH, 25 / HEIGHT, 40 / WIDTH, 30 / HEIGHT],
        [55 / WIDTH, 45 / HEIGHT, 30 / WIDTH, 30 / HEIGHT], [75 / WIDTH, 45 / HEIGHT, 30 / WIDTH, 30 / HEIGHT]],
        atol=1e-6)
    candidates = decode(yolov8_head, {"output0": _table()})
    result = match(suppress(candidates, options), read_detections(outputs, (HEIGHT, WIDTH)), candidates, options, EXACT)
    assert result.passed and result.matched == 4 and not result.missing and not result.extra

    spec = load_spec(path)
    assert spec.WhichOneof("Type") == "pipeline"
    program, nms = spec.pipeline.models
    assert program.WhichOneof("Type") == "mlProgram" and nms.WhichOneof("Type") == "nonMaximumSuppression"
    assert list(nms.nonMaximumSuppression.stringClassLabels.vector[:4]) == ["cat", "dog", "bird", "_padding_3"]
    assert nms.nonMaximumSuppression.pickTop.perClass
    assert [(f.name, f.type.isOptional) for f in spec.description.input] == [
        ("x0", False), (IOU_INPUT, True), (CONFIDENCE_INPUT, True)]
    rows = spec.description.output[0].type.multiArrayType.shapeRange.sizeRanges[0]
    assert (rows.lowerBound, rows.upperBound) == (0, 5)
    user = spec.description.metadata.userDefined
    assert user["com.apple.coreml.model.preview.type"] == "objectDetector"
    assert json.loads(user["com.deploykit.detector"])["class_columns"] == 80


def test_class_agnostic_a_cap_and_the_optional_threshold_inputs(tmp_path, yolov8_raw, yolov8_head):
    options = DetectorOptions("yolov8", class_agnostic=True, max_detections=2)
    path, _ = _detector(tmp_path, yolov8_raw, yolov8_head, options)
    found = evaluate(path, {"x0": _table()})["confidence"]
    assert found.argmax(1).tolist() == [0, 1]  # A, then F: C is A's box (any class); the cap stops at 2
    with CoreMLEvaluatorRunner(path) as runner:
        assert runner.input_names == ["x0"]  # what a caller must feed; the thresholds are optional
        assert [s.name for s in runner.optional_specs] == [IOU_INPUT, CONFIDENCE_INPUT]
        loose = runner.infer({"x0": _table(), IOU_INPUT: 0.9, CONFIDENCE_INPUT: 0.15})["confidence"]
    np.testing.assert_allclose(loose.max(1), [0.9, 0.8], atol=1e-6)  # B survives IoU 0.85 < 0.9; still capped


def test_a_transposed_head_and_an_unread_output_dropped(tmp_path, yolov8_head):
    from deploykit.formats.coreml.spec import load_spec, op_histogram

    head = fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"output0": (1, len(CANDIDATES), 7)})
    raw = _identity_package(tmp_path / "raw.mlpackage", {"output0": (1, len(CANDIDATES), 7)}, extra=True)
    assert "reduce_sum" in op_histogram(load_spec(raw))
    path, _ = _detector(tmp_path, raw, head, DetectorOptions("yolov8"))
    ops = op_histogram(load_spec(path))
    assert "reduce_sum" not in ops and ops["nonMaximumSuppression"] == 1
    found = read_detections(evaluate(path, {"x0": _table(channels_first=False)}), (HEIGHT, WIDTH))
    assert found.classes.tolist() == [0, 1, 1, 2]


def test_renamed_outputs_fp16_programs_and_compressed_weights(tmp_path):
    """A source output named ``out.0`` is ``out_0`` in the package (core.names); fp16 raw outputs are cast to float32
    (Core ML's NMS takes float32 or double); constexpr weights pass through. Each pipeline agrees with the reference
    run on its own raw program's outputs."""
    from deploykit.formats import coremltools_facade

    head = fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"out.0": (1, 7, 10)})
    more = np.array([[20, 20, 8, 8, 0.5, 0.1, 0.2], [80, 10, 8, 8, 0.05, 0.4, 0.1]], np.float32)  # two lone boxes
    table = np.concatenate([_table(), more.T[None]], axis=2)
    fp16 = _identity_package(tmp_path / "fp16.mlpackage", {"out_0": (1, 7, 10)}, fp16=True)
    dense = _identity_package(tmp_path / "dense.mlpackage", {"out_0": (1, 7, 10)}, through_weights=True)
    optimize = coremltools_facade.optimize()
    config = optimize.OptimizationConfig(global_config=optimize.OpLinearQuantizerConfig(weight_threshold=1))
    compressed = optimize.linear_quantize_weights(coremltools_facade.load_mlmodel(dense), config)
    compressed.save(str(tmp_path / "int8.mlpackage"))
    options = DetectorOptions("yolov8", score_threshold=0.15)
    for raw in (fp16, tmp_path / "int8.mlpackage"):
        path, _ = _detector(tmp_path, raw, head, options, name=f"{raw.stem}-det.mlpackage")
        raw_outputs = evaluate(raw, {"x0": table})
        candidates = decode(head, {"out.0": raw_outputs["out_0"]})
        result = match(suppress(candidates, options), read_detections(evaluate(path, {"x0": table}), (HEIGHT, WIDTH)),
                       candidates, options, EXACT)
        assert result.passed and not result.missing and not result.extra, result.to_json()
        assert result.matched == 7  # A, C, F, the two lone boxes, D, E (0.2: above 0.15)


# -- every preset's decode, on random heads ---------------------------------------------------------------
def _random_heads(rng):
    """(preset options, source outputs name -> shape, feeds builder) for each preset on a small input."""
    yolox = ("yolox", {}, {"output": (1, 16 * 12 + 8 * 6 + 4 * 3, 6)}, (128, 96))
    picodet_shapes = {f"s{i}": (1, n, 3) for i, n in enumerate((16 * 12, 8 * 6, 4 * 3, 2 * 2))}
    picodet_shapes.update({f"b{i}": (1, n, 32) for i, n in enumerate((16 * 12, 8 * 6, 4 * 3, 2 * 2))})
    picodet = ("picodet", {}, picodet_shapes, (128, 96))
    heads = [yolox, picodet]
    for box_format, normalized in (("xyxy", False), ("yxyx", True), ("xywh", False), ("cxcywh", True)):
        heads.append(("boxes-scores", {"boxes_output": "boxes", "scores_output": "scores", "box_format": box_format,
                                       "normalized": normalized}, {"boxes": (1, 40, 4), "scores": (1, 40, 4)},
                      (48, 80)))
    heads.append(("ssd", {}, {"raw_boxes": (1, 40, 4), "raw_scores": (1, 40, 2)}, (48, 80)))
    return heads


def _random_value(rng, preset, name, shape, size, options):
    height, width = size
    if preset == "yolox":
        value = rng.normal(0, 0.5, shape)
        value[..., 4:] = rng.uniform(0, 1, shape[:-1] + (shape[-1] - 4,))
        return value
    if preset == "picodet":
        return rng.normal(0, 2, shape) if name.startswith("b") else rng.uniform(0, 0.6, shape)
    if "scores" in name:
        return rng.uniform(0, 0.7, shape)
    corner = rng.uniform(0.05, 0.6, shape[:-1] + (2,))
    extent = rng.uniform(0.1, 0.35, shape[:-1] + (2,))
    fmt = options.box_format if preset == "boxes-scores" else "yxyx"
    if fmt in ("xyxy", "yxyx"):
        value = np.concatenate([corner, corner + extent], -1)
    elif fmt == "xywh":
        value = np.concatenate([corner, extent], -1)
    else:
        value = np.concatenate([corner + extent / 2, extent], -1)
    normalized = options.normalized if preset == "boxes-scores" else True
    if not normalized:
        scale = np.array([width, height], np.float64) if fmt != "yxyx" else np.array([height, width], np.float64)
        value = value * np.tile(scale, 2)
    return value


def test_every_preset_decodes_as_the_reference(tmp_path):
    rng = np.random.default_rng(0)
    for index, (preset, extra, shapes, size) in enumerate(_random_heads(rng)):
        options = DetectorOptions(preset, iou=0.5, score_threshold=0.3, **extra)
        head = fit(options, size, shapes)
        raw = _identity_package(tmp_path / f"raw{index}.mlpackage", shapes)
        path, _ = _detector(tmp_path, raw, head, options, name=f"det{index}.mlpackage")
        for sample in range(3):
            values = {name: _random_value(rng, preset, name, shape, size, options).astype(np.float32)
                      for name, shape in shapes.items()}
            candidates = decode(head, values)
            reference = suppress(candidates, options)
            feeds = {f"x{i}": values[name] for i, name in enumerate(shapes)}
            found = read_detections(evaluate(path, feeds), size)
            result = match(reference, found, candidates, options, EXACT)
            assert result.passed and not result.missing and not result.extra, (preset, extra, result.to_json())
            assert len(reference) > 0, (preset, extra)


# -- the evaluator's NonMaximumSuppression against the numpy reference -------------------------------------
def _as_centres(boxes: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = boxes.T
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_the_evaluators_nms_is_the_references_on_random_candidates_with_ties(class_agnostic):
    rng = np.random.default_rng(1 if class_agnostic else 2)
    for trial in range(30):
        n, classes = int(rng.integers(1, 60)), int(rng.integers(1, 5))
        corners = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(4, 30, (n, 2))], 1)
        scores = np.round(rng.uniform(0, 1, (n, classes)), 1)  # coarse: equal scores across boxes and classes
        duplicate = rng.integers(0, n, max(n // 4, 1))
        boxes[duplicate[1:]] = boxes[duplicate[0]]  # identical boxes, some with identical scores
        scores[duplicate[2::2]] = scores[duplicate[0]]
        scores[scores == 0.3] = 0.35  # away from the threshold: Core ML keeps a score equal to it, the reference not
        options = DetectorOptions("yolov8", iou=float(rng.choice([0.3, 0.5, 0.7])), score_threshold=0.3,
                                  max_detections=int(rng.integers(1, 20)), class_agnostic=class_agnostic)
        reference = suppress(Candidates(boxes, scores), options)
        kept = coreml_suppress(scores, _as_centres(boxes), options.iou, options.score_threshold,
                               per_class=not class_agnostic, max_boxes=options.max_detections)
        np.testing.assert_allclose(boxes[kept], reference.boxes, err_msg=f"trial {trial}")
        assert scores[kept].argmax(1).tolist() == reference.classes.tolist()
        np.testing.assert_array_equal(scores[kept].max(1), reference.scores)


def test_the_documented_edges_of_core_mls_nms():
    """The threshold discards boxes *below* it; IoU suppresses *above* iouThreshold (1.0: nothing); ties keep input
    order; the best class of a row with equal scores is its first; an output bound pads zeros up to its minimum."""
    from deploykit.runners.coreml_eval.suppression import NonMaximumSuppression

    box = [10.0, 10.0, 4.0, 4.0]
    coordinates = np.array([box, box, [30, 30, 4, 4], box], np.float32)
    confidence = np.array([[0.5, 0.5], [0.5, 0.2], [0.25, 0.0], [0.2, 0.1]], np.float32)
    assert coreml_suppress(confidence, coordinates, 0.5, 0.25, per_class=True).tolist() == [0, 2]
    assert coreml_suppress(confidence, coordinates, 1.0, 0.25, per_class=True).tolist() == [0, 1, 2]
    assert coreml_suppress(confidence, coordinates, 1.0, 0.25, per_class=True, max_boxes=1).tolist() == [0]
    model = NonMaximumSuppression("c", "b", "confidence", "coordinates", 0.5, 0.25, True, ("a", "b"),
                                  iou_input="iou", min_boxes=4, max_boxes=6)
    out = model.run({"c": confidence, "b": coordinates, "iou": np.float64(1.0)})
    assert out["confidence"].shape == (4, 2) and not out["confidence"][3].any() and not out["coordinates"][3].any()


# -- the package around it ---------------------------------------------------------------------------------
def test_the_targets_hook_interface_inspection_and_a_reproducible_package(tmp_path, yolov8_raw, yolov8_head):
    from deploykit.core.hashing import sha256_path
    from deploykit.detection.record import detector_block
    from deploykit.targets import get

    coreml = get("coreml")
    options = DetectorOptions("yolov8", max_detections=7)
    made = []
    for index in range(2):
        path = _copy(yolov8_raw, tmp_path / f"a{index}.mlpackage")
        block = coreml.attach_detector(path, yolov8_head, options, ("cat", "dog", "bird"))
        made.append(sha256_path(path))
    assert made[0] == made[1]  # byte-reproducible
    assert block == detector_block(yolov8_head, options, ("cat", "dog", "bird"), "vision", block["postprocess"])
    assert block["outputs"] == {"confidence": "confidence", "coordinates": "coordinates"}
    inputs, outputs, ops = coreml.interface(path, None, None)
    assert [(t.name, t.shape) for t in inputs] == [("x0", (1, 7, len(CANDIDATES)))]
    assert [(t.name, t.shape, t.dtype) for t in outputs] == [("confidence", (None, 80), "float32"),
                                                             ("coordinates", (None, 4), "float32")]
    assert outputs[0].flexible == {"kind": "range", "bounds": [[0, 7], [80, 80]]}
    assert ops["nonMaximumSuppression"] == 1 and ops["pad"] == 1
    inspection = coreml.inspect(path)
    assert any("nonMaximumSuppression" in note for note in inspection.notes)
    assert coreml.latency(None, path)["ops"] > 0
    coreml.graph_check(path, None)
    with coreml.runner(path) as runner:
        assert runner.output_names == ["confidence", "coordinates"]
        assert runner.infer({"x0": _table()})["confidence"].shape == (4, 80)


def test_what_is_refused(tmp_path, yolov8_raw, yolov8_head):
    path, _ = _detector(tmp_path, yolov8_raw, yolov8_head, DetectorOptions("yolov8"))
    with pytest.raises(ConversionError, match="not an ML Program"):
        append_postprocess(path, yolov8_head, DetectorOptions("yolov8"), None)
    two = _identity_package(tmp_path / "two.mlpackage", {"output0": (1, 7, len(CANDIDATES))}, extra=True)
    other = fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"boxes": (1, 7, len(CANDIDATES))})
    with pytest.raises(ConversionError, match="no output for the source's 'boxes'"):
        _detector(tmp_path, two, other, DetectorOptions("yolov8"), name="other.mlpackage")
    wider = fit(DetectorOptions("yolov8"), (HEIGHT, WIDTH), {"output0": (1, 8, len(CANDIDATES))})
    with pytest.raises(ConversionError, match="head outputs are"):
        _detector(tmp_path, yolov8_raw, wider, DetectorOptions("yolov8"), name="wider.mlpackage")
    with pytest.raises(ConversionError, match="2 labels for a head of 3 classes"):
        class_labels(3, ("cat", "dog"))

    from deploykit.formats.coreml.metadata import read_spec, spec_path

    for name, edit, why in (("flexible", _flexible_input, "takes several sizes"),
                            ("classifier", _classifier_description, "is a Core ML classifier")):
        path = _copy(yolov8_raw, tmp_path / f"{name}.mlpackage")
        spec = read_spec(path)
        edit(spec.description)
        spec_path(path).write_bytes(spec.SerializeToString())
        with pytest.raises(ConversionError, match=why):
            append_postprocess(path, yolov8_head, DetectorOptions("yolov8"), None)


def _flexible_input(description) -> None:
    for low, high in ((1, 1), (7, 7), (8, 16)):
        size = description.input[0].type.multiArrayType.shapeRange.sizeRanges.add()
        size.lowerBound, size.upperBound = low, high


def _classifier_description(description) -> None:
    description.predictedFeatureName = "classLabel"


def test_class_columns_and_their_labels():
    assert [padded_classes(c) for c in (1, 18, 80, 81)] == [80, 80, 80, 160]
    labels = class_labels(2, ("_padding_2", "b"))
    assert len(labels) == 80 and len(set(labels)) == 80 and labels[:3] == ["_padding_2", "b", "__padding_2"]
    assert class_labels(2, None)[:3] == ["0", "1", "_padding_2"]


@pytest.mark.heavy
def test_a_corpus_yolov8_converted_with_detector_matches_the_reference(tmp_path):
    """nudenet-320n (ultralytics YOLOv8n, 18 classes, 320x320): ``deploykit convert --detector yolov8 --labels``
    as a user would (fp32 and fp16, box-level parity in the run), then every detection of the numpy reference on
    onnxruntime's raw outputs found in the fp32 pipeline with IoU >= 0.999 and scores within 1e-4."""
    import onnxruntime as ort

    import deploykit
    from bench.corpus.build import DEFAULT_OUT, build_entry
    from bench.corpus.sources import ENTRIES
    from deploykit.labels.spec import ClassifierOptions

    folder = build_entry(next(e for e in ENTRIES if e.name == "nudenet-320n"), DEFAULT_OUT)
    images = np.load(folder / "data.npz")["images"]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"part {i}" for i in range(18)) + "\n")
    options = DetectorOptions("yolov8", score_threshold=0.05)  # the pictures' scores peak near 0.16
    report = deploykit.convert(folder / "model.onnx", to="coreml", out=tmp_path / "out", quantize="fp16",
                               inputs=["images=1x3x320x320"], detector=options,
                               classifier=ClassifierOptions(labels=labels))
    assert not report.failures, report.failures
    fp32 = next(a for a in report.artifacts if a.variant == "fp32")
    assert fp32.detector["labels"][0] == "part 0" and fp32.classifier is None
    assert [o.name for o in fp32.outputs] == list(COREML_OUTPUTS)
    for artifact in report.artifacts:
        assert artifact.parity["passed"], artifact.parity
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    head = fit(options, (320, 320), {"output0": (1, 22, 2100)})
    matched = 0
    with CoreMLEvaluatorRunner(tmp_path / "out" / fp32.path) as runner:
        for x in images:
            raw = {"output0": session.run(None, {"images": x[None]})[0]}
            candidates = decode(head, raw)
            found = read_detections(runner.infer({"images": x[None]}), (320, 320))
            result = match(suppress(candidates, options), found, candidates, options, Tolerance(0.999, 1e-4))
            assert result.passed and not result.missing and not result.extra, result.to_json()
            matched += result.matched
    assert matched >= 10
