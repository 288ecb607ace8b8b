"""A detector's boxes in the picture's frame: the app's resize (``image_io.resize``) undone.

An artifact's detections are in the frame of what it was fed (``outputs.read_detections``: x1 y1 x2 y2 in the
model input's pixels), which is the picture after the image input's declared resize. ``picture_frame`` turns
that resize into a map of coordinates, from the same rounded sizes ``image_io.resize.fit`` draws with
(``placement``), so a box maps back exactly rather than within a pixel:

- ``stretch``: each axis scaled by picture size / input size.
- ``shorter-side``: the picture was scaled to cover and its centre cut out: the cut is added back, then scaled.
- ``letterbox``: the picture was scaled to fit and pasted after the padding: the padding is taken off, then
  scaled; a box reaching into the padding is cut at the picture's edge.

A model without an image input (a float tensor input, no ``--image-input``) declares no resize: an app made
its tensor itself, so its boxes stay in the model input's pixels and the frame says so (``in_picture`` False).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """``x_picture = (x_input - offset_x) * scale_x`` (y likewise), boxes then clipped to ``size``."""

    scale: tuple[float, float]  # picture pixels per input pixel, (x, y)
    offset: tuple[float, float]  # where the picture's top-left corner is in the input's pixels, (x, y)
    size: tuple[int, int]  # (width, height) of the frame boxes land in: the picture's, or the input's
    in_picture: bool  # False: no image input, the boxes stay in the model input's pixels

    @property
    def description(self) -> str:
        return ("the picture's pixels (x1, y1, x2, y2), origin top-left" if self.in_picture else
                "the model input's pixels (x1, y1, x2, y2), origin top-left: the model has no image input, so no "
                "resize is declared to undo")

    def to_picture(self, boxes, clip: bool = True) -> np.ndarray:
        """``boxes`` [N, 4] x1 y1 x2 y2 in input pixels -> this frame's pixels (float64)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scale = np.array(self.scale * 2, np.float64)
        out = (boxes - np.array(self.offset * 2, np.float64)) * scale
        if clip:
            width, height = self.size
            out = np.clip(out, 0.0, np.array([width, height, width, height], np.float64))
        return out

    def to_input(self, boxes) -> np.ndarray:
        """The inverse of ``to_picture`` (without clipping): picture pixels -> input pixels."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return boxes / np.array(self.scale * 2, np.float64) + np.array(self.offset * 2, np.float64)


def picture_frame(image, input_size: tuple[int, int], picture_size: tuple[int, int]) -> Frame:
    """The frame of a picture of ``picture_size`` (width, height) fed to an input of ``input_size`` (height, width)
    through ``image`` (an ``image_io.ImageInput``; None for a tensor input: the identity on the input's pixels,
    ``picture_size`` unused)."""
    height, width = (int(v) for v in input_size)
    if image is None:
        return Frame((1.0, 1.0), (0.0, 0.0), (width, height), in_picture=False)
    from deploykit.image_io.resize import placement

    picture_w, picture_h = (int(v) for v in picture_size)
    where = placement(image, (picture_w, picture_h), height, width)
    return Frame((picture_w / where.scaled[0], picture_h / where.scaled[1]),
                 (float(where.offset[0]), float(where.offset[1])), (picture_w, picture_h), in_picture=True)
