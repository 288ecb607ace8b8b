"""Ops the PyTorch frontend does not emit (or not in every form): built as MIL programs and compared
with PyTorch functions or numpy loops written from the MIL reference, element by element."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP16_TOL, FP32_TOL, save_mil, seeded

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from deploykit.core.errors import UnsupportedOperatorError  # noqa: E402

F = torch.nn.functional
X = seeded((1, 4, 6, 6))
T = torch.from_numpy(X)


def _run(build, feeds, tmp_path, target="iOS16"):
    """Save ``build`` (its parameters named like ``feeds``) and evaluate it: outputs in order."""
    from deploykit.runners.coreml_eval import evaluate

    names = build.__code__.co_varnames[:build.__code__.co_argcount]
    specs = [(feeds[n].shape, types.int32) if feeds[n].dtype == np.int32 else
             (feeds[n].shape, types.fp16) if feeds[n].dtype == np.float16 else feeds[n].shape for n in names]
    path = save_mil(build, specs, tmp_path / "op.mlpackage", target=target)
    return list(evaluate(path, {n: feeds[n] for n in names}).values())


def _declared(tmp_path, op_type):
    from deploykit.runners.coreml_eval import load_program

    step = next(s for s in load_program(tmp_path / "op.mlpackage").steps if s.type == op_type)
    return step.outputs[0].dtype.name


def _close(out, expected, tol=FP32_TOL):
    expected = np.asarray(expected)
    assert out.shape == expected.shape
    if out.dtype.kind in "iub":
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out.astype(np.float32), expected, **tol)


# -- normalization and resizing ----------------------------------------------------------------
@pytest.mark.parametrize("size,alpha,beta,k", [(3, 1e-4, 0.75, 1.0), (5, 0.5, 0.6, 2.0), (1, 2.0, 0.5, 1.0)])
def test_local_response_norm(size, alpha, beta, k, tmp_path):
    x = X * 3
    (out,) = _run(lambda x: mb.local_response_norm(x=x, size=size, alpha=alpha, beta=beta, k=k), {"x": x}, tmp_path)
    _close(out, F.local_response_norm(torch.from_numpy(x), size, alpha, beta, k).numpy())


def test_local_response_norm_rank3_fp16(tmp_path):
    x = (X * 3).reshape(1, 4, 36).astype(np.float16)
    (out,) = _run(lambda x: mb.local_response_norm(x=x, size=3, alpha=0.5), {"x": x}, tmp_path, target="iOS17")
    assert out.dtype == np.float16
    _close(out, F.local_response_norm(torch.from_numpy(x.astype(np.float32)), 3, 0.5).numpy(), FP16_TOL)


def test_resize_nearest_neighbor(tmp_path):
    (out,) = _run(lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=12, target_size_width=18), {"x": X}, tmp_path)
    _close(out, F.interpolate(T, size=(12, 18), mode="nearest").numpy())


RESIZE_CASES = {
    # id: (shape, resized_dims, interpolation, sampling, torch reference)
    "linear_unaligned": ([10, 4], 2, "LINEAR", "UNALIGN_CORNERS",
                         lambda: F.interpolate(T, size=(10, 4), mode="bilinear", align_corners=False)),
    "linear_strict_corners": ([1, 9, 5], 2, "LINEAR", "STRICT_ALIGN_CORNERS",
                              lambda: F.interpolate(T, size=(9, 5), mode="bilinear", align_corners=True)),
    "linear_width_only": ([9], 1, "LINEAR", "ALIGN_CORNERS",
                          lambda: F.interpolate(T.reshape(1, 24, 6), size=9, mode="linear", align_corners=True).reshape(1, 4, 6, 9)),
    "nearest_keep_height": ([0, 12], 2, "NEAREST_NEIGHBOR", "DEFAULT",
                            lambda: F.interpolate(T, size=(6, 12), mode="nearest")),
}


@pytest.mark.parametrize("case", list(RESIZE_CASES))
def test_ios17_resize(case, tmp_path):
    shape, dims, interpolation, sampling, reference = RESIZE_CASES[case]
    (out,) = _run(lambda x: mb.resize(x=x, shape=np.array(shape, np.int32), resized_dims=np.uint32(dims),
                                      interpolation_mode=interpolation, sampling_mode=sampling),
                  {"x": X}, tmp_path, target="iOS17")
    _close(out, reference().numpy())


# -- sorting, scans, creation ------------------------------------------------------------------
def test_topk_all_ascending(tmp_path):
    # k=-1 ("all", iOS17) would be the same, but coremltools cannot serialize the -1 dim it infers.
    values, indices = _run(lambda x: mb.topk(x=x, k=4, axis=1, ascending=True), {"x": X}, tmp_path, target="iOS17")
    ref_values, ref_indices = torch.sort(T, dim=1, stable=True)
    _close(values, ref_values.numpy())
    _close(indices, ref_indices.numpy().astype(np.int32))


@pytest.mark.parametrize("ascending", [True, False])
def test_argsort_ties_keep_input_order(ascending, tmp_path):
    x = np.round(X * 2)  # few distinct values, so many ties
    (out,) = _run(lambda x: mb.argsort(x=x, axis=-1, ascending=ascending), {"x": x}, tmp_path)
    _close(out, torch.argsort(torch.from_numpy(x), dim=-1, descending=not ascending, stable=True).numpy().astype(np.int32))


def test_cumsum_exclusive_reverse(tmp_path):
    (out,) = _run(lambda x: mb.cumsum(x=x, axis=-1, exclusive=True, reverse=True), {"x": X}, tmp_path)
    _close(out, (torch.flip(torch.cumsum(torch.flip(T, [-1]), -1), [-1]) - T).numpy())


def test_one_hot(tmp_path):
    indices = np.array([[0, 3, 4], [2, 2, 1]], np.int32)
    (out,) = _run(lambda i: mb.one_hot(indices=i, one_hot_vector_size=5, axis=1, on_value=2.0, off_value=-1.0),
                  {"i": indices}, tmp_path)
    _close(out, F.one_hot(torch.from_numpy(indices).long(), 5).permute(0, 2, 1).numpy() * 3.0 - 1.0)


def test_shape_fill_fill_like(tmp_path):
    def build(x):
        return mb.shape(x=x), mb.fill(shape=mb.shape(x=x), value=2.5), mb.fill_like(ref_tensor=x, value=-1.0)

    shape, filled, like = _run(build, {"x": X}, tmp_path)
    _close(shape, np.array(X.shape, np.int32))
    _close(filled, np.full(X.shape, 2.5, np.float32))
    _close(like, np.full(X.shape, -1.0, np.float32))


def test_range_1d_with_runtime_end(tmp_path):
    (out,) = _run(lambda x: mb.range_1d(start=0.5, end=mb.add(x=mb.reduce_max(x=x), y=3.0), step=0.75), {"x": X}, tmp_path)
    _close(out, np.arange(0.5, X.max() + 3.0, 0.75))


def test_band_part(tmp_path):
    (out,) = _run(lambda x: mb.band_part(x=x, lower=1, upper=0), {"x": X}, tmp_path)
    _close(out, torch.tril(torch.triu(T, -1), 0).numpy())


def test_sliding_windows(tmp_path):
    (out,) = _run(lambda x: mb.sliding_windows(x=x, axis=2, size=3, stride=2), {"x": X}, tmp_path)
    _close(out, T.unfold(2, 3, 2).movedim(-1, 3).numpy())


# -- gather and scatter ------------------------------------------------------------------------
def test_gather_nd_batch_dims(tmp_path):
    x = seeded((2, 3, 4, 5), 1)
    indices = np.random.default_rng(2).integers(0, [3, 4], (2, 6, 2)).astype(np.int32)
    (out,) = _run(lambda x, i: mb.gather_nd(x=x, indices=i, batch_dims=1), {"x": x, "i": indices}, tmp_path)
    expected = np.stack([np.stack([x[b, i, j] for i, j in indices[b]]) for b in range(2)])
    _close(out, expected)


def test_gather_nd_negative_indices_before_ios17(tmp_path):
    x = seeded((3, 4, 5), 3)
    indices = np.array([[-1, 2], [0, -4], [2, 3]], np.int32)
    (out,) = _run(lambda x, i: mb.gather_nd(x=x, indices=i), {"x": x, "i": indices}, tmp_path, target="iOS15")
    _close(out, np.stack([x[i, j] for i, j in indices]))


def test_gather_nd_negative_indices_refused_from_ios17(tmp_path):
    feeds = {"x": seeded((3, 4, 5), 3), "i": np.array([[-1, 2]], np.int32)}
    with pytest.raises(UnsupportedOperatorError, match="non-negative"):
        _run(lambda x, i: mb.gather_nd(x=x, indices=i), feeds, tmp_path, target="iOS17")


DATA = seeded((3, 5, 4), 4)
SCATTER_MODES = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum,
                 "min": np.minimum}


@pytest.mark.parametrize("mode", ["update"] + list(SCATTER_MODES))
def test_scatter(mode, tmp_path):
    indices = np.array([4, 1, 2], np.int32) if mode == "update" else np.array([4, 1, 4], np.int32)  # 4 twice
    updates = seeded((3, 3, 4), 5) + 2.0
    (out,) = _run(lambda d, i, u: mb.scatter(data=d, indices=i, updates=u, axis=1, mode=mode),
                  {"d": DATA, "i": indices, "u": updates}, tmp_path)
    expected = DATA.copy()
    for n, index in enumerate(indices):
        if mode == "update":
            expected[:, index] = updates[:, n]
        else:
            expected[:, index] = SCATTER_MODES[mode](expected[:, index], updates[:, n])
    _close(out, expected)


def test_scatter_update_with_repeated_index_is_refused(tmp_path):
    feeds = {"d": DATA, "i": np.array([4, 1, 4], np.int32), "u": seeded((3, 3, 4), 5)}
    with pytest.raises(UnsupportedOperatorError, match="repeated"):
        _run(lambda d, i, u: mb.scatter(data=d, indices=i, updates=u, axis=1, mode="update"), feeds, tmp_path)


@pytest.mark.parametrize("mode", ["add", "min"])
def test_scatter_along_axis(mode, tmp_path):
    indices = np.random.default_rng(6).integers(0, 4, (3, 5, 2)).astype(np.int32)
    updates = seeded((3, 5, 2), 7)
    (out,) = _run(lambda d, i, u: mb.scatter_along_axis(data=d, indices=i, updates=u, axis=-1, mode=mode),
                  {"d": DATA, "i": indices, "u": updates}, tmp_path)
    expected = DATA.copy()
    for a, b, c in np.ndindex(indices.shape):
        expected[a, b, indices[a, b, c]] = SCATTER_MODES[mode](expected[a, b, indices[a, b, c]], updates[a, b, c])
    _close(out, expected)


@pytest.mark.parametrize("mode", ["add", "update", "mul"])
def test_scatter_nd(mode, tmp_path):
    indices = np.array([[0, 1], [2, 4], [1, 0], [0, 1]] if mode != "update" else [[0, 1], [2, 4], [1, 0]], np.int32)
    updates = seeded((len(indices), 4), 8)
    (out,) = _run(lambda d, i, u: mb.scatter_nd(data=d, indices=i, updates=u, mode=mode),
                  {"d": DATA, "i": indices, "u": updates}, tmp_path)
    expected = torch.from_numpy(DATA.copy())
    index = tuple(torch.from_numpy(indices.T.astype(np.int64)))
    if mode == "update":
        expected.index_put_(index, torch.from_numpy(updates))
    elif mode == "add":
        expected.index_put_(index, torch.from_numpy(updates), accumulate=True)
    else:
        expected = expected.numpy()
        for (a, b), u in zip(indices, updates):
            expected[a, b] *= u
    _close(out, np.asarray(expected))


# -- reordering --------------------------------------------------------------------------------
def test_reverse_sequence(tmp_path):
    lengths = np.array([0, 3, 6, 1], np.int32)
    (out,) = _run(lambda x, n: mb.reverse_sequence(x=x, lengths=n, seq_axis=2, batch_axis=1),
                  {"x": X, "n": lengths}, tmp_path)
    expected = X.copy()
    for b, n in enumerate(lengths):
        expected[:, b, :n] = X[:, b, :n][:, ::-1]
    _close(out, expected)


def test_reverse_all_dims(tmp_path):
    (out,) = _run(lambda x: mb.reverse(x=x), {"x": X}, tmp_path)
    _close(out, torch.flip(T, [0, 1, 2, 3]).numpy())


# TensorFlow's definitions (NHWC there; n, c, h, w here), written out one element at a time.
def test_space_to_depth_and_depth_to_space(tmp_path):
    x = seeded((2, 3, 4, 6), 9)
    b = 2
    (to_depth,) = _run(lambda x: mb.space_to_depth(x=x, block_size=b), {"x": x}, tmp_path)
    expected = np.empty((2, 12, 2, 3), np.float32)
    for n, c, h, w in np.ndindex(x.shape):  # output channel: block row, block column, then channel
        expected[n, ((h % b) * b + w % b) * 3 + c, h // b, w // b] = x[n, c, h, w]
    _close(to_depth, expected)
    y = seeded((1, 8, 2, 3), 10)
    (back,) = _run(lambda y: mb.depth_to_space(x=y, block_size=b), {"y": y}, tmp_path)
    expected = np.empty((1, 2, 4, 6), np.float32)
    for n, c, h, w in np.ndindex(expected.shape):
        expected[n, c, h, w] = y[n, ((h % b) * b + w % b) * 2 + c, h // b, w // b]
    _close(back, expected)


def test_space_to_batch_and_batch_to_space(tmp_path):
    x = seeded((2, 3, 4, 3), 11)
    (bh, bw), pads = (2, 3), ((1, 1), (0, 3))
    (out,) = _run(lambda x: mb.space_to_batch(x=x, block_shape=np.array([bh, bw], np.int32),
                                              paddings=np.array(pads, np.int32)), {"x": x}, tmp_path)
    padded = np.pad(x, [(0, 0), (0, 0), *pads])
    expected = np.empty((2 * bh * bw, 3, 6 // bh, 6 // bw), np.float32)
    for nb, c, h, w in np.ndindex(expected.shape):  # batch index: block row, block column, then image
        i, j, n = nb // (bw * 2), (nb // 2) % bw, nb % 2
        expected[nb, c, h, w] = padded[n, c, h * bh + i, w * bw + j]
    _close(out, expected)
    crops = ((1, 0), (2, 1))
    (back,) = _run(lambda e: mb.batch_to_space(x=e, block_shape=np.array([bh, bw], np.int32),
                                               crops=np.array(crops, np.int32)), {"e": expected}, tmp_path)
    _close(back, padded[:, :, 1:, 2:-1])


# -- resample: padding rules against explicitly padded images ------------------------------------
def _padded_reference(x, coords, mode, padding, align, value=0.0, margin=8):
    """Sample the padded image the MIL reference describes with torch (all points land inside it)."""
    h, w = x.shape[2:]
    if mode == "normalized_zero_to_one":
        coords = coords * 2 - 1
    scale = (np.array([w, h]) - 1) / 2 if align else np.array([w, h]) / 2
    pixels = (coords + 1) * scale - (0 if align else 0.5)
    np_mode = {"reflection": "reflect", "symmetric": "symmetric", "border": "edge"}.get(padding, "constant")
    kwargs = {"constant_values": value} if np_mode == "constant" else {}
    big = np.pad(x, [(0, 0), (0, 0), (margin, margin), (margin, margin)], mode=np_mode, **kwargs)
    grid = 2 * (pixels + margin) / (np.array(big.shape[:1:-1]) - 1) - 1
    return F.grid_sample(torch.from_numpy(big), torch.from_numpy(grid.astype(np.float32)), align_corners=True).numpy()


@pytest.mark.parametrize("mode,padding,align", [
    ("normalized_zero_to_one", "reflection", False),
    ("normalized_minus_one_to_one", "symmetric", True),
    ("normalized_zero_to_one", "constant", True),
    ("normalized_minus_one_to_one", "border", False),
])
def test_resample_padding_rules(mode, padding, align, tmp_path):
    coords = seeded((1, 5, 7, 2), 12, -1.6, 1.6)
    if mode == "normalized_zero_to_one":
        coords = (coords + 1) / 2
    (out,) = _run(lambda x, g: mb.resample(x=x, coordinates=g, sampling_mode="bilinear", padding_mode=padding,
                                           padding_value=0.5, coordinates_mode=mode, align_corners=align),
                  {"x": X, "g": coords}, tmp_path)
    _close(out, _padded_reference(X, coords, mode, padding, align, value=0.5))


# -- refusals ----------------------------------------------------------------------------------
def test_even_lrn_window_is_refused(tmp_path):
    with pytest.raises(UnsupportedOperatorError, match="odd window"):
        _run(lambda x: mb.local_response_norm(x=x, size=4), {"x": X}, tmp_path)


def test_fractional_nearest_resize_is_refused(tmp_path):
    with pytest.raises(UnsupportedOperatorError, match="whole upscaling"):
        _run(lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=9, target_size_width=12), {"x": X}, tmp_path)


# -- quantization --------------------------------------------------------------------------------
# Power-of-two scales make x / scale exact, so PyTorch (which multiplies by 1 / scale) rounds the
# same values.
def test_quantize_dequantize_per_channel(tmp_path):
    scales = np.array([2**-5, 2**-6, 2**-4, 2**-7], np.float32)
    zeros = np.array([3, -2, 0, 10], np.int8)

    def build(x):
        q = mb.quantize(input=x, scale=scales, zero_point=zeros, axis=1, output_dtype="int8")
        return q, mb.dequantize(input=q, scale=scales, zero_point=zeros, axis=1)

    q, back = _run(build, {"x": X * 5}, tmp_path, target="iOS17")
    ref = torch.quantize_per_channel(torch.from_numpy(X * 5), torch.from_numpy(scales.astype(np.float64)),
                                     torch.from_numpy(zeros.astype(np.int64)), 1, torch.qint8)
    assert _declared(tmp_path, "quantize") == "int8"  # the model output is cast to int32 for Core ML I/O
    _close(q, ref.int_repr().numpy())
    _close(back, ref.dequantize().numpy())


def test_quantize_dequantize_per_tensor_uint8(tmp_path):
    def build(x):
        q = mb.quantize(input=x, scale=np.float32(2**-6), zero_point=np.uint8(128), output_dtype="uint8")
        return q, mb.dequantize(input=q, scale=np.float32(2**-6), zero_point=np.uint8(128))

    q, back = _run(build, {"x": X * 3}, tmp_path, target="iOS17")
    ref = torch.quantize_per_tensor(torch.from_numpy(X * 3), 2**-6, 128, torch.quint8)
    assert _declared(tmp_path, "quantize") == "uint8"
    _close(q, ref.int_repr().numpy())
    _close(back, ref.dequantize().numpy())


# -- crop_resize: what coremltools' TensorFlow frontend maps tf.image.crop_and_resize onto ----------
BOXES = np.array([[0.1, 0.2, 0.9, 0.7], [0.8, 0.6, 0.3, 0.1], [0.0, 0.0, 1.0, 1.0]], np.float32)  # 2nd flipped


def _tf_crops(x, boxes, images, size):
    tf = pytest.importorskip("tensorflow")
    crops = tf.image.crop_and_resize(x.transpose(0, 2, 3, 1), boxes, images, size, method="bilinear")
    return np.asarray(crops).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("size", [(4, 3), (1, 1)])
def test_crop_resize_ios17_matches_tensorflow(size, tmp_path):
    x = seeded((2, 3, 7, 9), 13)
    images = np.array([1, 0, 1], np.int32)

    def build(x):
        return mb.crop_resize(x=x, boxes=BOXES, box_indices=images, target_height=size[0], target_width=size[1],
                              normalized_coordinates=True, box_coordinate_mode="CORNERS_HEIGHT_FIRST",
                              sampling_mode="ALIGN_CORNERS")

    (out,) = _run(build, {"x": x}, tmp_path, target="iOS17")
    _close(out, _tf_crops(x, BOXES, images, size))


def test_crop_resize_ios16_roi_pixel_boxes_width_first(tmp_path):
    """roi [N, 1, 5, 1, 1]: image index, then (x1, y1, x2, y2) in pixels; output [N, 1, C, h, w]."""
    x = seeded((1, 3, 7, 9), 14)
    images = np.array([0, 0, 0])
    pixels = BOXES * np.array([6, 8, 6, 8], np.float32)  # (y, x) corners scaled to [0, H-1] x [0, W-1]
    roi = np.concatenate([images[:, None], pixels[:, [1, 0, 3, 2]]], 1).astype(np.float32).reshape(3, 1, 5, 1, 1)

    def build(x):
        return mb.crop_resize(x=x, roi=roi, target_height=5, target_width=4, normalized_coordinates=False,
                              box_coordinate_mode="CORNERS_WIDTH_FIRST", sampling_mode="ALIGN_CORNERS")

    (out,) = _run(build, {"x": x}, tmp_path, target="iOS16")
    _close(out, _tf_crops(x, BOXES, images.astype(np.int32), (5, 4))[:, None])


def test_crop_resize_ios16_roi_without_index_crops_every_image(tmp_path):
    x = seeded((2, 3, 7, 9), 15)
    roi = BOXES.reshape(3, 1, 4, 1, 1)

    def build(x):
        return mb.crop_resize(x=x, roi=roi, target_height=3, target_width=3, normalized_coordinates=True,
                              sampling_mode="ALIGN_CORNERS")

    (out,) = _run(build, {"x": x}, tmp_path, target="iOS16")
    boxes = np.repeat(BOXES, 2, axis=0)  # box-major: box n of image b is row 2n + b
    _close(out, _tf_crops(x, boxes, np.tile(np.arange(2, dtype=np.int32), 3), (3, 3)).reshape(3, 2, 3, 3, 3))


def test_crop_resize_outside_the_image_is_refused(tmp_path):
    def build(x):
        return mb.crop_resize(x=x, boxes=BOXES + 0.5, target_height=2, target_width=2, normalized_coordinates=True,
                              sampling_mode="ALIGN_CORNERS")

    with pytest.raises(UnsupportedOperatorError, match="outside the image"):
        _run(build, {"x": seeded((3, 3, 7, 9))}, tmp_path, target="iOS17")
