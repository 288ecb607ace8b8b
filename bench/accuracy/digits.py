"""The digits classifier of examples/ (examples/make_example_model.py: a 33k-parameter MobileNet-style Keras
network trained on scikit-learn's bundled digits): top-1 on its 297 held-out images.

The model is examples/models/digits.keras when it exists (``bash examples/run_example.sh`` or
``python examples/make_example_model.py examples/models`` makes it, seed 0); otherwise it is trained here the
same way into the work folder. The held-out images are ``digits_split()``'s second half (32 x 32 x 3 in 0..1,
NHWC, the Keras input), the calibration data the first 200 training images, so calibration never sees a
test image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "models" / "digits.keras"
INPUT_NAME = "image"
CALIBRATION_IMAGES = 200


def _example_module():
    sys.path.insert(0, str(REPO / "examples"))
    import make_example_model

    return make_example_model


def held_out() -> tuple[np.ndarray, np.ndarray]:
    (_, _), (x, y) = _example_module().digits_split()
    return x.astype(np.float32), y.astype(np.int64)


def calibration() -> np.ndarray:
    (x, _), _ = _example_module().digits_split()
    return x[:CALIBRATION_IMAGES].astype(np.float32)


def model_path(work: Path) -> Path:
    """examples/models/digits.keras, or one trained into ``work`` with the example's seed and epochs."""
    if EXAMPLE.is_file():
        return EXAMPLE
    made = work / "digits.keras"
    if not made.is_file():
        model, _, _ = _example_module().build_digits_model()
        work.mkdir(parents=True, exist_ok=True)
        model.save(made)
    return made


def top1(predict, x: np.ndarray, y: np.ndarray) -> dict:
    """``predict`` (one 1x32x32x3 array -> class scores) over the held-out set."""
    hits = sum(int(np.argmax(np.asarray(predict(x[i:i + 1])).reshape(-1))) == int(y[i]) for i in range(len(x)))
    return {"top1": hits / len(x), "images": len(x), "correct": hits}


def keras_predict(path: Path):
    import keras

    model = keras.models.load_model(path, safe_mode=True)
    return lambda x: model(x, training=False).numpy()
