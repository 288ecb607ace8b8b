"""Image parity data for the corpus (bench/corpus/inputs.py dispatches here): text pages and text-line
crops drawn with glyph-like strokes, natural-looking photos, letterboxed photos and faces, each drawn
supersampled and downsampled, with sensor noise. The preprocessing constants and the wheel files they
come from are in inputs.py's docstring.
"""

from __future__ import annotations

import math

import numpy as np

from deploykit.image_io.sample_images import SKIN, blob_layer, finish_drawing, natural, smooth_field


def normalize(hwc, mean, std) -> np.ndarray:
    """``(x / 255 - mean) / std`` per channel, HWC -> CHW (the channel order of ``hwc`` is kept)."""
    x = np.asarray(hwc, dtype=np.float32) * np.float32(1 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


# ---- text


def _glyph(draw, x: float, y: float, w: float, h: float, stroke: int, ink, rng, cjk: bool) -> None:
    """One glyph-like cluster of strokes in the box (x, y, w, h): CJK-like square ones with many strokes,
    or Latin-like ones (x-height body, sometimes an ascender or descender, round bowls)."""
    if cjk:
        strokes = int(rng.integers(3, 8))
        top, bottom = y, y + h
    else:
        strokes = int(rng.integers(1, 4))
        xh = 0.55 * h
        top = y + h - xh if rng.random() < 0.6 else y  # ascender on 40 % of letters
        bottom = y + h + (0.25 * h if rng.random() < 0.15 else 0.0)  # descender
    for _ in range(strokes):
        kind = rng.choice(5, p=(0.3, 0.3, 0.15, 0.2, 0.05) if cjk else (0.15, 0.35, 0.1, 0.35, 0.05))
        if kind == 0:  # horizontal
            yy = rng.uniform(top, bottom)
            a, b = sorted(rng.uniform(x, x + w, 2))
            b = max(b, a + 0.4 * w)
            draw.line([(a, yy), (min(b, x + w), yy)], fill=ink, width=stroke)
        elif kind == 1:  # vertical
            xx = rng.uniform(x, x + w)
            a, b = sorted(rng.uniform(top, bottom, 2))
            b = max(b, a + 0.5 * (bottom - top))
            draw.line([(xx, a), (xx, min(b, bottom))], fill=ink, width=stroke)
        elif kind == 2:  # diagonal
            draw.line([(rng.uniform(x, x + w), rng.uniform(top, bottom)),
                       (rng.uniform(x, x + w), rng.uniform(top, bottom))], fill=ink, width=stroke)
        elif kind == 3:  # bowl / arc
            start = float(rng.uniform(0, 360))
            box = [x, top + 0.0 * h, x + w, bottom]
            if cjk:
                box = [x + rng.uniform(0, 0.3) * w, top + rng.uniform(0, 0.3) * h, x + w, bottom]
            draw.arc(box, start, start + float(rng.uniform(150, 360)), fill=ink, width=stroke)
        else:  # dot
            cx, cy, r = rng.uniform(x, x + w), rng.uniform(top, bottom), stroke * 0.8
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=ink)


def _text_line(draw, x0: float, y0: float, height: float, right: float, ink, rng, cjk: bool, stroke: int) -> float:
    """Words of glyphs from (x0, y0), glyph height ``height``, up to ``right``; returns where it ended."""
    x = x0
    while True:
        letters = int(rng.integers(1, 4)) if cjk else int(rng.integers(2, 9))
        gw = height * (rng.uniform(0.85, 1.0) if cjk else rng.uniform(0.45, 0.7))
        need = letters * gw * 1.15
        if x + need > right:
            return x
        for _ in range(letters):
            _glyph(draw, x, y0, gw * rng.uniform(0.85, 1.0), height, stroke, ink, rng, cjk)
            x += gw * (1.1 if cjk else 1.15)
        x += height * (0.15 if cjk else rng.uniform(0.35, 0.6))
        if rng.random() < 0.03:  # a short line ends early (end of a paragraph, a heading)
            return x


def _ink(rng) -> tuple[int, int, int]:
    roll = rng.random()
    if roll < 0.85:
        v = int(rng.integers(5, 70))
        return (v, v, v + int(rng.integers(0, 15)))
    if roll < 0.93:
        return (int(rng.integers(10, 60)), int(rng.integers(30, 80)), int(rng.integers(120, 190)))  # blue pen
    return (int(rng.integers(150, 210)), int(rng.integers(10, 50)), int(rng.integers(10, 50)))  # red heading


