"""``--to executorch`` the way a user runs it: the CLI on a zoo net, its record, verify, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, save_keras, save_pt2

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def run(*args):
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=900)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One three-target int8 conversion for every pytest-xdist worker (the folder above their roots is shared)."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "executorch-target"
    folder.mkdir(exist_ok=True)
    record = folder / "record.json"
    with FileLock(str(folder / ".lock")):
        source = save_pt2("mobilenet", folder)
        if not record.exists():
            calibration = folder / "cal.npy"
            np.save(calibration, np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32))
            result = run("convert", source, "--to", "tflite,coreml,executorch", "--quantize", "int8",
                         "--calibration", calibration, "--out", folder / "dist", "--json")
            assert result.returncode == 0, result.stderr
            record.write_text(result.stdout)
    return source, folder / "dist", json.loads(record.read_text())


def test_three_targets_int8_in_one_command(converted):
    _, dist, record = converted
    made = {(a["target"], a["variant"]) for a in record["artifacts"]}
    # Core ML int8 needs --coreml-target iOS17 (quantize / dequantize ops): a bare int8 at the default iOS16
    # leaves Core ML out, said so
    assert made == {("tflite", "fp32"), ("tflite", "int8"), ("coreml", "fp32"), ("executorch", "fp32"),
                    ("executorch", "int8")}
    for artifact in record["artifacts"]:
        assert artifact["parity"]["passed"], artifact["path"]
        assert (dist / artifact["path"]).exists()
    pte = {a["variant"]: a for a in record["artifacts"] if a["target"] == "executorch"}
    assert pte["fp32"]["path"].endswith(".fp32.pte") and pte["int8"]["path"].endswith(".int8.pte")
    assert pte["fp32"]["parity"]["outputs"]["output"]["max_rel_error"] < 1e-4
    assert pte["int8"]["quantization"]["weights"] == "int8" and pte["int8"]["quantization"]["backend"] == "xnnpack"
    assert pte["int8"]["size_bytes"] < pte["fp32"]["size_bytes"]
    notes = " ".join(pte["fp32"]["passes"][-1]["notes"])
    assert "100 %) delegated to XnnpackBackend" in notes
    assert pte["fp32"]["latency"]["source"] == "executorch" and pte["fp32"]["latency"]["median_ms"] > 0
    assert any(op.startswith("xnnpack: aten.convolution") for op in pte["fp32"]["op_histogram"])


def test_verify_and_inspect_accept_pte(converted):
    source, dist, _ = converted
    result = run("verify", source, dist / "mobilenet_0.int8.pte", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["reports"][0]["profile"] == "int8"
    source_figures = json.loads(run("inspect", source, "--json").stdout)
    pte_figures = json.loads(run("inspect", dist / "mobilenet_0.fp32.pte", "--json").stdout)
    assert pte_figures["macs"] == source_figures["macs"]


def test_portable_backend_says_its_convolutions_are_slow(tmp_path, model_dir):
    result = run("convert", save_pt2("mobilenet", model_dir), "--to", "executorch", "--executorch-backend",
                 "portable", "--out", tmp_path / "dist", "--json")
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)["artifacts"][0]
    notes = " ".join(artifact["passes"][-1]["notes"])
    assert "portable kernels" in notes and "slow" in notes
    assert artifact["parity"]["passed"]


def test_refusals(tmp_path, model_dir):
    keras = run("convert", save_keras("mobilenet", model_dir), "--to", "executorch", "--out", tmp_path / "a")
    assert keras.returncode == 2 and "needs a PyTorch source" in keras.stderr
    backend = run("convert", save_pt2("mobilenet", model_dir), "--to", "executorch", "--executorch-backend", "vulkan",
                  "--out", tmp_path / "b")
    assert backend.returncode == 2 and "unknown ExecuTorch backend" in backend.stderr
    scheme = run("convert", save_pt2("mobilenet", model_dir), "--to", "executorch", "--quantize", "lut4",
                 "--out", tmp_path / "c")
    assert scheme.returncode == 2 and "executorch can do: fp32, fp16, int8" in scheme.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


PRELU_NET = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    # MTCNN R-Net's tail: a per-channel PReLU after nn.Linear, which XNNPACK's lowering refuses as is
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.PReLU(8), nn.Flatten(), nn.Linear(8 * 10 * 10, 16), nn.PReLU(16),
                         nn.Linear(16, 4)).eval()
'''


def test_per_channel_prelu_after_linear_lowers_to_xnnpack(tmp_path):
    net = tmp_path / "prelu_net.py"
    net.write_text(PRELU_NET)
    result = run("convert", f"{net}:build", "--input", "1x3x12x12", "--to", "executorch", "--out", tmp_path / "dist",
                 "--json")
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)["artifacts"][0]
    assert artifact["parity"]["passed"]
    assert any(p["name"] == "decompose_prelu" and p["items"] for p in artifact["passes"])
    assert "0 in portable kernels" in " ".join(artifact["passes"][-1]["notes"])
