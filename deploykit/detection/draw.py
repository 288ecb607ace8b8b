"""A picture with its detections drawn on it (``deploykit predict --draw``): one outline per box in its class's
colour, the label and score on a filled tag above it. Pillow only; the picture stays in its own size and frame."""

from __future__ import annotations

import numpy as np

# Distinct, saturated colours that read on photos; a class keeps its colour across pictures (class index mod 12).
PALETTE = ((255, 56, 56), (56, 56, 255), (0, 200, 0), (255, 157, 0), (200, 0, 200), (0, 190, 190),
           (255, 112, 180), (130, 80, 255), (160, 120, 0), (0, 120, 255), (255, 210, 0), (120, 200, 60))


def colour(klass: int) -> tuple[int, int, int]:
    return PALETTE[int(klass) % len(PALETTE)]


def line_width(size: tuple[int, int]) -> int:
    """Outline thickness: visible on a 4000-pixel photo, not swallowing a 64-pixel one."""
    return max(1, round(min(size) / 250))


def draw_detections(picture, boxes: np.ndarray, classes, scores, labels=None):
    """A copy of ``picture`` (PIL, any mode) in RGB with each box (x1 y1 x2 y2 in its pixels) outlined. A box's
    outline covers the pixels from (x1, y1) to (x2, y2) rounded, inward from its edges."""
    from PIL import ImageDraw

    out = picture.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = line_width(out.size)
    font = _font(max(10, 4 * width + 6))
    # the lowest scores first, so the most confident box and tag end up on top where boxes overlap
    for index in np.argsort(np.asarray(scores, np.float64), kind="stable"):
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[index])
        if x2 <= x1 or y2 <= y1:
            continue  # a box cut to nothing at the picture's edge
        klass = int(classes[index])
        fill = colour(klass)
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=fill, width=width)
        name = labels[klass] if labels and klass < len(labels) else f"class {klass}"
        text = f"{name} {float(scores[index]):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_w, tag_h = right - left + 2 * width, bottom - top + 2 * width
        tag_y = y1 - tag_h if y1 - tag_h >= 0 else y1  # above the box, or inside its top when there is no room
        draw.rectangle((x1, tag_y, x1 + tag_w - 1, tag_y + tag_h - 1), fill=fill)
        draw.text((x1 + width - left, tag_y + width - top), text, font=font, fill=_ink(fill))
    return out


def _ink(background: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else (255, 255, 255)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's scalable default font (needs FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()
