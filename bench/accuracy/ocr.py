"""The OCR set: rendered text lines for PP-OCRv4's recogniser, its preprocessing, greedy CTC decoding and
the two metrics (character accuracy, line accuracy).

    from bench.accuracy.ocr import build_set, score_folder
    lines = build_set(300)                      # deterministic: the same pixels on every run
    score_folder("dist/ppocr-out")              # {"ppocrv4-rec.fp32.tflite": {"char_accuracy": ...}, ...}

Everything the recogniser needs is read from the wheel the model ships in
(bench/corpus/models/_wheels/rapidocr_onnxruntime-1.3.24, ``unzip -p WHEEL MEMBER``):

- the dictionary is the ONNX model's metadata key ``character`` (``utils/infer_engine.py``
  ``get_character_list``: ``splitlines()``), 6623 lines; ``ch_ppocr_v3_rec/utils.py`` ``CTCLabelDecode``
  puts the CTC blank at index 0 and appends a space at the end: 6625 classes, the model's last axis.
- decoding (``CTCLabelDecode.__call__`` / ``decode``): argmax per time step, skip index 0, skip a step
  equal to the one before it. Nothing is stripped.
- preprocessing (``ch_ppocr_v3_rec/text_recognize.py`` ``resize_norm_img``): an OpenCV BGR image resized
  to height 48 and width ``ceil(48 * w / h)`` capped at the canvas width, ``cv2.resize`` bilinear,
  ``x / 255``, ``-= 0.5``, ``/= 0.5``, HWC -> CHW, zeros on the right up to the canvas width. rapidocr
  sizes the canvas to the batch's widest line (``int(48 * max_wh_ratio)``); the artifacts here have a
  static 48 x 320 input (the corpus entry's ``x=1x3x48x320``), PaddleOCR's own canvas, so every line is
  rendered to fit 320 / 48 and the canvas is 320 (``max_wh_ratio`` starting at 320 / 48, as PaddleOCR and
  rapidocr 3.x do). OpenCV is not in the environment: ``resize_bilinear`` is OpenCV's INTER_LINEAR
  mapping (pixel centres, edge clamping) in float64, rounded to uint8; OpenCV's 11-bit fixed-point weights
  can differ from it by one grey level on some pixels.

Rendering (``render_line``): Pillow draws the words in black-ish ink on light paper, crops to the text
with a few pixels of margin, blurs lightly and adds sensor noise, all drawn from a generator seeded by the
line's index, so line k is the same whatever the set's size. Two scripts:

- ``latin``: English words, numbers, prices, dates and codes, in the DejaVu families Debian ships
  (fonts-dejavu-core, fonts-dejavu-extra: Sans, Sans Condensed, Serif, Serif Condensed, Mono, each in
  regular, bold and oblique/italic). Always available; the set other code scores against.
- ``cjk``: common Chinese words with digits, in WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``).
  Only when that font is installed (``apt-get install fonts-wqy-microhei``); skipped otherwise.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "bench" / "corpus" / "models" / "ppocrv4-rec" / "model.onnx"
INPUT_NAME = "x"  # the ONNX input's name (the recogniser's only input)
HEIGHT, WIDTH = 48, 320
SEED = 20261207

FONT_DIR = Path("/usr/share/fonts/truetype")
LATIN_FONTS = tuple(f"dejavu/{name}.ttf" for name in (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansCondensed", "DejaVuSansCondensed-Bold",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerifCondensed", "DejaVuSansMono",
    "DejaVuSansMono-Bold"))
CJK_FONTS = ("wqy/wqy-microhei.ttc",)
# One line in CJK_EVERY is CJK when its font is there (the set's Latin lines keep their indices either way).
CJK_EVERY = 4

WORDS = """the of and to in is for on that with as by at from this be are was it or an have not which but all
they more one new can we will about time there were their other people would first may year into only some
could these two also after most made over such many through where back world well between state years under
city water before high great school part number since company system each program small world total order
price market account report office north south east west daily value paper table figure page section
chapter result model image input output layer mobile phone camera photo print sample text line letter
digit label check quick brown fox jumps lazy dog hello world invoice receipt amount balance customer street
avenue road station airport hotel coffee green black white orange yellow purple silver golden river
mountain garden window kitchen monday friday sunday january march july october december""".split()
CJK_WORDS = """中国 北京 上海 公司 时间 今天 我们 学生 老师 工作 问题 发展 经济 社会 文化 历史 科学 技术 电话 地址
价格 数量 日期 金额 银行 医院 学校 大学 市场 服务 管理 信息 系统 网络 手机 电脑 汽车 火车 飞机 城市 国家 人民
政府 工业 农业 生产 产品 质量 安全 环境 教育 研究 设计 方法 结果 报告 文件 合同 部门 中心 天气 东西 南北 左右
上下 水果 米饭 面条 朋友 家庭 孩子 父亲 母亲 名字 号码 姓名 年龄 性别 地区 广东 江苏 浙江 山东 河南 四川 湖北
火锅 茶叶 咖啡 书店 超市 商店 饭店 公园 广场 大街 小区 门口 出口 入口 开始 结束 欢迎 谢谢 请问""".split()


@dataclass(frozen=True)
class Line:
    """One rendered text line: its label, the BGR uint8 picture and the recogniser's input (1x3x48x320)."""

    index: int
    script: str  # "latin" or "cjk"
    text: str
    font: str
    size: int
    image: np.ndarray  # H x W x 3 uint8, BGR (what cv2.imread gives rapidocr)
    tensor: np.ndarray  # 1 x 3 x 48 x 320 float32