def document(height: int, width: int, rng, dense: bool) -> np.ndarray:
    """A page (RGB uint8 HxWx3): light paper with an illumination gradient, text lines in 1-2 columns;
    ``dense`` pages (layout) have a title, paragraphs, a figure, a table and a footer."""
    from PIL import Image, ImageDraw

    ss = 2  # supersampling factor
    H, W = height * ss, width * ss
    paper = rng.uniform(222, 250) + rng.uniform(-6, 6, 3)
    shade = smooth_field(H, W, rng, 2, rng.uniform(0.86, 0.95), 1.0, channels=1)
    page = np.clip(paper[None, None, :] * shade, 0, 255).astype(np.uint8)
    image = Image.fromarray(page)
    draw = ImageDraw.Draw(image)
    cjk = rng.random() < 0.5
    # glyph height in output pixels: a page resized for the detector (limit_side_len 736) shows text
    # 8-20 px high at this input size; a full page at 800 x 608 (layout) shows body text 7-12 px high
    body = rng.uniform(7, 12) if dense else rng.uniform(7, 18)
    margin_x, margin_y = W * rng.uniform(0.04, 0.1), H * rng.uniform(0.03, 0.08)
    columns = 2 if (dense and rng.random() < 0.5) or (not dense and rng.random() < 0.25) else 1
    gap = W * 0.04
    col_w = (W - 2 * margin_x - (columns - 1) * gap) / columns
    y = margin_y
    blocks = []
    if dense or rng.random() < 0.5:  # title
        th = body * rng.uniform(1.6, 2.4) * ss
        left = margin_x + (W - 2 * margin_x) * rng.uniform(0.0, 0.25)
        _text_line(draw, left, y, th, W - margin_x - (W - 2 * margin_x) * rng.uniform(0, 0.3),
                   _ink(rng), rng, cjk, max(2, int(th / 7)))
        y += th * 1.8
    if dense:
        blocks = list(rng.permutation(["figure", "table"] + ["text"] * int(rng.integers(3, 6))))
    for c in range(columns):
        x_left = margin_x + c * (col_w + gap)
        yy = y
        queue = list(blocks) if dense else ["text"] * 50
        while yy < H - margin_y - body * ss * 3 and queue:
            block = queue.pop(0)
            if block == "figure":
                fh = min(H * rng.uniform(0.12, 0.25), H - margin_y - yy)
                fig = natural(int(fh), int(col_w), rng).astype(np.uint8)
                image.paste(Image.fromarray(fig), (int(x_left), int(yy)))
                yy += fh + body * ss
                # caption
                _text_line(draw, x_left + col_w * 0.2, yy, body * ss * 0.9, x_left + col_w * 0.8, _ink(rng), rng,
                           cjk, max(1, int(body * ss / 8)))
                yy += body * ss * 2.5
            elif block == "table":
                rows, cols = int(rng.integers(3, 7)), int(rng.integers(2, 6))
                rh = body * ss * 1.8
                rows = max(1, min(rows, int((H - margin_y - yy) // rh)))
                line = (int(rng.integers(20, 90)),) * 3
                for r in range(rows + 1):
                    draw.line([(x_left, yy + r * rh), (x_left + col_w, yy + r * rh)], fill=line, width=ss)
                for k in range(cols + 1):
                    xx = x_left + k * col_w / cols
                    draw.line([(xx, yy), (xx, yy + rows * rh)], fill=line, width=ss)
                for r in range(rows):
                    for k in range(cols):
                        cx = x_left + k * col_w / cols + body * ss * 0.4
                        _text_line(draw, cx, yy + r * rh + rh * 0.25, body * ss * 0.8,
                                   cx + (col_w / cols - body * ss) * rng.uniform(0.3, 1.0), _ink(rng), rng, cjk,
                                   max(1, int(body * ss / 8)))
                yy += rows * rh + body * ss * 2
            else:
                h_line = body * ss * rng.uniform(0.9, 1.1)
                spacing = h_line * rng.uniform(1.35, 2.0)
                lines = int(rng.integers(3, 12)) if dense else int(rng.integers(2, 9))
                ink = _ink(rng)
                stroke = max(1, int(round(h_line / rng.uniform(6, 9))))
                for i in range(lines):
                    if yy > H - margin_y - h_line:
                        break
                    indent = h_line * 2 if i == 0 and rng.random() < 0.5 else 0
                    right = x_left + col_w * (rng.uniform(0.3, 0.9) if i == lines - 1 else 1.0)
                    _text_line(draw, x_left + indent, yy, h_line, right, ink, rng, cjk, stroke)
                    yy += spacing
                yy += spacing * rng.uniform(0.3, 1.5)  # paragraph break
    if dense:  # footer: page number
        _text_line(draw, W / 2 - body * ss, H - margin_y * 0.7, body * ss * 0.8, W / 2 + body * ss * 2, _ink(rng), rng,
                   False, max(1, int(body * ss / 8)))
    return finish_drawing(image, (width, height), rng, noise=rng.uniform(1.5, 4.0))


def textline_tensor(height: int, width: int, rng) -> np.ndarray:
    """A text-line crop as PP-OCR's rec / cls preprocessing leaves it: CHW, (x/255 - 0.5)/0.5, the crop
    resized to ``height`` keeping its aspect ratio, zero padding on the right."""
    from PIL import Image

    ratio = rng.uniform(2.0, width / height * 1.3)  # crop w / h; wider ones are squeezed to the input width
    crop_h = int(rng.integers(24, 80))
    crop = _textline(crop_h, max(crop_h, int(crop_h * ratio)), rng)
    resized_w = min(width, int(math.ceil(height * crop.shape[1] / crop.shape[0])))
    resized = np.asarray(Image.fromarray(crop[..., ::-1].copy())  # BGR, as cv2 loads it
                         .resize((resized_w, height), Image.Resampling.BILINEAR), dtype=np.float32)
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :resized_w] = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return out


def _textline(height: int, width: int, rng) -> np.ndarray:
    """A detector crop of one text line (RGB uint8): text 50-75 % of the height, a little margin."""
    from PIL import Image, ImageDraw

    ss = 3
    H, W = height * ss, width * ss
    dark_bg = rng.random() < 0.15  # light text on a dark sign / banner
    if dark_bg:
        bg = smooth_field(H, W, rng, 2, 20, 90)
        ink = tuple(int(v) for v in rng.integers(200, 255, 3))
    else:
        bg = smooth_field(H, W, rng, 2, 200, 250)
        bg = bg * 0.3 + bg.mean(axis=-1, keepdims=True) * 0.7  # mostly grey paper
        ink = _ink(rng)
    image = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    glyph_h = H * rng.uniform(0.5, 0.75)
    y0 = (H - glyph_h) / 2 + rng.uniform(-0.08, 0.08) * H
    cjk = rng.random() < 0.5
    _text_line(draw, H * rng.uniform(0.05, 0.25), y0, glyph_h, W - H * 0.1, ink, rng, cjk,
               max(2, int(round(glyph_h / rng.uniform(6, 9)))))
    return finish_drawing(image, (width, height), rng, noise=rng.uniform(1.5, 5.0))


# ---- natural images and faces

def letterboxed(height: int, width: int, rng) -> np.ndarray:
    """NudeNet's input: a photo padded bottom/right with black to a square, resized, RGB / 255, CHW."""
    aspect = rng.choice([3 / 4, 4 / 3, 9 / 16, 16 / 9, 1.0, 2 / 3, 3 / 2])  # w / h of the photo
    if aspect >= 1:
        w, h = width, max(1, int(round(height / aspect)))
    else:
        w, h = max(1, int(round(width * aspect))), height
    canvas = np.zeros((height, width, 3), np.float32)
    canvas[:h, :w] = natural(h, w, rng)
    return (canvas / 255.0).transpose(2, 0, 1)


def face_crop(height: int, width: int, rng, whole_face: bool) -> np.ndarray:
    """A face-like image (RGB float HxWx3, 0..255, not re-quantized: MTCNN area-resamples in float).

    R-Net / O-Net see candidate boxes: a face filling most of the square crop. P-Net sees the image
    pyramid: a smaller face somewhere on a background."""
    from PIL import Image, ImageDraw, ImageFilter

    ss = 4
    H, W = height * ss, width * ss
    background = natural(H, W, rng)
    image = Image.fromarray(background.astype(np.uint8))
    if whole_face:
        fw = W * rng.uniform(0.6, 0.95)
        cx, cy = W / 2 + rng.uniform(-0.1, 0.1) * W, H / 2 + rng.uniform(-0.05, 0.12) * H
    else:
        fw = W * rng.uniform(0.35, 0.8)
        cx, cy = rng.uniform(fw / 2, W - fw / 2), rng.uniform(fw * 0.6, H - fw * 0.6)
    fh = fw * rng.uniform(1.15, 1.35)
    skin = np.asarray(SKIN[int(rng.integers(len(SKIN)))], np.float32)
    hair = tuple(int(v) for v in np.clip(np.array([1.0, 0.8, 0.6]) * rng.uniform(15, 120), 0, 255))
    if rng.random() < 0.8:  # hair behind the top of the head
        blob_layer(image, [cx - fw * 0.55, cy - fh * 0.6, cx + fw * 0.55, cy + fh * 0.1], hair, rng, blur=ss)
    blob_layer(image, [cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], tuple(int(v) for v in skin), rng, blur=ss)
    draw = ImageDraw.Draw(image)
    dark = tuple(int(v) for v in np.clip(skin * rng.uniform(0.15, 0.35), 0, 255))
    brow = tuple(int(v) for v in np.clip(skin * 0.35, 0, 255))
    eye_y = cy - fh * rng.uniform(0.05, 0.12)
    eye_dx, eye_r = fw * rng.uniform(0.18, 0.24), fw * rng.uniform(0.06, 0.09)
    turn = rng.uniform(-0.08, 0.08) * fw  # a slightly turned head
    for side in (-1, 1):
        ex = cx + turn + side * eye_dx
        draw.ellipse([ex - eye_r * 1.4, eye_y - eye_r * 0.7, ex + eye_r * 1.4, eye_y + eye_r * 0.7],
                     fill=(235, 235, 230))
        draw.ellipse([ex - eye_r * 0.7, eye_y - eye_r * 0.7, ex + eye_r * 0.7, eye_y + eye_r * 0.7], fill=dark)
        draw.line([(ex - eye_r * 1.6, eye_y - eye_r * 1.8), (ex + eye_r * 1.6, eye_y - eye_r * 2.1)], fill=brow,
                  width=max(1, int(eye_r * 0.5)))
    nose = tuple(int(v) for v in np.clip(skin * 0.75, 0, 255))
    draw.line([(cx + turn, eye_y + eye_r), (cx + turn * 1.3, cy + fh * 0.12)], fill=nose,
              width=max(1, int(eye_r * 0.6)))
    mouth_y, mouth_w = cy + fh * rng.uniform(0.22, 0.28), fw * rng.uniform(0.15, 0.25)
    lips = tuple(int(v) for v in np.clip(skin * np.array([0.75, 0.45, 0.45]), 0, 255))
    draw.ellipse([cx + turn - mouth_w, mouth_y - eye_r * 0.5, cx + turn + mouth_w, mouth_y + eye_r * 0.5], fill=lips)
    image = image.filter(ImageFilter.GaussianBlur(ss * 0.6))
    array = np.asarray(image, np.float32) + rng.normal(0, 3.0, (H, W, 3))
    array = np.clip(array, 0, 255)
    # area interpolation, as facenet-pytorch's imresample (F.interpolate(mode="area"))
    return array.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))


