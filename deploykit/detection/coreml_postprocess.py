"""Core ML detectors as Vision reads them: the head's decode appended to the ML Program, then Core ML's own
NonMaximumSuppression model, the two in one pipeline (the shape of Apple's object detectors, Create ML's and
ultralytics' ``nms=True`` exports)::

    ML Program   image -> raw head outputs -> decode (MIL ops)  -> raw_confidence [N, K], raw_coordinates [N, 4]
    NonMaximumSuppression (+ optional inputs iouThreshold, confidenceThreshold: Double)
                                                               -> confidence [M, K], coordinates [M, 4]

Vision turns ``confidence`` and ``coordinates`` into ``VNRecognizedObjectObservation``s labelled with the NMS
model's ``stringClassLabels``. ``coordinates`` rows are centre x, centre y, width, height as fractions of the model
input (origin at its top left, as the reference's pixels); ``confidence`` rows are the candidates' class scores.

Decisions, and why:
- The decode runs in float32 whatever the program's precision (fp16 raw outputs are cast first): Core ML's NMS
  takes MultiArray<FLOAT32> or <DOUBLE> only (its validator), and the decode is a few element-wise ops on
  N x (4 + C) values, nothing next to the network.
- The class columns are padded with zeros to a multiple of 80 (K = 80 for 1..80 classes), with placeholder labels.
  ultralytics found Core ML's NMS in an ML Program pipeline returning wrong or no boxes on iOS when the class
  count was not a multiple of 80, and this padding is the fix they shipped (ultralytics issue 22309, PR 22310,
  8.3.207); the cause is not documented. A padded column is 0, so it is never a box's best class unless every
  score of the box is 0 (which no threshold above 0 keeps).
- ``--max-detections`` is the upper bound of the outputs' first dimension (a ``shapeRange`` of [0, max]):
  NonMaximumSuppression.proto documents that an output shape range limits the number of boxes ("One reason to
  specify shape is to limit the number of output boxes ... Min/max"), the highest-confidence boxes first. The lower
  bound 0 means no zero-padded rows: the outputs hold exactly the kept boxes.
- ``--score-threshold`` is the NMS model's ``confidenceThreshold`` and ``--iou`` its ``iouThreshold``; both can be
  overridden at run time through the optional inputs Vision fills (``VNCoreMLModel.featureProvider``). Core ML
  discards boxes *below* the confidence threshold (a score equal to it is kept, the reference keeps scores above
  it: the two differ only on exact equality).
- ``pickTop.perClass`` is ``not --class-agnostic``: a box suppresses only boxes of its own best class.
- Without labels the classes are named by their index ("0", "1", ...): Vision needs labels to make recognized
  objects. A detector's labels are never also a Core ML classifier (the pipeline gives ``--labels`` to the
  detector only); a program that already ends in a classifier is refused here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError
from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import COREML_OUTPUTS
from deploykit.detection.presets import Head

RAW_CONFIDENCE, RAW_COORDINATES = "raw_confidence", "raw_coordinates"
IOU_INPUT, CONFIDENCE_INPUT = "iouThreshold", "confidenceThreshold"
CLASS_MULTIPLE = 80  # ultralytics#22309: Core ML's NMS after an ML Program misreads other class counts on iOS
PADDING_LABEL = "_padding_{}"  # the placeholder label of padded class column {index}
PREVIEW = {"com.apple.coreml.model.preview.type": "objectDetector"}  # Xcode's preview tab for detectors
_ARRAY_FLOAT32 = 65568  # ArrayFeatureType.FLOAT32


def padded_classes(classes: int) -> int:
    return -(-classes // CLASS_MULTIPLE) * CLASS_MULTIPLE


def class_labels(classes: int, labels) -> list[str]:
    """The NMS model's labels: the given ones (or the class indices), then one placeholder per padded column."""
    named = [str(label) for label in labels] if labels else [str(c) for c in range(classes)]
    if len(named) != classes:
        raise ConversionError(f"{len(named)} labels for a head of {classes} classes")
    taken = set(named)
    for index in range(classes, padded_classes(classes)):
        label = PADDING_LABEL.format(index)
        while label in taken:
            label = "_" + label
        taken.add(label)
        named.append(label)
    return named


