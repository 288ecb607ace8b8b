"""One failing target does not take the others down (issue 9, item 9).

The failure is a real upstream gap, not an injected one: coremltools' torch frontend refuses MTCNN
R-Net's per-channel PReLU after a Linear layer ("rank 3 or rank 5 input is only supported when all the
values of alpha are same"), ``--passes none`` switches off deploykit's rewrite of it, and litert-torch
converts the same module to TFLite. The module is the corpus's R-Net with seeded random weights.
"""

from __future__ import annotations

import json

import pytest

import deploykit
from deploykit.core.errors import DeployKitError


def _prelu_net(folder):
    import torch

    from bench.corpus.mtcnn import RNet

    torch.manual_seed(0)
    module = RNet().eval()
    with torch.no_grad():
        for prelu in (module.prelu1, module.prelu2, module.prelu3, module.prelu4):
            prelu.weight.uniform_(0.05, 0.5)  # per-channel slopes, as in the pretrained weights
    path = folder / "rnet.pt2"
    torch.export.save(torch.export.export(module, (torch.rand(1, 3, 24, 24),)), path)
    return path


def test_failed_target_is_recorded_and_the_other_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DeployKitError) as caught:
        # Only the jit.trace route: the ladder's ONNX route would take the PReLUs (test_routes.py shows it).
        deploykit.convert(_prelu_net(tmp_path), to="tflite,coreml", out=out, passes="none", route="coreml=jit.trace")
    assert caught.value.exit_code == 3
    assert "prelu" in caught.value.message.lower()
    record = json.loads((out / "deploykit-report.json").read_text())
    assert [a["target"] for a in record["artifacts"]] == ["tflite"]
    assert record["artifacts"][0]["parity"]["passed"]
    (failure,) = record["failures"]
    assert failure["target"] == "coreml" and failure["variant"] == "fp32" and failure["exit_code"] == 3
    assert "prelu" in failure["message"].lower()
    assert sorted(p.name for p in out.iterdir()) == ["deploykit-report.json", "report.html", "rnet.fp32.tflite"]


def test_all_or_nothing_writes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DeployKitError) as caught:
        deploykit.convert(_prelu_net(tmp_path), to="tflite,coreml", out=out, passes="none", all_or_nothing=True,
                          route="coreml=jit.trace")
    assert caught.value.exit_code == 3
    assert not out.exists()


def test_cli_exit_code_and_message(tmp_path):
    from tests.cli.test_convert_cmd import run

    out = tmp_path / "out"
    result = run("convert", _prelu_net(tmp_path), "--to", "tflite,coreml", "--out", out, "--passes", "none",
                 "--route", "coreml=jit.trace")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "were written to" in result.stderr
    assert (out / "rnet.fp32.tflite").is_file() and not (out / "rnet.fp32.mlpackage").exists()
