"""ParityReport as data: truthy only when every output passes, JSON round-trip, summary, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np

from deploykit.cli.parity_table import print_report
from deploykit.parity.compare import Localization, ParityReport, compare_output
from deploykit.parity.profiles import get_profile
from deploykit.parity.report import junit_xml, write_json, write_junit


def _report(drift: float = 0.0, localization=None) -> ParityReport:
    rng = np.random.default_rng(0)
    refs = [rng.normal(size=(1, 10)).astype(np.float32) for _ in range(4)]
    feats = [rng.normal(size=(1, 4, 4, 8)).astype(np.float32) for _ in range(4)]
    fp32 = get_profile("fp32")
    logits = compare_output("logits", refs, [r + drift for r in refs], fp32, artifact_name="Identity")
    features = compare_output("features", feats, feats, fp32, layout="transposed (0, 2, 3, 1)")
    return ParityReport(source="m.pt2", framework="torch", artifact="dist/m.fp32.tflite", target="tflite", profile="fp32",
                        profile_origin="given (fp32)", runners={"source": "pytorch", "artifact": "litert"},
                        notes=("a note",), inputs={"kind": "random", "seed": 0, "samples": 4}, outputs=(logits, features),
                        localization=localization, seconds=1.5)


def test_truthiness_follows_every_output():
    good, bad = _report(), _report(drift=0.5)
    assert good and good.passed
    assert not bad and [o.name for o in bad.failures] == ["logits"]
    assert {c.metric for c in bad.outputs[0].failed_checks} >= {"max_rel_error", "snr_db"}
    assert good.outputs[1].metrics["snr_db"] == float("inf")  # identical -> +inf survives JSON below
    empty = ParityReport("s", "torch", "a", "tflite", "fp32", "given", {}, (), {}, ())
    assert not empty  # nothing compared is not a pass


def test_new_nan_fails_whatever_the_thresholds():
    refs = [np.ones((1, 3), np.float32)]
    result = compare_output("y", refs, [np.array([[1, np.nan, 1]], np.float32)], get_profile("lut2"))
    assert not result.passed and "NaN" in result.problem


def test_json_round_trip_is_strict_json(tmp_path):
    loc = Localization("found", "first divergence at features.2.0", culprit={
        "source": "features.2.0 (Conv2d: conv2d)", "metrics": {"snr_db": float("inf"), "max_rel_error": 0.3}}, compared=12)
    for report in (_report(), _report(drift=0.5, localization=loc)):
        text = json.dumps(report.to_json(), allow_nan=False)  # no NaN/Infinity tokens
        back = ParityReport.from_json(json.loads(text))
        assert back == report
        assert bool(back) == bool(report)
        assert back.to_json() == report.to_json()
    write_json([_report()], tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is True and ParityReport.from_json(data["reports"][0]) == _report()


def test_summary_is_small():
    summary = _report(drift=0.5).to_summary()
    assert summary["passed"] is False and summary["profile"] == "fp32"
    assert set(summary["outputs"]) == {"logits", "features"}
    assert set(summary["outputs"]["logits"]) == {"passed", "max_rel_error", "cosine_similarity", "snr_db", "top1_agreement"}
    json.dumps(summary, allow_nan=False)


def test_junit_parses_with_failures_and_reasons(tmp_path):
    write_junit([_report(), _report(drift=0.5)], tmp_path / "j.xml")
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1"
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "1"]
    failure = suites[1].find("testcase[@name='logits']/failure")
    assert failure is not None and "snr_db" in failure.get("message")
    assert "limit" in failure.text and "correct fp32 conversions measured" in failure.text  # the reason
    props = {p.get("name"): p.get("value") for p in suites[0].find("properties")}
    assert props["profile"] == "fp32" and props["artifact_runner"] == "litert"
    broken = ParityReport("s", "torch", "a.tflite", "tflite", "fp32", "given", {}, (), {}, (), problem="inputs do not match")
    assert ET.fromstring(junit_xml([broken]).split("?>", 1)[1]).find(".//error") is not None


def test_table_prints(capsys):
    from rich.console import Console

    console = Console(width=100, force_terminal=False)
    with console.capture() as captured:
        print_report(_report(drift=0.5), console)
    text = captured.get()
    assert "FAIL" in text and "logits" in text and "snr_db" in text and "limit" in text
