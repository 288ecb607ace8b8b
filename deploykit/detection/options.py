"""What ``--detector`` asks for: the head's layout (a preset) and the suppression's parameters."""

from __future__ import annotations

from dataclasses import dataclass

from deploykit.core.errors import UsageError

PRESETS = ("yolov8", "yolox", "picodet", "ssd", "boxes-scores")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")


@dataclass(frozen=True)
class DetectorOptions:
    preset: str
    iou: float = 0.45  # boxes overlapping a kept one by more than this are suppressed
    score_threshold: float = 0.25  # a box is a detection when its best class score is above this
    max_detections: int = 100
    class_agnostic: bool = False  # suppress across classes (one box per object whatever its class)
    boxes_output: str | None = None  # boxes-scores / ssd: the output holding the boxes
    scores_output: str | None = None  # boxes-scores / ssd: the output holding the class scores
    box_format: str = "xyxy"  # boxes-scores: how a box is written
    normalized: bool = False  # boxes-scores: coordinates as fractions of the input, not pixels

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UsageError(f"--detector {self.preset!r} is not a preset", hint=f"one of: {', '.join(PRESETS)}")
        if not 0 < self.iou <= 1:
            raise UsageError(f"--iou must be in (0, 1], got {self.iou}")
        if not 0 <= self.score_threshold < 1:
            raise UsageError(f"--score-threshold must be in [0, 1), got {self.score_threshold}")
        if not 1 <= self.max_detections <= 1000:
            raise UsageError(f"--max-detections must be between 1 and 1000, got {self.max_detections}")
        if self.box_format not in BOX_FORMATS:
            raise UsageError(f"--box-format {self.box_format!r} is not one of {', '.join(BOX_FORMATS)}")
        if self.preset == "boxes-scores" and not (self.boxes_output and self.scores_output):
            raise UsageError("--detector boxes-scores needs the outputs named: --boxes-output NAME --scores-output NAME")

    @classmethod
    def from_json(cls, data: dict) -> "DetectorOptions":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> dict:
        return {"preset": self.preset, "iou": self.iou, "score_threshold": self.score_threshold,
                "max_detections": self.max_detections, "class_agnostic": self.class_agnostic,
                **({"boxes_output": self.boxes_output, "scores_output": self.scores_output, "box_format": self.box_format,
                    "normalized": self.normalized} if self.preset in ("boxes-scores", "ssd") else {})}
