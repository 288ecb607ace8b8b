"""Damaged model files (truncated, byte-flipped, broken zip directory or member) never crash deploykit:
one message naming the cause and the path, exit code 2 (or 0 when the damage was harmless), nothing
half-written.

Every corruption is loaded in-process (a load failure must be a deploykit error, never an internal
one: the pipeline's catch-all would hide that as "upstream crash"); a few representative ones run
through the real CLI in a subprocess, to see a real process survive and clean up. Corruptions are
deterministic: fixed fractions, seeded flips, fixed zip offsets.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploykit.core import errors
from deploykit.core.errors import describe
from deploykit.loaders import load_source
from tests.conftest import REPO

SHAPE = (1, 3, 8, 8)
FILES = {"onnx": "tiny.onnx", "pt2": "tiny.pt2", "torchscript": "tiny.ts.pt", "keras": "tiny.keras"}
ZIPPED = ("pt2", "torchscript", "keras")
INPUTS = {"torchscript": ["1x3x8x8"]}  # TorchScript declares no shapes
HEADINGS = (tuple(cls.title for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.DeployKitError))
            + tuple(title for _, _, title in errors.FOREIGN) + (errors.INTERNAL,))


# --- corruptions -------------------------------------------------------------------------------

def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def flipped(data: bytes, count: int, seed: int) -> bytes:
    """``count`` distinct bytes XORed with a non-zero value: every chosen byte really changes."""
    rng = random.Random(seed)
    out = bytearray(data)
    for position in rng.sample(range(len(out)), min(count, len(out))):
        out[position] ^= rng.randrange(1, 256)
    return bytes(out)


def broken_directory(data: bytes) -> bytes:
    """The first central directory record (its fixed 46 bytes) zeroed: signature, sizes, offset."""
    end = data.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<I", data, end + 16)
    if offset == 0xFFFFFFFF:  # zip64 (torch writes it): the real offset is in the zip64 end record
        (offset,) = struct.unpack_from("<Q", data, data.rfind(b"PK\x06\x06") + 48)
    return data[:offset] + bytes(46) + data[offset + 46:]


def flipped_member(data: bytes) -> bytes:
    """One byte in the middle of the largest member's stored data (the weights, usually)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    position = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    return data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1:]


CORRUPTIONS = {
    "empty": lambda d: truncated(d, 0.0),
    "truncated-10": lambda d: truncated(d, 0.1),
    "truncated-50": lambda d: truncated(d, 0.5),
    "truncated-90": lambda d: truncated(d, 0.9),
    "flipped-1": lambda d: flipped(d, 1, seed=1),
    "flipped-16": lambda d: flipped(d, 16, seed=16),
    "flipped-256": lambda d: flipped(d, 256, seed=256),
    "zip-directory": broken_directory,
    "zip-member": flipped_member,
}
CASES = [(fmt, name) for fmt in FILES for name in CORRUPTIONS if fmt in ZIPPED or not name.startswith("zip-")]


# --- the valid models --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    """A tiny conv net in every format: small, so a harmless flip converts in seconds."""
    import torch
    from torch import nn

    folder = tmp_path_factory.mktemp("fuzz-originals")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3)).eval()
    example = torch.rand(SHAPE)
    torch.onnx.export(net, (example,), str(folder / FILES["onnx"]), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    torch.export.save(torch.export.export(net, (example,)), folder / FILES["pt2"])
    torch.jit.save(torch.jit.trace(net, example), folder / FILES["torchscript"])

    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE[2:] + SHAPE[1:2], name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, name="logits")(x)).save(folder / FILES["keras"])
    return folder


def corrupt(originals: Path, fmt: str, corruption: str, folder: Path) -> Path:
    path = folder / FILES[fmt]
    path.write_bytes(CORRUPTIONS[corruption]((originals / FILES[fmt]).read_bytes()))
    return path


# --- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FILES)
def test_originals_load(originals, fmt):
    """The fuzzing starts from models that load: a failure below is the corruption's doing."""
    assert load_source(originals / FILES[fmt], inputs=INPUTS.get(fmt)).outputs[0].shape[-1] == 3


@pytest.mark.parametrize("fmt, corruption", CASES)
def test_corrupted_file_is_bad_input(originals, tmp_path, fmt, corruption):
    path = corrupt(originals, fmt, corruption, tmp_path)
    try:
        load_source(path, inputs=INPUTS.get(fmt))
    except BaseException as exc:  # noqa: BLE001 - anything at all must map to a deploykit error
        code, heading, message, _ = describe(exc)
        assert heading != "internal error", f"{type(exc).__name__}: {exc}"
        assert code == 2, f"{heading}: {message}"
        if heading == "bad input":
            assert str(path) in message, message
        assert expected_cause(fmt, corruption) in message, message
    else:  # a flip in padding, a timestamp or a weight: a model like any other
        assert corruption.startswith("flipped"), f"{corruption} of a {fmt} file loaded"


def expected_cause(fmt: str, corruption: str) -> str:
    """What the message must say, where the cause is certain: zip formats keep a CRC-32 per member
    and a directory at the end, so a cut or a flipped member cannot pass for another problem."""
    if corruption == "empty":
        return "is empty"
    if fmt in ZIPPED and corruption.startswith("truncated"):
        return "truncated zip archive"
    return {"zip-directory": "damaged zip archive", "zip-member": "CRC-32"}.get(corruption, "")


# The real CLI on a few: one per format and kind of damage, and one flip that may be harmless.
REPRESENTATIVE = [("onnx", "empty"), ("onnx", "flipped-16"), ("pt2", "zip-member"), ("pt2", "flipped-1"),
                  ("torchscript", "truncated-90"), ("keras", "zip-directory"), ("keras", "flipped-256")]


@pytest.mark.parametrize("fmt, corruption", REPRESENTATIVE)
def test_cli_survives(originals, tmp_path, fmt, corruption):
    path = corrupt(originals, fmt, corruption, tmp_path)
    out = tmp_path / "out"
    inputs = [arg for spec in INPUTS.get(fmt, []) for arg in ("--input", spec)]
    result = subprocess.run(
        [sys.executable, "-m", "deploykit.cli.app", "convert", str(path), "--to", "tflite", "--out", str(out),
         "--no-verify", *inputs],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
    stderr = result.stderr
    assert result.returncode >= 0, f"killed by signal {-result.returncode}: {stderr[-2000:]}"
    assert result.returncode in (0, 2, 3), stderr[-2000:]
    assert "internal error" not in stderr and "Traceback (most recent call last)" not in stderr, stderr[-2000:]
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [n for n in left if n.startswith(".deploykit-staging-")], left
    if result.returncode == 0:
        assert "tiny.fp32.tflite" in left and "deploykit-report.json" in left, left
        return
    assert left == [], f"a failed run left {left}"
    errors = [line for line in stderr.splitlines() if line.startswith(tuple(f"{h}:" for h in HEADINGS))]
    assert len(errors) == 1, stderr[-2000:]
    if result.returncode == 2:
        assert str(path) in errors[0], errors[0]
