"""resample: sample ``x [B, C, H, W]`` at ``coordinates [B, H2, W2, (x, y)]``, bilinear or nearest;
affine: the same sampling at an affine map of the output pixels' coordinates; crop_resize: bilinear
crops of boxes, resized to one size.

Coordinates become pixel positions (0 is the centre of the first pixel): with ``align_corners``
the extreme coordinates are the centres of the corner pixels, without it their outer edges (MIL
reference). Positions outside the image read the padded image the reference describes, which is
what a padding rule applied to each integer neighbour index gives:

- constant: ``padding_value``;    border: the edge pixel;
- reflection: mirrored about the edge pixel's centre, ``|1 2 3| -> 3 2 |1 2 3| 2 1``;
- symmetric: mirrored about the image edge, ``|1 2 3| -> 2 1 |1 2 3| 3 2``.

Nearest sampling rounds half to even, as PyTorch's grid_sample does (MIL does not say; the torch
frontend maps grid_sample onto this op).
"""

from __future__ import annotations

import numpy as np

from .registry import register


def _pixels(coord: np.ndarray, size: int, mode: str, align: bool) -> np.ndarray:
    if mode == "normalized_zero_to_one":
        coord = coord * 2.0 - 1.0
    if align:
        return (coord + 1.0) * 0.5 * (size - 1)
    return ((coord + 1.0) * size - 1.0) * 0.5


def _fold(index: np.ndarray, size: int, padding: str):
    """(index inside [0, size), whether the position lies in the image) under the padding rule."""
    inside = (index >= 0) & (index < size)
    if padding == "border" or (padding == "reflection" and size == 1):
        index = np.clip(index, 0, size - 1)
    elif padding == "reflection":
        period = 2 * (size - 1)
        index = np.abs(index) % period
        index = np.where(index >= size, period - index, index)
    elif padding == "symmetric":
        index = np.where(index < 0, -index - 1, index) % (2 * size)
        index = np.where(index >= size, 2 * size - 1 - index, index)
    return np.clip(index, 0, size - 1), inside


