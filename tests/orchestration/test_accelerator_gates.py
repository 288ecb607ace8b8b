"""``require_accelerators``: a build gate on the conversion's accelerator-compatibility analysis.

The unit tests read the record of a real conversion (``tests/report/cumsum-record.json``: a convolution and a
cumulative sum to TFLite, Core ML and ExecuTorch). The build test converts two tiny nets to TFLite: XNNPACK refuses
the one's CUMSUM and takes the other whole; LiteRT 2.3.0's analyzer checks no op for the GPU delegate, so a GPU
requirement fails with that reason rather than passing on its "looks compatible".
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploykit.orchestration.config import ConfigError, load_config
from deploykit.orchestration.gates import accelerator_gate, check_gates, junit_xml
from tests.orchestration.test_gates import run
from tests.zoo import accelerator_nets

RECORD = json.loads((Path(__file__).parents[1] / "report" / "cumsum-record.json").read_text())
ARTIFACTS = {a["target"]: a for a in RECORD["artifacts"]}


def _job(target: str, compatibility="record") -> dict:
    block = ARTIFACTS[target]["compatibility"] if compatibility == "record" else compatibility
    return {"id": f"cumsum/{target}/fp32", "model": "cumsum", "target": target, "artifact": "dist/x", "parity": True,
            **({"compatibility": block} if block is not None else {})}


def test_a_refused_op_fails_the_gate_naming_the_op_its_count_and_the_reason():
    xnnpack = accelerator_gate(_job("tflite"), "xnnpack")
    assert (xnnpack.gate, xnnpack.status, xnnpack.limit) == ("accelerator:xnnpack", "failed", "every op on XNNPACK")
    assert xnnpack.message.startswith("XNNPACK refuses 1 of 5 ops: CUMSUM × 1 (not taken by the XNNPACK delegate")
    assert (xnnpack.baseline, xnnpack.current) == (None, None)  # the counts are in the message
    delegate = accelerator_gate(_job("executorch"), "delegate")  # "delegate": no op left to the portable kernels
    assert delegate.status == "failed" and "refuses 1 of 4 ops: aten::cumsum.out × 1" in delegate.message
    assert "portable CPU kernels" in delegate.message


def test_a_static_unchecked_unavailable_or_missing_analysis_never_passes():
    gpu = accelerator_gate(_job("tflite"), "gpu")
    assert gpu.status == "failed" and "checks no op for the GPU delegate" in gpu.message
    assert gpu.limit == "every op on LiteRT GPU delegate"
    static = accelerator_gate(_job("coreml"), "coreml-static")
    assert static.status == "failed" and "static reading" in static.message and "cannot show" in static.message
    unavailable = accelerator_gate(_job("tflite", {"unavailable": "the TFLite (LiteRT) analysis failed: boom"}), "gpu")
    assert unavailable.status == "failed" and "analysis was unavailable (the TFLite (LiteRT) analysis failed: boom)" \
        in unavailable.message
    missing = accelerator_gate(_job("tflite", None), "xnnpack")
    assert missing.status == "failed" and "--force" in missing.message


def test_gates_are_checked_per_target_without_a_baseline_and_reported_in_junit():
    jobs = [_job("tflite"), _job("coreml"), _job("executorch")]
    results = check_gates(jobs, None, {}, {"cumsum": {"tflite": ("gpu", "xnnpack"), "executorch": ("delegate",)}})
    assert [(g.job, g.gate, g.status) for g in results] == [
        ("cumsum/tflite/fp32", "parity", "passed"), ("cumsum/tflite/fp32", "accelerator:gpu", "failed"),
        ("cumsum/tflite/fp32", "accelerator:xnnpack", "failed"), ("cumsum/coreml/fp32", "parity", "passed"),
        ("cumsum/executorch/fp32", "parity", "passed"), ("cumsum/executorch/fp32", "accelerator:delegate", "failed")]
    suite = ET.fromstring(junit_xml(results))
    assert (suite.get("tests"), suite.get("failures")) == ("6", "3")
    failure = suite.find("testcase[@classname='cumsum/tflite/fp32'][@name='accelerator:xnnpack']/failure")
    assert "CUMSUM × 1" in failure.get("message") and failure.text == "every op on XNNPACK"
    assert [g.gate for g in check_gates(jobs, None, {})] == ["parity"] * 3  # no requirement: no accelerator gate


def gpu_checked() -> bool:
    from deploykit.formats.tflite import analyzer

    return analyzer.gpu_analyzer() is not None


CONFIG = """[build]
out = "out"
jobs = 1

[[models]]
name = "cumsum"
source = "cumsum.pt2"
targets = ["tflite"]
samples = 2
require_accelerators = ["gpu", "xnnpack"]

