"""``deploykit verify`` end to end: table first, reports written, exit 0 on pass and 1 on drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO

HEAVY = ("tensorflow", "torch", "coremltools", "onnx", "onnxruntime", "keras", "jax", "litert_torch", "onnx2tf")


def run_cli(monkeypatch, capfd, *args) -> tuple[int, str, str]:
    """The real entry point in this process (frameworks already imported), with its exit code."""
    import deploykit.cli.output as output
    from deploykit.cli.app import main

    monkeypatch.setattr(output, "_TERMINAL", None)  # a console on this test's captured stderr
    monkeypatch.setattr(sys, "argv", ["deploykit", "verify", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capfd.readouterr()
    return exit_info.value.code or 0, out, err


def test_help_has_examples_and_imports_no_framework():
    code = ("import sys\nsys.argv = ['deploykit', 'verify', '--help']\nfrom deploykit.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert "LOADED []" in result.stdout, result.stdout[-500:]
    assert "deploykit verify model.pt2 dist/model.fp32.tflite" in result.stdout
    assert "--tolerance" in result.stdout and "--localize" in result.stdout and "--junit" in result.stdout


def test_pass_writes_reports_and_exits_0(keras_pair, tmp_path, monkeypatch, capfd):
    folder = keras_pair.artifacts["tflite"].parent  # a convert --out folder: every artifact it lists
    code, out, err = run_cli(monkeypatch, capfd, keras_pair.model.path, folder, "--samples", "3",
                             "--report", tmp_path / "r.json", "--junit", tmp_path / "j.xml")
    assert code == 0, err
    assert "PASS" in err and "logits" in err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is True and {r["target"] for r in data["reports"]} == {"tflite", "coreml"}
    assert all(r["inputs"]["samples"] == 3 for r in data["reports"])
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("tests") == "2" and root.get("failures") == "0"


def test_drift_prints_the_table_then_exits_1(keras_pair, tmp_path, monkeypatch, capfd):
    code, out, err = run_cli(monkeypatch, capfd, keras_pair.model.path, keras_pair.other_seed["coreml"],
                             "--report", tmp_path / "r.json", "--junit", tmp_path / "j.xml", "--localize")
    assert code == 1
    assert err.index("FAIL") < err.index("parity check failed")  # the table comes before the error
    assert "snr_db" in err and "Traceback" not in err
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"


def test_json_mode_and_tolerance_override(keras_pair, monkeypatch, capfd):
    code, out, err = run_cli(monkeypatch, capfd, keras_pair.model.path, keras_pair.artifacts["coreml"], "--json",
                             "--samples", "2", "--profile", "fp16", "--tolerance", "logits:snr_db=200")
    assert code == 1  # an impossible 200 dB floor
    data = json.loads(out)
    check = next(c for c in data["reports"][0]["outputs"][0]["checks"] if c["metric"] == "snr_db")
    assert check["limit"] == 200 and "override" in check["reason"] and not check["passed"]


@pytest.mark.parametrize("flags, message", [
    (["--tolerance", "logits:nope=1"], "unknown metric"),
    (["--profile", "fp8"], "unknown parity profile"),
    (["--mean", "0.5"], "--mean"),
])
def test_bad_flags_exit_2(keras_pair, monkeypatch, capfd, flags, message):
    code, out, err = run_cli(monkeypatch, capfd, keras_pair.model.path, keras_pair.artifacts["tflite"], *flags)
    assert code == 2 and message in err
