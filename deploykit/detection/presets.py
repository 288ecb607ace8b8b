"""Fitting a ``--detector`` preset to a model's outputs: the ``Head`` every later stage reads.

A preset names a head layout real detectors ship with; ``fit`` finds its outputs among the model's by shape
and refuses, naming what did not fit, a model whose outputs are another layout or that already ends in NMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deploykit.core.errors import UsageError
from deploykit.detection.options import DetectorOptions

# Ops that mean the graph already suppresses: a second NMS on its output would find nothing to do.
NMS_OPS = frozenset({"NonMaxSuppression", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
                     "TFLite_Detection_PostProcess", "non_maximum_suppression", "nms", "batched_nms"})
STRIDES = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class Head:
    preset: str
    input_size: tuple[int, int]  # the model input's (height, width) in pixels
    classes: int
    candidates: int  # boxes before suppression
    outputs: tuple[str, ...]  # the source outputs read, in the preset's order (picodet: scores per stride, then boxes)
    channels_first: bool = False  # yolov8: [1, 4 + C, N] rather than [1, N, 4 + C]
    strides: tuple[int, ...] = ()  # yolox, picodet: one per level, level sizes ceil(input / stride)
    reg_max: int = 0  # picodet: distance bins per side minus one
    box_format: str = "cxcywh"  # boxes-scores, ssd: how the box output writes a box
    normalized: bool = False  # boxes-scores, ssd: coordinates as fractions of the input

    def level_sizes(self) -> list[tuple[int, int]]:
        height, width = self.input_size
        return [(math.ceil(height / s), math.ceil(width / s)) for s in self.strides]

    def to_json(self) -> dict:
        return {"preset": self.preset, "input_size": list(self.input_size), "classes": self.classes,
                "candidates": self.candidates, "outputs": list(self.outputs), "channels_first": self.channels_first,
                "strides": list(self.strides), "reg_max": self.reg_max, "box_format": self.box_format,
                "normalized": self.normalized}

    @classmethod
    def from_json(cls, data: dict) -> "Head":
        return cls(data["preset"], tuple(data["input_size"]), data["classes"], data["candidates"], tuple(data["outputs"]),
                   data.get("channels_first", False), tuple(data.get("strides", ())), data.get("reg_max", 0),
                   data.get("box_format", "cxcywh"), data.get("normalized", False))


def input_size(shape: tuple, layout: str | None = None) -> tuple[int, int]:
    """(height, width) of an image input shaped NCHW or NHWC (``layout`` when the record knows it)."""
    dims = [int(d) if isinstance(d, int) and d > 0 else 0 for d in shape]
    if len(dims) != 4:
        raise UsageError(f"--detector needs a 4-D image input (N, C, H, W or N, H, W, C); this one is {tuple(shape)}")
    channels_first = layout == "NCHW" if layout in ("NCHW", "NHWC") else dims[1] in (1, 3) and dims[3] not in (1, 3)
    height, width = (dims[2], dims[3]) if channels_first else (dims[1], dims[2])
    if not height or not width:
        raise UsageError(f"--detector needs a fixed input size; this input is {tuple(shape)}",
                         hint="give it one with --input NAME=1x3xHxW")
    return height, width


def fit(options: DetectorOptions, size: tuple[int, int], outputs: dict[str, tuple], op_types=()) -> Head:
    """The ``Head`` of ``options.preset`` on a model whose outputs have these shapes (name -> shape, in order)."""
    present = sorted(NMS_OPS.intersection(op_types))
    if present:
        raise UsageError(f"--detector: the model already suppresses its boxes ({', '.join(present)} in its graph)",
                         hint="convert it without --detector: its outputs are the detections already")
    shapes = {name: tuple(int(d) for d in shape) for name, shape in outputs.items()}
    if _looks_suppressed(shapes):
        raise UsageError("--detector: the model's outputs are already detections (boxes, classes, scores, count)",
                         hint="convert it without --detector")
    return {"yolov8": _yolov8, "yolox": _yolox, "picodet": _picodet, "ssd": _boxes_scores,
            "boxes-scores": _boxes_scores}[options.preset](options, size, shapes)


def _listed(shapes: dict) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())


def _refuse(preset: str, wanted: str, shapes: dict) -> UsageError:
    return UsageError(f"--detector {preset} does not fit this model: it needs {wanted}; the outputs are {_listed(shapes)}",
                      hint="pick the preset of the head's layout (docs/detection.md), or --detector boxes-scores "
                           "with --boxes-output and --scores-output")


def _looks_suppressed(shapes: dict) -> bool:
    found = list(shapes.values())
    return (len(found) == 4 and any(len(s) == 3 and s[-1] == 4 for s in found)
            and sum(1 for s in found if len(s) == 2) == 2 and any(len(s) == 1 for s in found))


def _yolov8(options, size, shapes) -> Head:
    wanted = "one output [1, 4 + classes, boxes] (ultralytics' export: centre and size in input pixels, class scores)"
    if len(shapes) != 1:
        raise _refuse("yolov8", wanted, shapes)
    (name, shape), = shapes.items()
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < 5:
        raise _refuse("yolov8", wanted, shapes)
    channels_first = shape[1] < shape[2]
    features, boxes = (shape[1], shape[2]) if channels_first else (shape[2], shape[1])
    return Head("yolov8", size, features - 4, boxes, (name,), channels_first=channels_first)


def _yolox(options, size, shapes) -> Head:
    wanted = ("one output [1, boxes, 5 + classes] (YOLOX's export: grid offsets, log sizes, objectness, class scores) "
              "with boxes the cells of strides 8, 16, 32 (and 64)")
    if len(shapes) != 1:
        raise _refuse("yolox", wanted, shapes)
    (name, shape), = shapes.items()
    if len(shape) != 3 or shape[0] != 1 or shape[2] < 6:
        raise _refuse("yolox", wanted, shapes)
    for strides in ((8, 16, 32), (8, 16, 32, 64)):
        if sum(math.ceil(size[0] / s) * math.ceil(size[1] / s) for s in strides) == shape[1]:
            return Head("yolox", size, shape[2] - 5, shape[1], (name,), strides=strides)
    raise _refuse("yolox", wanted, shapes)


def _picodet(options, size, shapes) -> Head:
    wanted = ("per stride, a score output [1, cells, classes] and a distance output [1, cells, 4 x bins] "
              "(PaddleDetection's PicoDet export without its NMS)")
    three = {name: s for name, s in shapes.items() if len(s) == 3 and s[0] == 1}
    if len(three) != len(shapes) or len(shapes) < 2 or len(shapes) % 2:
        raise _refuse("picodet", wanted, shapes)
    widths = {s[2] for s in three.values()}
    # the distance output: 4 sides x (reg_max + 1) bins, reg_max 7 in PicoDet's configs (4..16 accepted)
    distance = [w for w in widths if w % 4 == 0 and 4 <= w // 4 - 1 <= 16]
    if len(widths) != 2 or len(distance) != 1:
        raise _refuse("picodet", wanted, shapes)
    bins = distance[0]
    classes = next(w for w in widths if w != bins)
    scores = [(n, s) for n, s in three.items() if s[2] == classes]
    boxes = [(n, s) for n, s in three.items() if s[2] == bins]
    if len(scores) != len(boxes):
        raise _refuse("picodet", wanted, shapes)
    scores.sort(key=lambda item: -item[1][1])
    boxes.sort(key=lambda item: -item[1][1])
    strides = []
    for (_, score_shape), (_, box_shape) in zip(scores, boxes):
        cells = score_shape[1]
        stride = next((s for s in STRIDES if math.ceil(size[0] / s) * math.ceil(size[1] / s) == cells), None)
        if stride is None or box_shape[1] != cells or stride in strides:
            raise _refuse("picodet", wanted, shapes)
        strides.append(stride)
    return Head("picodet", size, classes, sum(s[1] for _, s in scores), tuple(n for n, _ in scores) + tuple(n for n, _ in boxes),
                strides=tuple(strides), reg_max=bins // 4 - 1)


def _boxes_scores(options, size, shapes) -> Head:
    preset = options.preset
    wanted = "a box output [1, boxes, 4] and a score output [1, boxes, classes]"
    boxes_name, scores_name = options.boxes_output, options.scores_output
    if preset == "ssd" and not (boxes_name and scores_name):
        three = [(n, s) for n, s in shapes.items() if len(s) == 3 and s[0] == 1]
        boxes_name = next((n for n, s in three if s[2] == 4), None)
        scores_name = next((n for n, s in three if n != boxes_name), None)
    for flag, name in (("--boxes-output", boxes_name), ("--scores-output", scores_name)):
        if name is None or name not in shapes:
            raise UsageError(f"--detector {preset}: {flag} {name!r} is not an output of the model",
                             hint=f"the outputs are {_listed(shapes)}")
    box_shape, score_shape = shapes[boxes_name], shapes[scores_name]
    if (len(box_shape) != 3 or box_shape[-1] != 4 or len(score_shape) != 3 or score_shape[1] != box_shape[1]
            or score_shape[0] != 1 or box_shape[0] != 1):
        raise _refuse(preset, wanted, shapes)
    box_format = options.box_format if preset == "boxes-scores" else "yxyx"
    normalized = options.normalized if preset == "boxes-scores" else True
    return Head(preset, size, score_shape[2], box_shape[1], (boxes_name, scores_name), box_format=box_format,
                normalized=normalized)