def captcha(height: int, width: int, rng) -> np.ndarray:
    """A click-captcha picture as ddddocr's detector takes it (``core/detection_engine.py``: the picture
    letterboxed top-left into 416 x 416 over grey 114, BGR, 0..255, no normalization): a textured background
    with three to six large glyphs scattered over it, as CHW float32."""
    from PIL import Image, ImageDraw

    scale = 3
    drawn_h, drawn_w = int(height * rng.uniform(0.45, 0.8)), width
    background = smooth_field(drawn_h * scale, drawn_w * scale, rng, grid=6, low=90, high=235)
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    glyphs = int(rng.integers(3, 7))
    for i in range(glyphs):
        size = rng.uniform(0.12, 0.2) * drawn_h * scale
        x = (i + rng.uniform(0.1, 0.5)) * drawn_w * scale / glyphs
        y = rng.uniform(0.1, 0.9) * (drawn_h * scale - size)
        _glyph(draw, x, y, size, size, int(size / 9), _ink(rng), rng, cjk=True)
    picture = finish_drawing(image, (drawn_w, drawn_h), rng, noise=2.0)[..., ::-1]  # BGR, as cv2 decodes
    canvas = np.full((height, width, 3), 114, np.uint8)
    canvas[:drawn_h, :drawn_w] = picture
    return canvas.astype(np.float32).transpose(2, 0, 1)
