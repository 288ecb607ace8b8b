"""``deploykit predict`` on a detector (an artifact converted with ``--detector``, or its bundle): each picture's
detections in the picture's own pixels, and with ``--draw`` the picture with its boxes drawn.

The artifact's outputs are read as the record's (or manifest's) ``detector`` block names them
(``detection.outputs.read_detections``: boxes in the model input's pixels), then the declared resize is undone
(``detection.frame``): the boxes an app shows over the picture it had, which is what the templates compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.core.errors import UsageError


@dataclass(frozen=True)
class Detected:
    image: str
    size: tuple[int, int]  # the picture's (width, height)
    frame: str  # which pixels the boxes are in (detection.frame.Frame.description)
    detections: tuple[dict, ...]  # {"class", "label"?, "score", "box": [x1, y1, x2, y2]}, best first
    drawn: str | None = None  # --draw: the PNG written

    def to_json(self) -> dict:
        return {"image": self.image, "size": list(self.size), "frame": self.frame, "detections": list(self.detections),
                **({"drawn": self.drawn} if self.drawn else {})}


def detector_outputs(block: dict, outputs: dict) -> dict:
    """The artifact's outputs under the names ``read_detections`` reads (the convention's), found by the block's
    ``outputs`` (role -> the artifact's name)."""
    from deploykit.detection.record import CONVENTIONS

    convention = CONVENTIONS.get(block.get("convention"))
    if convention is None:
        raise UsageError(f"detector convention {block.get('convention')!r} is not one deploykit reads",
                         hint=f"one of: {', '.join(CONVENTIONS)} (a newer deploykit wrote it?)")
    missing = [name for name in block["outputs"].values() if name not in outputs]
    if missing:
        raise UsageError(f"the detector block names output(s) {', '.join(missing)}, which the model does not have",
                         hint=f"its outputs are: {', '.join(outputs)}")
    return {convention["outputs"][role]: outputs[name] for role, name in block["outputs"].items()}


def detect(runner, files: list[Path], feeds: list[np.ndarray], input_name: str, image, block: dict, labels,
           draw: Path | None = None) -> list[Detected]:
    """``feeds``: each picture as the artifact takes it; ``image``: the input's ``ImageInput`` (its resize is undone)."""
    from deploykit.detection.frame import picture_frame
    from deploykit.detection.nms import Detections
    from deploykit.detection.outputs import read_detections

    input_size = tuple(block["input_size"])
    results, used = [], set()
    for path, feed in zip(files, feeds):
        found = read_detections(detector_outputs(block, runner.infer({input_name: feed})), input_size)
        size = _picture_size(path)
        frame = picture_frame(image, input_size, size)
        boxes = frame.to_picture(found.boxes)
        shown = Detections(boxes, found.classes, found.scores)
        drawn = _draw(path, shown, labels, draw, used) if draw is not None else None
        results.append(Detected(str(path), size, frame.description, tuple(shown.to_json(labels)), drawn))
    return results


def _picture_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as opened:  # the header only: the pixels were read for the feed already
        return opened.size


def _draw(path: Path, detections, labels, folder: Path, used: set) -> str:
    """``path`` with its boxes drawn, written as ``folder/<stem>.png`` (``-2``, ``-3`` ... when two pictures share
    a stem), complete or not at all."""
    import io

    from PIL import Image

    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.detection.draw import draw_detections

    name, count = f"{path.stem}.png", 1
    while name in used:
        count += 1
        name = f"{path.stem}-{count}.png"
    used.add(name)
    with Image.open(path) as opened:
        drawn = draw_detections(opened, detections.boxes, detections.classes, detections.scores, labels)
    buffer = io.BytesIO()
    drawn.save(buffer, format="PNG")
    target = Path(folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, buffer.getvalue())
    return str(target)