# ---- the dictionary and decoding


@lru_cache(maxsize=4)
def characters(model_path: str = str(MODEL)) -> tuple[str, ...]:
    """The recogniser's classes: the CTC blank, the dictionary lines, a space (rapidocr's CTCLabelDecode)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return ("blank", *meta["character"].splitlines(), " ")


def ctc_greedy(probs: np.ndarray, classes) -> list[str]:
    """Greedy CTC decoding of ``probs`` (batch x time x classes, or time x classes), rapidocr's way: the best
    class per step, a step repeating the step before it dropped, the blank (index 0) dropped. Leading and
    trailing spaces are stripped: the recogniser reads a line's margins as the space class, which rapidocr
    passes on and an app strips (the labels have none)."""
    probs = np.asarray(probs)
    if probs.ndim == 2:
        probs = probs[None]
    texts = []
    for best in probs.argmax(axis=-1):
        kept = [int(c) for i, c in enumerate(best) if c != 0 and not (i > 0 and best[i - 1] == c)]
        texts.append("".join(classes[c] for c in kept).strip(" "))
    return texts


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def metrics(predicted, labels) -> dict:
    """Character accuracy ``1 - sum(edit distance) / sum(label length)`` over all lines (can go below 0 when a
    model writes much more than the labels hold) and line accuracy (exact matches / lines), as fractions."""
    predicted, labels = list(predicted), list(labels)
    if len(predicted) != len(labels) or not labels:
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    errors = sum(edit_distance(p, t) for p, t in zip(predicted, labels))
    characters_total = sum(len(t) for t in labels)
    exact = sum(p == t for p, t in zip(predicted, labels))
    return {"char_accuracy": 1.0 - errors / characters_total, "line_accuracy": exact / len(labels),
            "lines": len(labels), "characters": characters_total, "edit_distance": errors}


# ---- preprocessing


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image, (width, height))`` (INTER_LINEAR) for a uint8 H x W x C picture: OpenCV's pixel-centre
    mapping ``(d + 0.5) * scale - 0.5`` with the source index clamped at both edges, then rounded to uint8."""
    src = image.astype(np.float64)
    h, w = src.shape[:2]

    def taps(size_in: int, size_out: int):
        pos = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
        low = np.floor(pos).astype(np.int64)
        frac = pos - low
        frac[low < 0] = 0.0
        low = np.clip(low, 0, size_in - 1)
        frac[low >= size_in - 1] = 0.0
        high = np.minimum(low + 1, size_in - 1)
        return low, high, frac

    y0, y1, fy = taps(h, height)
    x0, x1, fx = taps(w, width)
    rows = src[y0] * (1 - fy)[:, None, None] + src[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def preprocess(image: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """rapidocr's ``resize_norm_img`` on a canvas of ``width``: 1 x 3 x height x width float32 in [-1, 1]."""
    h, w = image.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / float(h))))
    resized = resize_bilinear(image, height, resized_w).astype(np.float32)
    resized = resized.transpose(2, 0, 1) / 255
    resized -= 0.5
    resized /= 0.5
    canvas = np.zeros((3, height, width), dtype=np.float32)
    canvas[:, :, :resized_w] = resized
    return canvas[None]


