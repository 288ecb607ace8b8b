"""Seeded random inputs and real data (.npy, .npz, image folders) in the source's layout."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError, UsageError
from deploykit.core.types import TensorSpec
from deploykit.parity.inputs import clip_range, load_data, random_inputs

IMAGE = TensorSpec("image", (1, 3, 8, 6), "float32", "NCHW")


def test_random_inputs_are_seeded_and_follow_the_documented_distribution():
    specs = (IMAGE, TensorSpec("ids", (1, 5), "int64"), TensorSpec("mask", (1, 5), "bool"))
    a = random_inputs(specs, samples=8, seed=3)
    b = random_inputs(specs, samples=8, seed=3)
    c = random_inputs(specs, samples=8, seed=4)
    assert len(a) == 8
    assert all(np.array_equal(x[n], y[n]) for x, y in zip(a.samples, b.samples) for n in x)
    assert not np.array_equal(a.samples[0]["image"], c.samples[0]["image"])
    images = np.stack([s["image"] for s in a.samples])
    assert images.dtype == np.float32 and images.min() >= -1 and images.max() < 1
    assert images.min() < -0.9 and images.max() > 0.9  # covers the range
    ids = np.stack([s["ids"] for s in a.samples])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 8
    assert a.samples[0]["mask"].dtype == bool
    assert a.origin["distribution"]["image"] == "uniform [-1, 1)"


def test_quantized_input_range():
    assert clip_range(-0.5, 2.0) == (-0.5, 1.0)  # intersect with [-1, 1)
    assert clip_range(2.0, 3.0) == (2.0, 3.0)  # disjoint: the representable range itself
    drawn = random_inputs((IMAGE,), samples=4, ranges={"image": (0.0, 0.5)})
    values = np.stack([s["image"] for s in drawn.samples])
    assert values.min() >= 0 and values.max() < 0.5


def test_npy_stack_single_and_unbatched(tmp_path):
    stack = np.random.default_rng(0).random((5, 3, 8, 6), dtype=np.float32)
    np.save(tmp_path / "x.npy", stack)
    data = load_data(tmp_path / "x.npy", (IMAGE,), samples=0)
    assert len(data) == 5 and np.array_equal(data.samples[4]["image"], stack[4:5])
    assert len(load_data(tmp_path / "x.npy", (IMAGE,), samples=2)) == 2
    np.save(tmp_path / "one.npy", stack[0])
    assert load_data(tmp_path / "one.npy", (IMAGE,)).samples[0]["image"].shape == (1, 3, 8, 6)


def test_npy_in_the_other_layout_is_transposed(tmp_path):
    nhwc = np.random.default_rng(0).random((2, 8, 6, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", nhwc)
    data = load_data(tmp_path / "x.npy", (IMAGE,), layout="nhwc")
    assert np.array_equal(data.samples[1]["image"][0], nhwc[1].transpose(2, 0, 1))


def test_npz_by_name(tmp_path):
    specs = (TensorSpec("a", (1, 4), "float32"), TensorSpec("b", (1, 2), "int32"))
    np.savez(tmp_path / "d.npz", a=np.ones((3, 4)), b=np.zeros((3, 2), dtype=np.int64))
    data = load_data(tmp_path / "d.npz", specs)
    assert len(data) == 3 and data.samples[0]["a"].dtype == np.float32 and data.samples[0]["b"].dtype == np.int32
    np.savez(tmp_path / "bad.npz", a=np.ones((3, 4)))
    with pytest.raises(InputError, match="no array for input"):
        load_data(tmp_path / "bad.npz", specs)


def test_data_errors(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(InputError, match="has shape"):
        load_data(tmp_path / "wrong.npy", (IMAGE,))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read"):
        load_data(tmp_path / "objects.npy", (IMAGE,))  # never unpickled
    with pytest.raises(InputError, match="does not exist"):
        load_data(tmp_path / "missing.npy", (IMAGE,))
    with pytest.raises(UsageError, match="--mean"):
        load_data(tmp_path / "wrong.npy", (IMAGE,), mean=0.5)
    np.save(tmp_path / "f.npy", np.zeros((1, 5), np.float32))
    with pytest.raises(InputError, match="int64"):
        load_data(tmp_path / "f.npy", (TensorSpec("ids", (1, 5), "int64"),))


def test_image_folder_with_mean_std_in_both_layouts(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.zeros((8, 6, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 255, 51, 0
    for i in range(3):
        Image.fromarray(pixels).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    mean, std = [0.5, 0.2, 0.0], [0.5, 0.1, 1.0]
    data = load_data(folder, (IMAGE,), samples=0, mean=mean, std=std)
    assert len(data) == 3 and data.origin["kind"] == "images"
    image = data.samples[0]["image"]
    assert image.shape == (1, 3, 8, 6)
    # (1.0 - 0.5) / 0.5 = 1, (0.2 - 0.2) / 0.1 = 0, (0 - 0) / 1 = 0
    assert np.allclose(image[0, :, 0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    nhwc = TensorSpec("image", (1, 4, 4, 3), "float32", "NHWC")
    resized = load_data(folder, (nhwc,), samples=2)
    assert len(resized) == 2 and resized.samples[0]["image"].shape == (1, 4, 4, 3)
    with pytest.raises(UsageError, match="channels"):
        load_data(folder, (IMAGE,), mean=[0.1, 0.2])
    with pytest.raises(InputError, match="one rank-4 input"):
        load_data(folder, (TensorSpec("x", (1, 10), "float32"),))