def append_postprocess(path: Path, head: Head, options: DetectorOptions, labels) -> str:
    """Rewrite the ML Program package at ``path`` (any precision or weight compression) in place into the detector
    pipeline; returns how it computes the detections, for the record."""
    from deploykit.formats import coremltools_facade
    from deploykit.formats.coreml.spec import load_spec

    path = Path(path)
    spec = load_spec(path)
    _check_program(spec, path)
    raw = _raw_outputs(spec, head)
    columns = padded_classes(head.classes)
    names = class_labels(head.classes, labels)

    def edit(function):
        _append_decode(function, head, raw, columns)

    try:
        program = coremltools_facade.edit_program(path, edit, passes=("common::dead_code_elimination",))
    except ConversionError:
        raise
    except Exception as exc:  # coremltools raises its own types (ValueError, AssertionError...)
        raise ConversionError(f"coremltools could not append the {head.preset} decode: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    stage = program.get_spec()
    stage.description.ClearField("input")
    stage.description.input.extend(spec.description.input)  # image inputs, fp16 inputs: as the app feeds them
    pipeline = _pipeline(spec, stage, _nms_model(stage, options, names), options)
    staged = path.with_name(f".detector-{path.name}")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        coremltools_facade.save_spec(pipeline, staged, program.weights_dir)
    except Exception as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise ConversionError(f"coremltools could not save the detector pipeline: {str(exc).splitlines()[0][:300]}") from exc
    shutil.rmtree(path)
    staged.rename(path)
    padding = f", class columns padded with zeros to {columns}" if columns > head.classes else ""
    return (f"ML Program: the {head.preset} decode as MIL ops in float32 ({head.candidates} candidates x "
            f"{head.classes} classes{padding}); then Core ML's NonMaximumSuppression model (pickTop, "
            f"perClass={not options.class_agnostic}, iouThreshold {options.iou}, confidenceThreshold "
            f"{options.score_threshold}, at most {options.max_detections} boxes as the outputs' shape range; "
            f"optional inputs {IOU_INPUT} and {CONFIDENCE_INPUT} override the thresholds)")


# -- the package before ----------------------------------------------------------------------------------
def _check_program(spec, path: Path) -> None:
    from deploykit.formats.coreml.spec import accepted_shapes

    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ConversionError(f"{path} is a Core ML {kind}, not an ML Program: the detector post-process appends to "
                              "the converted program", hint="append it once, to the package the conversion wrote")
    if spec.description.predictedFeatureName or any(f.type.WhichOneof("Type") != "multiArrayType"
                                                    for f in spec.description.output):
        raise ConversionError(f"{path} is a Core ML classifier: a detector's labels belong to its NMS model",
                              hint="convert the detector with --labels and --detector together (no classifier)")
    for feature in spec.description.input:
        kind = feature.type.WhichOneof("Type")
        image = feature.type.imageType
        flexible = (kind == "multiArrayType" and accepted_shapes(feature.type.multiArrayType) is not None) or (
            kind == "imageType" and (len(image.enumeratedSizes.sizes) > 1 or any(
                r.lowerBound != r.upperBound for r in (image.imageSizeRange.widthRange, image.imageSizeRange.heightRange))))
        if flexible:
            raise ConversionError(f"Core ML input {feature.name!r} takes several sizes; the decode's grid is made for "
                                  "one input size", hint="convert the detector with one fixed input size")


def _raw_outputs(spec, head: Head) -> list[str]:
    """The program's output names for the source outputs ``head.outputs``: the same name, or its identifier-safe
    form (core.names: what the converters name a Core ML feature the source named otherwise)."""
    from deploykit.core.names import feature_name

    present = [f.name for f in spec.description.output]
    found = []
    for name in head.outputs:
        match = name if name in present else feature_name(name) if feature_name(name) in present else None
        if match is None and len(head.outputs) == len(present) == 1:
            match = present[0]
        if match is None:
            raise ConversionError(f"the Core ML program has no output for the source's {name!r} "
                                  f"(its outputs: {', '.join(present)})")
        found.append(match)
    return found


# -- the decode, as MIL ops ----------------------------------------------------------------------------------
def _append_decode(function, head: Head, raw: list[str], columns: int) -> None:
    from deploykit.formats import coremltools_facade

    mb = coremltools_facade.mil_builder()
    fp32 = coremltools_facade.mil_types().fp32
    by_name = {var.name: var for var in function.outputs}
    taken = {out.name for op in function.operations for out in op.outputs} | {v.name for v in function.inputs.values()}
    clash = sorted(taken & {RAW_CONFIDENCE, RAW_COORDINATES})
    if clash:
        raise ConversionError(f"the Core ML program already has a value named {clash[0]!r}")
    with function:
        found = []
        for index, name in enumerate(raw):
            var = by_name[name]
            found.append(var if var.dtype == fp32 else mb.cast(x=var, dtype="fp32", name=f"detector_raw{index}_fp32"))
        _check_shapes(head, found)
        scores, coordinates = DECODERS.get(head.preset, _boxes_scores)(mb, head, found)
        if columns > head.classes:
            scores = mb.pad(x=scores, pad=np.array([0, 0, 0, columns - head.classes], np.int32), mode="constant",
                            constant_val=np.float32(0.0), name="detector_padded_scores")
    _rename(scores, RAW_CONFIDENCE)
    _rename(coordinates, RAW_COORDINATES)
    function.set_outputs([scores, coordinates])


def _rename(var, name: str) -> None:
    var.name = name
    var.op.name = name


def _check_shapes(head: Head, found) -> None:
    classes, n = head.classes, head.candidates
    if head.preset == "yolov8":
        wanted = [(1, 4 + classes, n) if head.channels_first else (1, n, 4 + classes)]
    elif head.preset == "yolox":
        wanted = [(1, n, 5 + classes)]
    elif head.preset == "picodet":
        cells = [rows * cols for rows, cols in head.level_sizes()]
        wanted = [(1, c, classes) for c in cells] + [(1, c, 4 * (head.reg_max + 1)) for c in cells]
    else:
        wanted = [(1, n, 4), (1, n, classes)]
    got = [tuple(int(d) if isinstance(d, (int, np.integer)) else -1 for d in var.shape) for var in found]
    if got != wanted:
        raise ConversionError(f"the Core ML program's head outputs are {got}; the {head.preset} head fitted on the "
                              f"source expects {wanted}")


def _yolov8(mb, head: Head, found):
    height, width = head.input_size
    table = found[0]
    if head.channels_first:
        table = mb.transpose(x=table, perm=[0, 2, 1], name="detector_table")
    rows = mb.reshape(x=table, shape=[head.candidates, 4 + head.classes], name="detector_rows")
    boxes = mb.slice_by_index(x=rows, begin=[0, 0], end=[head.candidates, 4], name="detector_boxes_px")
    scores = mb.slice_by_index(x=rows, begin=[0, 4], end=[head.candidates, 4 + head.classes], name="detector_scores")
    scale = np.array([1 / width, 1 / height, 1 / width, 1 / height], np.float32)
    return scores, mb.mul(x=boxes, y=scale, name="detector_coordinates")


def _yolox(mb, head: Head, found):
    from deploykit.detection.decode import grid_cells

    height, width = head.input_size
    n, classes = head.candidates, head.classes
    cells, stride = grid_cells(head, offset=0.0)
    scale = (stride[:, None] / np.array([width, height], np.float64)).astype(np.float32)  # [N, 2]
    rows = mb.reshape(x=found[0], shape=[n, 5 + classes], name="detector_rows")
    offsets = mb.slice_by_index(x=rows, begin=[0, 0], end=[n, 2], name="detector_offsets")
    log_sizes = mb.slice_by_index(x=rows, begin=[0, 2], end=[n, 4], name="detector_log_sizes")
    objectness = mb.slice_by_index(x=rows, begin=[0, 4], end=[n, 5], name="detector_objectness")
    class_scores = mb.slice_by_index(x=rows, begin=[0, 5], end=[n, 5 + classes], name="detector_class_scores")
    centres = mb.add(x=mb.mul(x=offsets, y=scale, name="detector_scaled_offsets"),
                     y=(cells * scale).astype(np.float32), name="detector_centres")
    sizes = mb.mul(x=mb.exp(x=log_sizes, name="detector_sizes_cells"), y=scale, name="detector_sizes")
    coordinates = mb.concat(values=[centres, sizes], axis=1, name="detector_coordinates")
    return mb.mul(x=objectness, y=class_scores, name="detector_scores"), coordinates


def _picodet(mb, head: Head, found):
    from deploykit.detection.decode import grid_cells

    height, width = head.input_size
    n, classes, bins = head.candidates, head.classes, head.reg_max + 1
    levels = len(head.strides)
    centre, stride = grid_cells(head, offset=0.5)
    scores = mb.concat(values=found[:levels], axis=1, name="detector_level_scores")
    scores = mb.reshape(x=scores, shape=[n, classes], name="detector_scores")
    distances = mb.concat(values=found[levels:], axis=1, name="detector_level_distances")
    distances = mb.reshape(x=distances, shape=[n, 4, bins], name="detector_bins")
    weights = mb.softmax(x=distances, axis=-1, name="detector_bin_weights")
    expected = mb.reduce_sum(x=mb.mul(x=weights, y=np.arange(bins, dtype=np.float32), name="detector_weighted_bins"),
                             axes=[-1], keep_dims=False, name="detector_distances_cells")
    pixels = mb.mul(x=expected, y=stride[:, None].astype(np.float32), name="detector_distances")  # l, t, r, b
    # (l, t, r, b) -> (cx - x, cy - y, w, h) as fractions of the input: cx = x + (r - l) / 2, w = l + r
    to_box = np.array([[-0.5 / width, 0, 1 / width, 0], [0, -0.5 / height, 0, 1 / height],
                       [0.5 / width, 0, 1 / width, 0], [0, 0.5 / height, 0, 1 / height]], np.float32)
    shifts = mb.matmul(x=pixels, y=to_box, name="detector_box_shifts")
    anchors = np.zeros((n, 4), np.float64)
    anchors[:, 0], anchors[:, 1] = centre[:, 0] * stride / width, centre[:, 1] * stride / height
    return scores, mb.add(x=shifts, y=anchors.astype(np.float32), name="detector_coordinates")


# A box format's corners as (cx, cy, w, h): rows are the format's four values, columns centre x, centre y, w, h.
_TO_CENTRE = {
    "xyxy": [[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]],
    "yxyx": [[0, 0.5, 0, -1], [0.5, 0, -1, 0], [0, 0.5, 0, 1], [0.5, 0, 1, 0]],
    "xywh": [[1, 0, 0, 0], [0, 1, 0, 0], [0.5, 0, 1, 0], [0, 0.5, 0, 1]],
    "cxcywh": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
}


def _boxes_scores(mb, head: Head, found):
    height, width = head.input_size
    n = head.candidates
    matrix = np.array(_TO_CENTRE[head.box_format], np.float64)
    if not head.normalized:
        matrix = matrix / np.array([width, height, width, height], np.float64)
    boxes = mb.reshape(x=found[0], shape=[n, 4], name="detector_boxes")
    scores = mb.reshape(x=found[1], shape=[n, head.classes], name="detector_scores")
    return scores, mb.matmul(x=boxes, y=matrix.astype(np.float32), name="detector_coordinates")


DECODERS = {"yolov8": _yolov8, "yolox": _yolox, "picodet": _picodet}


# -- the NMS model and the pipeline --------------------------------------------------------------------------
def _nms_model(stage, options: DetectorOptions, labels: list[str]):
    from deploykit.formats.coremltools_facade import model_pb2

    spec = model_pb2().Model()
    spec.specificationVersion = stage.specificationVersion
    raw = {f.name: f for f in stage.description.output}
    for name in (RAW_CONFIDENCE, RAW_COORDINATES):
        if raw[name].type.multiArrayType.dataType != _ARRAY_FLOAT32:
            raise ConversionError(f"the decode's {name} is not float32; Core ML's NMS takes float32 or double arrays")
        spec.description.input.add().CopyFrom(raw[name])
    for name in (IOU_INPUT, CONFIDENCE_INPUT):
        feature = spec.description.input.add()
        feature.name = name
        feature.type.doubleType.SetInParent()
    confidence_name, coordinates_name = COREML_OUTPUTS
    for name, width in ((confidence_name, len(labels)), (coordinates_name, 4)):
        _detections_feature(spec.description.output.add(), name, width, options.max_detections)
    nms = spec.nonMaximumSuppression
    nms.pickTop.perClass = not options.class_agnostic
    nms.stringClassLabels.vector.extend(labels)
    nms.iouThreshold = options.iou
    nms.confidenceThreshold = options.score_threshold
    nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName = RAW_CONFIDENCE, RAW_COORDINATES
    nms.iouThresholdInputFeatureName, nms.confidenceThresholdInputFeatureName = IOU_INPUT, CONFIDENCE_INPUT
    nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName = confidence_name, coordinates_name
    return spec


def _detections_feature(feature, name: str, width: int, most: int) -> None:
    """A [0..most, width] float32 output (no fixed ``shape``: the NMS validator takes a range or a shape, not both)."""
    feature.name = name
    array = feature.type.multiArrayType
    array.dataType = _ARRAY_FLOAT32
    rows, columns = array.shapeRange.sizeRanges.add(), array.shapeRange.sizeRanges.add()
    rows.lowerBound, rows.upperBound = 0, most
    columns.lowerBound = columns.upperBound = width


def _pipeline(original, stage, nms, options: DetectorOptions):
    from deploykit.formats.coremltools_facade import model_pb2

    spec = model_pb2().Model()
    spec.specificationVersion = max(stage.specificationVersion, nms.specificationVersion)
    description = spec.description
    description.input.extend(original.description.input)
    pair = "two kept boxes" if options.class_agnostic else "two kept boxes of one class"
    overlap = f"the largest overlap (intersection over union) {pair} may have"
    for name, default, what in ((IOU_INPUT, options.iou, overlap),
                                (CONFIDENCE_INPUT, options.score_threshold, "the least confidence of a kept box")):
        feature = description.input.add()
        feature.name = name
        feature.shortDescription = f"(optional) {what} (default: {default})"
        feature.type.doubleType.SetInParent()
        feature.type.isOptional = True
    description.output.extend(nms.description.output)
    description.output[0].shortDescription = "Boxes x class confidence (labels: the NMS model's stringClassLabels)"
    description.output[1].shortDescription = "Boxes x [centre x, centre y, width, height] (fractions of the input)"
    description.metadata.CopyFrom(original.description.metadata)
    user = description.metadata.userDefined
    user.pop("com.deploykit.labels_output", None)  # it named a raw output the pipeline no longer has
    user.update(PREVIEW)
    user["com.deploykit.detector"] = json.dumps({**options.to_json(), "class_columns": len(
        nms.nonMaximumSuppression.stringClassLabels.vector)}, sort_keys=True)
    spec.pipeline.models.add().CopyFrom(stage)
    spec.pipeline.models.add().CopyFrom(nms)
    return spec