# ---- rendering


def available_scripts() -> tuple[str, ...]:
    return ("latin", "cjk") if all((FONT_DIR / f).is_file() for f in CJK_FONTS) else ("latin",)


def _check_fonts(names) -> None:
    missing = [str(FONT_DIR / f) for f in names if not (FONT_DIR / f).is_file()]
    if missing:
        raise FileNotFoundError(f"fonts missing: {', '.join(missing)} (apt-get install fonts-dejavu-core "
                                "fonts-dejavu-extra fonts-wqy-microhei)")


def _latin_text(rng) -> str:
    kind = rng.random()
    if kind < 0.55:
        words = [str(rng.choice(WORDS)) for _ in range(int(rng.integers(1, 5)))]
        style = rng.random()
        if style < 0.25:
            words[0] = words[0].capitalize()
        elif style < 0.35:
            words = [w.upper() for w in words]
        elif style < 0.45:
            words = [w.capitalize() for w in words]
        text = " ".join(words)
        if rng.random() < 0.2:
            text += str(rng.choice([".", ",", ":", "!", "?"]))
    elif kind < 0.65:
        text = f"{rng.choice(['$', ''])}{rng.integers(1, 9999)}.{rng.integers(0, 100):02d}"
    elif kind < 0.75:
        text = f"{rng.integers(1990, 2031)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    elif kind < 0.85:
        letters = "".join(chr(int(c)) for c in rng.integers(65, 91, size=int(rng.integers(2, 4))))
        text = f"{letters}-{rng.integers(100, 99999)}"
    else:
        text = f"{str(rng.choice(WORDS)).capitalize()} {rng.integers(1, 999)}"
    return text


def _cjk_text(rng) -> str:
    parts = [str(rng.choice(CJK_WORDS)) for _ in range(int(rng.integers(1, 4)))]
    if rng.random() < 0.3:
        parts.insert(int(rng.integers(0, len(parts) + 1)), str(rng.integers(1, 2031)))
    return "".join(parts)


def render_line(index: int, script: str | None = None, seed: int = SEED) -> Line:
    """Line ``index`` of the set: text, font, size, colours, margins, blur and noise from ``seed`` and ``index``
    only. The text is shortened until the picture fits the 320 x 48 canvas without squeezing."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    if script is None:
        script = "cjk" if "cjk" in available_scripts() and index % CJK_EVERY == CJK_EVERY - 1 else "latin"
    fonts = CJK_FONTS if script == "cjk" else LATIN_FONTS
    _check_fonts(fonts)
    rng = np.random.default_rng([seed, index, 1 if script == "cjk" else 0])
    font_name = str(rng.choice(fonts))
    size = int(rng.integers(14, 41))  # small sizes are upsampled to 48: soft, like a low-resolution scan
    font = ImageFont.truetype(str(FONT_DIR / font_name), size)
    text = (_cjk_text if script == "cjk" else _latin_text)(rng)
    margins = rng.integers(1, 7, size=2), rng.integers(2, 9, size=2)  # (top, bottom), (left, right)
    paper = rng.integers(180, 256) - rng.integers(0, 20, size=3)
    ink = rng.integers(0, 100) + rng.integers(0, 25, size=3)
    blur, noise = float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 8.0))
    while True:
        left, top, right, bottom = font.getbbox(text)
        width = right - left + int(margins[1].sum())
        height = bottom - top + int(margins[0].sum())
        if width * HEIGHT <= WIDTH * height or len(text) <= 2:
            break
        # Whole words go first (a CJK line is one run of characters), then characters.
        text = text.rsplit(" ", 1)[0] if " " in text else text[:-1]
    picture = Image.new("RGB", (width, height), tuple(int(v) for v in paper))
    ImageDraw.Draw(picture).text((int(margins[1][0]) - left, int(margins[0][0]) - top), text, font=font,
                                 fill=tuple(int(v) for v in ink))
    if blur > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(blur))
    rgb = np.asarray(picture, dtype=np.float64) + rng.normal(0.0, noise, size=(height, width, 3))
    bgr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)[:, :, ::-1].copy()
    return Line(index, script, text, font_name, size, bgr, preprocess(bgr))


def build_set(count: int, seed: int = SEED) -> list[Line]:
    lines = [render_line(i, seed=seed) for i in range(count)]
    if MODEL.is_file():  # every label must be writable by the recogniser, or no variant could reach 100 %
        unknown = {c for line in lines for c in line.text} - set(characters())
        if unknown:
            raise ValueError(f"characters outside the recogniser's dictionary: {''.join(sorted(unknown))}")
    return lines


def fingerprint(lines) -> str:
    """sha256 of every line's text and pixels: two runs rendered the same set when these are equal."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.text.encode())
        digest.update(line.image.tobytes())
    return digest.hexdigest()