[[models]]
name = "plain"
source = "plain.pt2"
targets = ["tflite"]
samples = 2
require_accelerators = { tflite = ["xnnpack"] }
"""


def test_a_build_fails_when_an_accelerator_refuses_an_op_and_passes_without_the_requirement(tmp_path):
    accelerator_nets.save(tmp_path, cumsum=True)
    accelerator_nets.save(tmp_path, cumsum=False)
    config = tmp_path / "deploykit.toml"
    config.write_text(CONFIG)
    gated = run("build", config, "--junit", tmp_path / "gates.xml")
    assert gated.returncode == 1, gated.stdout[-2000:] + gated.stderr[-3000:]
    # the GPU rules of TensorFlow 2.16.2's analyzer (setup.sh) take a cumulative sum; without that analyzer the GPU
    # entry is unchecked, which never passes a gate
    checked = gpu_checked()
    assert f"gates: {4 if checked else 3} of 5 passed" in gated.stderr, gated.stderr[-3000:]
    assert "accelerator:xnnpack" in gated.stderr and "XNNPACK refuses 1 of 5 ops: CUMSUM × 1" in gated.stderr
    record = json.loads((tmp_path / "out" / "deploykit-build.json").read_text())
    statuses = {(g["job"], g["gate"]): g["status"] for g in record["gates"]}
    assert statuses == {("cumsum/tflite/fp32", "parity"): "passed",
                        ("cumsum/tflite/fp32", "accelerator:gpu"): "passed" if checked else "failed",
                        ("cumsum/tflite/fp32", "accelerator:xnnpack"): "failed",
                        ("plain/tflite/fp32", "parity"): "passed", ("plain/tflite/fp32", "accelerator:xnnpack"): "passed"}
    suite = ET.parse(tmp_path / "gates.xml").getroot()
    assert (suite.find("testcase[@classname='cumsum/tflite/fp32'][@name='accelerator:gpu']/failure") is None) == checked
    assert suite.find("testcase[@classname='plain/tflite/fp32'][@name='accelerator:xnnpack']/failure") is None
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Failed gates" in page and 'id="compatibility-cumsum"' in page and 'data-op="CUMSUM"' in page

    config.write_text(CONFIG.replace('require_accelerators = ["gpu", "xnnpack"]\n', "")
                      .replace('require_accelerators = { tflite = ["xnnpack"] }\n', ""))
    plain = run("build", config, "--json")
    assert plain.returncode == 0, plain.stderr[-3000:]
    again = json.loads(plain.stdout)
    assert all(job["reused"] for job in again["jobs"])  # a requirement converts nothing again
    assert [g["gate"] for g in again["gates"]] == ["parity", "parity"]

    config.write_text(CONFIG.replace('["gpu", "xnnpack"]', '["vulkan"]'))
    wrong = run("build", config)
    assert wrong.returncode == 2, wrong.stderr[-3000:]
    assert "deploykit.toml:10: models[0].require_accelerators: 'vulkan' is not an accelerator of tflite" in wrong.stderr
    assert "allowed: gpu, xnnpack" in wrong.stderr


@pytest.mark.parametrize("value, message", [
    ('{ coreml = ["gpu"] }', r"deploykit.toml:8: models\[0\].require_accelerators: 'coreml' is not one of this model's "
                             r"targets \(tflite\)"),
    ('"gpu"', r"models\[0\].require_accelerators: 'gpu' is not a list of names or a table of them per target"),
])
def test_a_bad_requirement_is_a_config_error_before_anything_runs(tmp_path, value, message):
    (tmp_path / "m.pt2").write_bytes(b"")
    config = tmp_path / "deploykit.toml"
    config.write_text(f'[[models]]\nname = "m"\nsource = "m.pt2"\ntargets = ["tflite"]\n\n\n\nrequire_accelerators = {value}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_a_target_that_declares_its_accelerators_is_checked_before_anything_runs(tmp_path, monkeypatch):
    from deploykit.targets import get

    monkeypatch.setattr(get("tflite"), "accelerators", ("gpu", "xnnpack"), raising=False)
    monkeypatch.setattr(get("coreml"), "accelerators", ("coreml-static",), raising=False)
    config = tmp_path / "deploykit.toml"
    config.write_text('[[models]]\nname = "m"\nsource = "m.pt2"\ntargets = ["tflite", "coreml"]\n'
                      'require_accelerators = ["gpu"]\n')
    with pytest.raises(ConfigError, match=r"deploykit.toml:5: models\[0\].require_accelerators: 'gpu' is not an "
                                          r"accelerator of coreml \(allowed: coreml-static\); name them per target"):
        load_config(config)
    config.write_text(config.read_text().replace('["gpu"]', '{ tflite = ["gpu"] }'))
    assert load_config(config).models[0].require_accelerators == {"tflite": ("gpu",)}


DETECTOR_CONFIG = """[[models]]
name = "det"
source = "det.onnx"
targets = ["tflite"]
require_accelerators = ["gpu"]

[models.detector]
preset = "yolov8"
iou = 0.5
class_agnostic = true
"""


def test_a_model_table_asks_for_a_detector_as_convert_does(tmp_path):
    """``[models.detector]`` is ``convert --detector`` and its flags: a build can require the GPU delegate of a
    detector's whole artifact, decode and NMS included (bench/results/compatibility.md: the NMS is what it refuses)."""
    from deploykit.orchestration.jobs import _request

    (tmp_path / "det.onnx").write_bytes(b"")
    config = tmp_path / "deploykit.toml"
    config.write_text(DETECTOR_CONFIG)
    loaded = load_config(config)
    request = _request(loaded, loaded.models[0], "tflite", "fp32")
    detector = request.detector
    assert (detector.preset, detector.iou, detector.class_agnostic, detector.score_threshold) == ("yolov8", 0.5, True, 0.25)
    config.write_text(DETECTOR_CONFIG.replace('preset = "yolov8"', 'preset = "yolo99"'))
    with pytest.raises(Exception, match="yolo99"):
        loaded = load_config(config)
        _request(loaded, loaded.models[0], "tflite", "fp32")
    config.write_text(DETECTOR_CONFIG.replace("iou = 0.5", "iou = 2.0"))
    with pytest.raises(ConfigError, match="iou"):
        load_config(config)
