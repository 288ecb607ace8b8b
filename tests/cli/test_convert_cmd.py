"""The CLI the way a user runs it: a subprocess, exit codes, one readable message, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, save_keras

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]
HEAVY = ("tensorflow", "torch", "coremltools", "onnx", "onnxruntime", "keras", "jax", "litert_torch", "onnx2tf")


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_help_imports_no_framework():
    code = ("import sys\nsys.argv = ['deploykit', '--help']\nfrom deploykit.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "LOADED []" in result.stdout, result.stdout[-500:]
    assert "convert" in result.stdout and "Exit codes" in result.stdout


def test_convert_help_has_examples():
    result = run("convert", "--help")
    assert result.returncode == 0
    assert "deploykit convert model.keras --to tflite,coreml --out dist/" in result.stdout


def test_missing_file_exit_2_one_message(tmp_path):
    result = run("convert", tmp_path / "missing.onnx", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "bad input: model not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_input_flag_exit_2(model_dir, tmp_path):
    result = run("convert", save_keras("mobilenet", model_dir), "--input", "1x3", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "usage error" in result.stderr and "rank 4" in result.stderr


def test_unsupported_operator_exit_3(tmp_path):
    entry = tmp_path / "det.py"
    entry.write_text("import torch\n\nclass Det(torch.nn.Module):\n    def forward(self, x):\n"
                     "        return torch.linalg.det(x)\n\ndef build():\n    return Det()\n")
    result = run("convert", f"{entry}:build", "--input", "1x3x3", "--to", "coreml", "--out", tmp_path / "out")
    assert result.returncode == 3
    assert "unsupported operator" in result.stderr and "linalg_det" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_record_on_stdout(model_dir, tmp_path):
    result = run("convert", save_keras("resnet", model_dir), "--to", "tflite", "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    artifact = record["artifacts"][0]
    assert artifact["path"] == "resnet_0.fp32.tflite"
    assert (tmp_path / "out" / artifact["path"]).stat().st_size == artifact["size_bytes"]
    assert json.loads((tmp_path / "out" / "deploykit-report.json").read_text()) == record
    assert "oneDNN" not in result.stdout + result.stderr  # upstream noise stays captured


def test_verbose_shows_upstream_log(model_dir, tmp_path):
    result = run("convert", save_keras("mobilenet", model_dir), "--to", "coreml", "--out", tmp_path / "out", "--verbose")
    assert result.returncode == 0
    assert "MIL" in result.stdout + result.stderr  # coremltools' pass pipeline log