def write_set(lines, folder: Path, name: str = "ocr") -> tuple[Path, Path]:
    """``name.npz`` (key ``x``: N x 3 x 48 x 320 float32, what ``deploykit convert --calibration`` / ``--data``
    read) and ``name.labels.txt`` (one label per line, in the same order)."""
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = folder / f"{name}.npz", folder / f"{name}.labels.txt"
    np.savez(data, **{INPUT_NAME: np.concatenate([line.tensor for line in lines]).astype(np.float32)})
    labels.write_text("".join(f"{line.text}\n" for line in lines), encoding="utf-8")
    return data, labels


def read_set(folder: Path, name: str = "ocr") -> tuple[np.ndarray, list[str]]:
    data = np.load(folder / f"{name}.npz")[INPUT_NAME]
    labels = (folder / f"{name}.labels.txt").read_text(encoding="utf-8").split("\n")[:len(data)]
    return data, labels


# ---- scoring artifacts


def recognise(predict, tensors: np.ndarray, classes=None) -> list[str]:
    """Texts ``predict`` (one 1x3x48x320 NCHW array -> the 1 x T x 6625 probabilities) reads in ``tensors``."""
    classes = classes or characters()
    return [ctc_greedy(predict(tensors[i:i + 1]), classes)[0] for i in range(len(tensors))]


def score_predict(predict, lines) -> dict:
    """Both metrics for ``predict`` over ``lines``, in total and per script."""
    texts = recognise(predict, np.concatenate([line.tensor for line in lines]))
    result = metrics(texts, [line.text for line in lines])
    for script in sorted({line.script for line in lines}):
        chosen = [i for i, line in enumerate(lines) if line.script == script]
        result[script] = metrics([texts[i] for i in chosen], [lines[i].text for i in chosen])
    result["texts"] = texts
    return result


def score_folder(folder, lines=None, count: int = 300, artifacts=None, reference: str = "fp32") -> dict:
    """Score every recogniser artifact of a ``deploykit convert --out`` folder (or of the folders in it) on the
    OCR set.

    Returns ``{artifact: {"target", "variant", "char_accuracy", "line_accuracy", "lines", "char_accuracy_drop":
    points below the ``reference`` variant of the same target and record, ...}}``, keyed by file name (by
    ``out-folder/file name`` when several records are scored). ``lines`` defaults to the first ``count`` lines of
    the set (the ``latin`` and, when its font exists, ``cjk`` lines); ``artifacts`` limits it to these file
    names. A check of ``--quantize auto --max-accuracy-drop 1``: every ``char_accuracy_drop`` <= 1.0.
    """
    from bench.accuracy.artifacts import artifacts_of, open_artifact, reports_in

    lines = lines if lines is not None else build_set(count)
    several = len(reports_in(Path(folder))) > 1
    found = {}
    for item in artifacts_of(Path(folder), artifacts):
        with open_artifact(item) as predict:
            scored = score_predict(predict, lines)
        scored.pop("texts")
        key = f"{item.path.parent.name}/{item.path.name}" if several else item.path.name
        found[key] = {"target": item.target, "variant": item.variant, "record": str(item.path.parent), **scored}
    for row in found.values():
        base = [r for r in found.values()
                if (r["target"], r["record"], r["variant"]) == (row["target"], row["record"], reference)]
        if base:
            row["char_accuracy_drop"] = round(100 * (base[0]["char_accuracy"] - row["char_accuracy"]), 3)
    return found