def _sample(args, x, px, py, sampling, padding, pad_value):
    """x sampled at pixel positions px, py of shape [B, N]: [B, C, N]."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)

    def read(iy, ix):
        (fy, in_y), (fx, in_x) = _fold(iy, h, padding), _fold(ix, w, padding)
        values = np.take_along_axis(flat, (fy * w + fx)[:, None, :], axis=2)
        if padding == "constant":
            values = np.where((in_y & in_x)[:, None, :], values, x.dtype.type(pad_value))
        return values

    if sampling == "nearest":
        return read(np.rint(py).astype(np.int64), np.rint(px).astype(np.int64))
    y0, x0 = np.floor(py).astype(np.int64), np.floor(px).astype(np.int64)
    wy, wx = (py - y0).astype(x.dtype)[:, None, :], (px - x0).astype(x.dtype)[:, None, :]
    return ((read(y0, x0) * (1 - wx) + read(y0, x0 + 1) * wx) * (1 - wy)
            + (read(y0 + 1, x0) * (1 - wx) + read(y0 + 1, x0 + 1) * wx) * wy)


@register("resample")
def resample(args):
    x, coordinates = args.tensor("x"), args.tensor("coordinates")
    sampling = args.string("sampling_mode", choices=("bilinear", "nearest"))
    padding = args.string("padding_mode", choices=("constant", "border", "reflection", "symmetric"))
    pad_value = args.scalar("padding_value")
    mode = args.string("coordinates_mode", choices=("normalized_minus_one_to_one", "normalized_zero_to_one"))
    align = bool(args.scalar("align_corners"))
    if x.ndim != 4 or coordinates.ndim != 4 or coordinates.shape[0] != x.shape[0] or coordinates.shape[-1] != 2:
        raise args.unsupported("coordinates", coordinates.shape, f"[B, H2, W2, 2] coordinates for x of shape {x.shape}")
    b, c, h, w = x.shape
    px = _pixels(coordinates[..., 0].astype(np.float64), w, mode, align).reshape(b, -1)
    py = _pixels(coordinates[..., 1].astype(np.float64), h, mode, align).reshape(b, -1)
    out = _sample(args, x, px, py, sampling, padding, pad_value)
    return out.reshape((b, c) + coordinates.shape[1:3])


def _output_grid(size: int, align: bool) -> np.ndarray:
    """Normalized [-1, 1] coordinates of each output pixel's centre (PyTorch's affine_grid rule)."""
    if align:
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


@register("affine")
def affine(args):
    # output (x, y) reads the input at x' = a0 x + a1 y + a2, y' = b0 x + b1 y + b2 (normalized coordinates)
    x, matrix = args.tensor("x"), args.tensor("transform_matrix")
    out_h, out_w = int(args.scalar("output_height")), int(args.scalar("output_width"))
    sampling = args.string("sampling_mode", choices=("bilinear",))
    padding = args.string("padding_mode", choices=("constant",))
    pad_value = args.scalar("padding_value")
    args.string("coordinates_mode", choices=("normalized_minus_one_to_one",))
    align = bool(args.scalar("align_corners"))
    if x.ndim != 4 or matrix.ndim != 2 or matrix.shape[1] != 6 or matrix.shape[0] not in (1, x.shape[0]):
        raise args.unsupported("transform_matrix", matrix.shape, f"[1 or B, 6] for x of shape {x.shape}")
    gy, gx = np.meshgrid(_output_grid(out_h, align), _output_grid(out_w, align), indexing="ij")
    m = np.broadcast_to(matrix.astype(np.float64), (x.shape[0], 6))
    u = m[:, 0, None] * gx.reshape(1, -1) + m[:, 1, None] * gy.reshape(1, -1) + m[:, 2, None]
    v = m[:, 3, None] * gx.reshape(1, -1) + m[:, 4, None] * gy.reshape(1, -1) + m[:, 5, None]
    mode = "normalized_minus_one_to_one"
    b, c, h, w = x.shape
    out = _sample(args, x, _pixels(u, w, mode, align), _pixels(v, h, mode, align), sampling, padding, pad_value)
    return out.reshape(b, c, out_h, out_w)


_BOX_ORDER = {"CORNERS_HEIGHT_FIRST": (0, 1, 2, 3), "CORNERS_WIDTH_FIRST": (1, 0, 3, 2)}  # -> y1, x1, y2, x2


def _crop_positions(start, end, size: int) -> np.ndarray:
    """ALIGN_CORNERS across a box: the ends map to the first and last samples; one sample takes the centre."""
    if size == 1:
        return ((start + end) / 2)[:, None]
    return start[:, None] + np.arange(size)[None, :] * ((end - start) / (size - 1))[:, None]


@register("crop_resize")
def crop_resize(args):
    # ALIGN_CORNERS is what coremltools' TensorFlow frontend maps tf.image.crop_and_resize onto, and
    # what its on-device tests check; they keep every box inside the image because crops that reach
    # outside are unstable on device (rdar://98749492), so such samples are refused here.
    x = args.tensor("x")
    th, tw = int(args.scalar("target_height", 1)), int(args.scalar("target_width", 1))
    args.string("sampling_mode", "DEFAULT", choices=("ALIGN_CORNERS",))
    order = _BOX_ORDER[args.string("box_coordinate_mode", "CORNERS_HEIGHT_FIRST", choices=tuple(_BOX_ORDER))]
    normalized = bool(args.scalar("normalized_coordinates", False))
    scale = float(args.scalar("spatial_scale", 1.0))
    args.scalar("pad_value", 0.0)  # only used outside the image, which is refused below
    b, c, h, w = x.shape
    if args.has("boxes"):  # iOS17: boxes [N, 4], box_indices [N] (default 0..N-1), output [N, C, th, tw]
        boxes = args.tensor("boxes").astype(np.float64).reshape(-1, 4)
        images = args.optional("box_indices")
        images = np.arange(len(boxes)) if images is None else images.astype(np.int64).reshape(-1)
        per_image = False
    else:  # roi [N, 1, 4 or 5, 1, 1]; with 5 the first entry is the image index, else every image is cropped
        roi = args.tensor("roi").astype(np.float64).reshape(args.tensor("roi").shape[0], -1)
        per_image = roi.shape[1] == 4
        if not per_image and b != 1:
            # The reference says [N, 1, C, h, w] here, coremltools declares [N, B, C, h, w]; both
            # agree only for a single image (the case coremltools' frontend tests exercise).
            raise args.unsupported("roi", roi.shape, "rois with image indices are only defined for one image")
        images = np.repeat(np.arange(b)[None], len(roi), 0).reshape(-1) if per_image else roi[:, 0].astype(np.int64)
        boxes = np.repeat(roi, b, 0) if per_image else roi[:, 1:]
    if images.size and (images.min() < 0 or images.max() >= b):
        raise args.unsupported("box_indices", images.tolist(), f"image indices within [0, {b})")
    if normalized and scale != 1.0:
        raise args.unsupported("spatial_scale", scale, "how it combines with normalized coordinates is unspecified")
    y1, x1, y2, x2 = (boxes[:, i] for i in order)
    factors = (h - 1, w - 1) if normalized else (scale, scale)
    ys = _crop_positions(y1 * factors[0], y2 * factors[0], th)
    xs = _crop_positions(x1 * factors[1], x2 * factors[1], tw)
    if ys.size and (ys.min() < 0 or ys.max() > h - 1 or xs.min() < 0 or xs.max() > w - 1):
        raise args.unsupported("boxes", "outside the image", "crops reaching outside the image are not reproduced")
    py = np.repeat(ys, tw, axis=1)
    px = np.tile(xs, (1, th))
    out = _sample(args, x[images], px, py, "bilinear", "border", 0.0).reshape(len(images), c, th, tw)
    if args.has("boxes"):
        return out
    return out.reshape(-1, b, c, th, tw) if per_image else out[:, None]
