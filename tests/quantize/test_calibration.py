"""--calibration: .npy, .npz and image folders into per-sample feeds in the source layout."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError
from deploykit.quantize.calibration import load_calibration
from deploykit.core.types import TensorSpec

NHWC = (TensorSpec("image", (1, 8, 8, 3), "float32", "NHWC"),)
NCHW = (TensorSpec("image", (1, 3, 8, 8), "float32", "NCHW"),)


def test_npy_batches_are_split_and_evenly_sampled(tmp_path):
    data = np.arange(10 * 8 * 8 * 3, dtype=np.float64).reshape(10, 8, 8, 3)
    np.save(tmp_path / "c.npy", data)
    calibration = load_calibration(tmp_path / "c.npy", NHWC, samples=4)
    assert [f["image"].shape for f in calibration.feeds] == [(1, 8, 8, 3)] * 4
    assert calibration.feeds[0]["image"].dtype == np.float32
    assert [int(f["image"][0, 0, 0, 0]) for f in calibration.feeds] == [0, 576, 1152, 1728]  # samples 0, 3, 6, 9
    assert calibration.to_json() == {"source": str(tmp_path / "c.npy"), "samples": 4, "available": 10}


def test_npz_by_input_name_and_with_batch_dimension(tmp_path):
    np.savez(tmp_path / "c.npz", image=np.zeros((3, 1, 3, 8, 8), np.float32))
    calibration = load_calibration(tmp_path / "c.npz", NCHW, samples=100)
    assert len(calibration.feeds) == 3 and calibration.feeds[0]["image"].shape == (1, 3, 8, 8)


def test_image_folder_is_resized_scaled_and_laid_out(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 51 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    nchw = load_calibration(tmp_path, NCHW, samples=100)
    nhwc = load_calibration(tmp_path, NHWC, samples=100)
    assert nchw.feeds[0]["image"].shape == (1, 3, 8, 8) and nhwc.feeds[0]["image"].shape == (1, 8, 8, 3)
    assert [round(float(f["image"].max()), 2) for f in nchw.feeds] == [0.0, 0.2, 0.4]


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "c.npy", np.zeros((4, 3, 8, 8), np.float32)), "transposed"),
    (lambda p: np.save(p / "c.npy", np.full((4, 8, 8, 3), np.nan, np.float32)), "NaN"),
    (lambda p: np.savez(p / "c.npz", x=np.zeros((2, 8, 8, 3)), y=np.zeros((2, 8, 8, 3))), "no array for input(s) image"),
    (lambda p: (p / "c.txt").write_text("1 2 3"), "expected a .npy or .npz"),
    (lambda p: np.save(p / "c.npy", np.zeros((0, 8, 8, 3), np.float32)), "holds no samples"),
])
def test_bad_calibration_data_is_an_input_error(tmp_path, make, message):
    make(tmp_path)
    path = next(p for p in tmp_path.iterdir())
    with pytest.raises(InputError) as caught:
        load_calibration(path, NHWC, samples=10)
    assert message in caught.value.message + (caught.value.hint or "")


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_calibration(tmp_path / "missing.npy", NHWC, 10)
    with pytest.raises(InputError, match="holds no images"):
        load_calibration(tmp_path, NHWC, 10)
