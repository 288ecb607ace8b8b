"""Parity data for the corpus: per model family, synthetic samples that look like the model's real input
after the project's own preprocessing, generated deterministically (nothing is downloaded, nothing
third-party is committed).

    make_inputs("ppocrv4-det", {"x": (1, 3, 320, 320)})  ->  {"x": float32 array (8, 3, 320, 320)}

Why: seeded uniform(-1, 1) noise is not what these models see. On PP-OCRv4's text detector it drives
every logit to -50..-7, so the sigmoid output peaks at 7.8e-4 and ONNX Runtime's own approximate
Sigmoid is 1.75e-4 of that peak away from float64: the reference itself fails the fp32 bound. A page
with text gives the detector the probability map it was trained to produce (peaks near 1).

Each array stacks ``n`` samples on the batch axis (``n * batch`` rows), the layout
``deploykit convert --data`` reads (deploykit/parity/inputs.py ``_split``). Images are drawn with
Pillow (supersampled, then downsampled), quantized to uint8 like a decoded file, then normalized
exactly as the project's preprocessing does. The preprocessing constants are quoted from each
project's wheel, in bench/corpus/models/_wheels (``unzip -p WHEEL MEMBER``):

- rapidocr_onnxruntime 1.3.24 (PP-OCRv4 det, rec; PP-OCR cls), rapidocr 3.10.0 (PP-OCRv6 det, rec):
  images are OpenCV BGR (``utils/load_image.py`` converts RGB inputs with COLOR_RGB2BGR) and the
  channel mean/std are applied in that order without swapping.
  * det v4 ``ch_ppocr_v3_det/utils.py`` DetPreProcess: ``(img * 1/255 - [0.485, 0.456, 0.406]) /
    [0.229, 0.224, 0.225]``, HWC -> CHW.
  * det v6 ``rapidocr/config.yaml`` Det: ``mean: [0.5, 0.5, 0.5]``, ``std: [0.5, 0.5, 0.5]`` fed to
    ``ch_ppocr_det/utils.py`` DetPreProcess (same formula). Not ImageNet: rapidocr 3.x changed it.
  * rec ``ch_ppocr_v3_rec/text_recognize.py`` / ``ch_ppocr_rec/main.py`` resize_norm_img: resize to
    height 48 keeping the aspect ratio (width ``ceil(48 * w / h)`` capped at the input width),
    ``x / 255``, ``-= 0.5``, ``/= 0.5``, zero padding on the right (0 in normalized units).
  * cls ``ch_ppocr_v2_cls/text_cls.py`` resize_norm_img: the same on a 48 x 192 canvas.
- rapid_layout 0.3.0 ``utils/pre_procss.py`` PPPreProcess: cv2.resize to 800 x 608 (h x w, from
  ``main.py`` ``PPPreProcess(img_size=(800, 608))``), ``(x / 255 - [0.485, 0.456, 0.406]) /
  [0.229, 0.224, 0.225]``, BGR as loaded.
- nudenet 3.4.2 ``nudenet.py`` _read_image: pad bottom/right to a square with black
  (``cv2.copyMakeBorder(..., 0, y_pad, 0, x_pad, BORDER_CONSTANT)``), ``cv2.dnn.blobFromImage(mat,
  1 / 255.0, (320, 320), (0, 0, 0), swapRB=True)``: RGB in [0, 1], no mean.
- ddddocr 1.6.1 ``core/detection_engine.py`` (the click-captcha detector, YOLOX-tiny): the picture resized
  to fit 416 x 416 keeping its aspect ratio, pasted top-left over ``np.ones(...) * 114``, BGR as cv2 decodes,
  ``float32`` 0..255 without normalization; decode ``demo_postprocess`` (strides 8, 16, 32), NMS 0.45,
  score threshold 0.1, class-agnostic.
- facenet-pytorch 2.6.0 ``models/utils/detect_face.py``: RGB images, ``imresample`` (area
  interpolation, so values are not re-quantized) to the stage's size, ``(x - 127.5) * 0.0078125``.
- ONNX model zoo (Caffe2 exports; the corpus gives them seeded weights): the zoo's ImageNet
  preprocessing, RGB ``(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``.
- openwakeword 0.4.0 ``utils.py`` AudioFeatures: 16 kHz int16 PCM cast to float32 (no scaling),
  melspectrogram on ``raw_data_buffer[-n_samples - 160 * 3:]`` (1280 + 480 = 1760 samples per
  streaming step), then ``melspec_transform = x / 10 + 2``; embeddings on windows of 76 mel frames
  (``window_size=76``, ``step_size=8``), input ``(1, 76, 32, 1)``; the wake-word heads take the
  last 16 embeddings (``get_features(n_feature_frames=16)``), ``(1, 16, 96)``.
- silero-vad 6.2.3 ``sequence_vad.py``: float audio in [-1, 1], frames of 512 samples at 16 kHz,
  each prefixed with the previous frame's last 64 samples (zeros for the first frame:
  ``RATE_CONFIG[16000] = (512, 64)``, ``frame_blocks``), states ``h = c = zeros((1, 1, 128))``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from bench.corpus.audio_inputs import oww_embeddings, oww_mel_windows, silero_inputs, speech_int16
from bench.corpus.image_inputs import captcha, document, face_crop, letterboxed, natural, normalize, textline_tensor

MODELS = Path(__file__).resolve().parent / "models"
# Entries whose inputs are computed with other corpus models (openWakeWord's chain): built before them.
NEEDS = {"oww-embedding": ("oww-melspectrogram",), "oww-hey-jarvis": ("oww-melspectrogram", "oww-embedding")}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

# det: (mean, std) of the wheel that ships the model (see the module docstring)
DET_NORM = {"ppocrv4-det": (IMAGENET_MEAN, IMAGENET_STD), "ppocrv6-det": (HALF, HALF)}


def family(entry_name: str) -> str | None:
    """Which generator feeds ``entry_name``, or None when there is none."""
    if entry_name in DET_NORM:
        return "ppocr-det"
    if entry_name in ("ppocrv4-rec", "ppocrv6-rec", "ppocr-cls"):
        return "ppocr-textline"
    if entry_name == "layout-cdla":
        return "picodet-layout"
    if entry_name.startswith("nudenet-"):
        return "yolov8"
    if entry_name == "ddddocr-det":
        return "yolox-captcha"
    if entry_name.startswith("mtcnn-"):
        return "mtcnn"
    if entry_name.startswith("zoo-"):
        return "imagenet"
    if entry_name in ("oww-melspectrogram", "oww-embedding", "oww-hey-jarvis"):
        return entry_name
    if entry_name.startswith("silero-vad"):
        return "silero-vad"
    return None


def make_inputs(entry_name: str, input_specs: dict[str, tuple[int, ...]], n: int = 8, seed: int = 0, *,
                models: Path = MODELS) -> dict[str, np.ndarray]:
    """``n`` samples per input of ``entry_name``, stacked on the batch axis (float32).

    ``input_specs`` maps each model input name to its shape (batch first). ``models`` is the corpus
    folder, for the audio chain (oww-embedding's features come from the corpus's melspectrogram
    model, oww-hey-jarvis's from its embedding model, run with ONNX Runtime).
    """
    kind = family(entry_name)
    if kind is None:
        raise KeyError(f"no input generator for corpus entry {entry_name!r}")
    rng = np.random.default_rng([seed, zlib.crc32(entry_name.encode())])
    specs = {name: tuple(int(d) for d in shape) for name, shape in input_specs.items()}
    if kind == "silero-vad":
        return silero_inputs(specs, n, rng)
    (name, shape), = specs.items()  # every other family has one input
    batch = shape[0]
    count = n * batch
    if kind == "oww-melspectrogram":
        array = np.stack([speech_int16(shape[1], rng) for _ in range(count)])
    elif kind == "oww-embedding":
        array = oww_mel_windows(count, shape, rng, models)
    elif kind == "oww-hey-jarvis":
        array = oww_embeddings(count, shape, rng, models)
    else:
        array = _images(kind, entry_name, shape, count, rng)
    return {name: np.ascontiguousarray(array, dtype=np.float32)}


# ---------------------------------------------------------------------------------------------- images


def _images(kind: str, entry_name: str, shape, count: int, rng) -> np.ndarray:
    _, channels, height, width = shape
    if channels != 3:
        raise ValueError(f"{entry_name}: expected a 3-channel NCHW input, got {shape}")
    out = []
    for _ in range(count):
        if kind == "ppocr-det":
            rgb = document(height, width, rng, dense=False)
            out.append(normalize(rgb[..., ::-1], *DET_NORM[entry_name]))  # BGR, as cv2 loads it
        elif kind == "picodet-layout":
            rgb = document(height, width, rng, dense=True)
            out.append(normalize(rgb[..., ::-1], IMAGENET_MEAN, IMAGENET_STD))
        elif kind == "ppocr-textline":
            out.append(textline_tensor(height, width, rng))
        elif kind == "yolov8":
            out.append(letterboxed(height, width, rng))
        elif kind == "yolox-captcha":
            out.append(captcha(height, width, rng))
        elif kind == "mtcnn":
            rgb = face_crop(height, width, rng, whole_face=entry_name != "mtcnn-pnet")
            out.append(((rgb - 127.5) * 0.0078125).transpose(2, 0, 1))
        elif kind == "imagenet":
            out.append(normalize(natural(height, width, rng), IMAGENET_MEAN, IMAGENET_STD))
        else:
            raise KeyError(kind)
    return np.stack(out)
