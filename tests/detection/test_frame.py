"""``detection.frame``: boxes from the model input's pixels back to the picture's, per resize mode, on hand-computed
numbers and on real pixels (a rectangle painted into a picture, fitted as predict fits it, found again)."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.detection.frame import picture_frame
from deploykit.image_io.resize import fit
from deploykit.image_io.spec import ImageInput


def test_letterbox_maps_a_known_box_back_exactly():
    # 200x100 into 64x64: scale 0.32, the picture 64x32 pasted 16 rows down
    frame = picture_frame(ImageInput("x", resize="letterbox", fill=114), (64, 64), (200, 100))
    assert frame.scale == (200 / 64, 100 / 32) and frame.offset == (0.0, 16.0) and frame.in_picture
    in_input = np.array([[16.0, 22.4, 48.0, 41.6]])  # the picture's (50, 20, 150, 80) after the letterbox
    np.testing.assert_allclose(frame.to_picture(in_input), [[50.0, 20.0, 150.0, 80.0]], atol=1e-9)
    np.testing.assert_allclose(frame.to_input([[50.0, 20.0, 150.0, 80.0]]), in_input, atol=1e-9)


def test_letterbox_cuts_a_box_at_the_picture_edge():
    frame = picture_frame(ImageInput("x", resize="letterbox"), (64, 64), (200, 100))
    # from the top padding (row 4) to row 40: the picture starts at row 16
    out = frame.to_picture([[-3.0, 4.0, 70.0, 40.0]])
    np.testing.assert_allclose(out, [[0.0, 0.0, 200.0, 75.0]])
    np.testing.assert_allclose(frame.to_picture([[-3.0, 4.0, 70.0, 40.0]], clip=False), [[-9.375, -37.5, 218.75, 75.0]])


def test_stretch_scales_each_axis():
    frame = picture_frame(ImageInput("x", resize="stretch"), (60, 90), (300, 150))  # input 90 wide, 60 high
    assert frame.offset == (0.0, 0.0)
    np.testing.assert_allclose(frame.to_picture([[9.0, 6.0, 45.0, 30.0]]), [[30.0, 15.0, 150.0, 75.0]])


def test_shorter_side_adds_the_cut_back():
    # 320x240 into 224x224 at crop fraction 0.875: scaled to cover at 256 rows -> 341x256, the centre cut at
    # (58, 16); the input's corners are those points of the scaled picture
    frame = picture_frame(ImageInput("x", resize="shorter-side", crop_fraction=0.875), (224, 224), (320, 240))
    assert frame.offset == (-58.0, -16.0)
    np.testing.assert_allclose(frame.to_picture([[0.0, 0.0, 224.0, 224.0]]),
                               [[58 * 320 / 341, 15.0, 282 * 320 / 341, 225.0]])


def test_a_tensor_input_keeps_the_input_pixels():
    frame = picture_frame(None, (48, 64), (640, 480))
    assert not frame.in_picture and frame.size == (64, 48) and "model input's pixels" in frame.description
    np.testing.assert_allclose(frame.to_picture([[1.5, 2.0, 70.0, 30.0]]), [[1.5, 2.0, 64.0, 30.0]])


MODES = {"stretch": {}, "letterbox": {"fill": 114}, "shorter-side": {"crop_fraction": 0.875}}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("size", [(203, 97), (90, 151)])
def test_a_painted_rectangle_is_found_where_it_was_painted(mode, size):
    """The rectangle found in the fitted pixels, mapped back, is the painted one within the resampling's blur:
    at most one input pixel, in the picture's pixels."""
    from PIL import Image

    width, height = size
    box = np.array([0.3 * width, 0.35 * height, 0.7 * width, 0.65 * height]).round()
    pixels = np.full((height, width, 3), 30, np.uint8)
    x1, y1, x2, y2 = box.astype(int)
    pixels[y1:y2, x1:x2] = 230
    image = ImageInput("x", resize=mode, interpolation="nearest", **MODES[mode])
    fitted = fit(Image.fromarray(pixels), image, 48, 64)[..., 0]
    rows, cols = np.nonzero(fitted > 180)
    found = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], np.float64)
    frame = picture_frame(image, (48, 64), size)
    mapped = frame.to_picture(found)[0]
    assert np.abs(mapped - box).max() <= max(frame.scale) + 1e-9, (mapped, box)
