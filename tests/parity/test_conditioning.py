"""The conditioning-aware verdict: the source's own noise widens a sample's limit, ill-conditioned default
inputs are replaced by a well-conditioned draw, checks that fail only on chaotic samples are inconclusive,
and no real conversion error hides behind any of it (tests/parity/ill_conditioned.py plants four)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import deploykit
from deploykit.core.errors import ParityError
from deploykit.parity.compare import ParityReport, compare_output
from deploykit.parity.conditioning import CHAOTIC, MULTIPLE, effective_limit, judge
from deploykit.parity.profiles import get_profile
from deploykit.parity.report import junit_xml
from deploykit.pipeline.outcome import raise_on_parity_failure
from deploykit.pipeline.request import VerifyOptions
from tests.parity import ill_conditioned

FP32 = get_profile("fp32")


def _logits(seed: int, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 3, (1, 10)).astype(np.float32) for _ in range(n)]


def _moved(arrays, relative: float, seed: int) -> list[np.ndarray]:
    """Each array plus noise of ``relative`` times its peak (elementwise, seeded)."""
    rng = np.random.default_rng(seed)
    return [(a + relative * np.abs(a).max() * rng.uniform(-1, 1, a.shape)).astype(np.float32) for a in arrays]


# -- the limit arithmetic -------------------------------------------------------------------------------

def test_effective_limit_is_the_looser_of_bound_and_multiple_of_noise():
    assert effective_limit("max_rel_error", 1e-4, 1e-6) == 1e-4
    assert effective_limit("max_rel_error", 1e-4, 2e-4) == pytest.approx(MULTIPLE * 2e-4)
    assert effective_limit("snr_db", 80.0, 70.0) == pytest.approx(70.0 - 20.0)  # 10x the noise is 20 dB less
    assert effective_limit("snr_db", 80.0, 150.0) == 80.0
    assert effective_limit("cosine_similarity", 0.99999, 1 - 1e-6) == pytest.approx(1 - 100 * 1e-6)
    assert effective_limit("top1_agreement", 1.0, 0.5) == 1.0  # pooled metrics are not widened here


def test_judge_decides_per_sample_and_marks_chaotic_failures_inconclusive():
    values = [5e-5, 8e-4, 3e-3]
    noise = [1e-7, 1e-4, 2e-4]
    verdict = judge("max_rel_error", "max", 1e-4, values, noise, noise)
    assert not verdict.passed and not verdict.inconclusive  # sample 2: 3e-3 > 10 x 2e-4
    assert verdict.effective_limit == pytest.approx(2e-3)
    chaotic = [1e-7, 1e-4, 2e-3]  # sample 2 is beyond CHAOTIC: it says nothing either way
    assert CHAOTIC < 2e-3
    verdict = judge("max_rel_error", "max", 1e-4, [5e-5, 8e-4, 3e-2], chaotic, chaotic)
    assert verdict.passed and not verdict.inconclusive  # decided by samples 0 and 1
    verdict = judge("max_rel_error", "max", 1e-4, [5e-5, 2e-3, 3e-3], chaotic, chaotic)
    assert not verdict.passed and not verdict.inconclusive  # sample 1 fails: 2e-3 > 10 x 1e-4
    everywhere = [2e-3, 5e-3, 1e-2]
    verdict = judge("max_rel_error", "max", 1e-4, [1e-6, 1e-6, 1e-6], everywhere, everywhere)
    assert not verdict.passed and verdict.inconclusive  # not even a tiny error is evidence on chaotic samples


def test_compare_output_widens_only_where_the_source_itself_is_noisy():
    refs = _logits(0)
    outs = _moved(refs, 4e-4, 1)  # a right artifact of an ill-conditioned source: 4e-4 off (bound 1e-4)
    plain = compare_output("logits", refs, outs, FP32)
    assert not plain.passed  # the fixed bound fails it
    noise = [[m] for m in _moved(refs, 2e-4, 2)]  # the source moves by 2e-4 on its own
    judged = compare_output("logits", refs, outs, FP32, noise=noise)
    assert judged.passed and judged.status == "passed"
    check = next(c for c in judged.checks if c.metric == "max_rel_error")
    assert check.limit == 1e-4 and check.effective_limit > 1e-3 and check.noise > 1e-4
    assert judged.ill_conditioned == (0, 1, 2, 3)
    wrong = compare_output("logits", refs, _moved(refs, 0.05, 3), FP32, noise=noise)  # a real error: 5 %
    assert wrong.status == "failed"


def test_a_given_tolerance_is_never_widened():
    refs = _logits(0)
    noise = [[m] for m in _moved(refs, 2e-4, 2)]
    result = compare_output("logits", refs, _moved(refs, 4e-4, 1), FP32,
                            overrides={"*": {"max_rel_error": 1e-4}}, noise=noise)
    check = next(c for c in result.checks if c.metric == "max_rel_error")
    assert not check.passed and check.effective_limit is None


def _report(outputs) -> ParityReport:
    return ParityReport("m.pt2", "torch", "m.tflite", "tflite", "fp32", "test", {"source": "s", "artifact": "a"}, (),
                        {"kind": "random", "samples": 4}, tuple(outputs))


def test_inconclusive_is_its_own_status_in_record_junit_and_exit():
    refs = _logits(0)
    chaotic = [[m] for m in _moved(refs, 5e-3, 2)]  # noise 5e-3 on every sample: beyond CHAOTIC
    result = compare_output("logits", refs, _moved(refs, 0.2, 1), FP32, noise=chaotic)
    assert result.status == "inconclusive"
    report = _report([result])
    assert report.status == "inconclusive" and not report.passed
    assert report.to_json()["status"] == "inconclusive"
    assert report.to_summary()["status"] == "inconclusive"
    assert ParityReport.from_json(report.to_json()).status == "inconclusive"
    root = ET.fromstring(junit_xml([report]))
    assert root.get("failures") == "0" and root.find(".//skipped") is not None
    raise_on_parity_failure([report])  # a warning, not a failure, by default
    with pytest.raises(ParityError, match="inconclusive"):
        raise_on_parity_failure([report], strict=True)


# -- a real ill-conditioned model, its right artifact and four broken ones -------------------------------

@pytest.fixture(scope="module")
def ill(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ill")
    ill_conditioned.save(ill_conditioned.source(), folder / "source.pt2")
    broken = {}
    for index, (fault, module) in enumerate(ill_conditioned.broken().items()):
        ill_conditioned.save(module, folder / f"broken{index}.pt2")
        made = deploykit.convert(folder / f"broken{index}.pt2", to="tflite", out=folder / f"broken{index}", verify=False)
        broken[fault] = folder / f"broken{index}" / made.artifacts[0].path
    right = deploykit.convert(folder / "source.pt2", to="tflite", out=folder / "right")
    data = folder / "ill.npy"  # uniform(-1, 1): the domain where the source is ill-conditioned
    np.save(data, np.random.default_rng(1).uniform(-1, 1, (8, *ill_conditioned.SHAPE[1:])).astype(np.float32))
    return folder, broken, data, right


def test_default_inputs_move_to_a_well_conditioned_draw_and_the_right_artifact_passes(ill):
    parity = ill[3].artifacts[0].parity
    assert parity["passed"]
    assert parity["input_distribution"] == {"x": "uniform [0, 1)"}  # the upper half of [-1, 1)
    why = parity["input_conditioning"]["why"]
    assert "ill-conditioned" in why and "these are not" in why
    tried = parity["input_conditioning"]["tried"]
    assert tried[0]["ill_conditioned_samples"] >= 4 and tried[-1]["ill_conditioned_samples"] == 0
    assert parity["outputs"]["output"]["max_rel_error"] < 1e-5


def test_on_ill_conditioned_data_the_right_artifact_passes_with_its_sensitivity_shown(ill):
    folder, _, data, _ = ill
    report = deploykit.verify(folder / "source.pt2", folder / "right" / "source.fp32.tflite", data=data)
    (output,) = report.outputs
    assert report.status == "passed"
    assert output.metrics["max_rel_error"] > 1e-4  # the fp32 bound alone would fail it: this is the source's noise
    assert output.metrics["source_noise"] > 1e-4 and len(output.ill_conditioned) == 8
    check = next(c for c in output.checks if c.metric == "max_rel_error")
    assert check.effective_limit == pytest.approx(MULTIPLE * check.noise)
    assert output.metrics["max_rel_error"] < check.effective_limit


@pytest.mark.parametrize("with_data", [False, True], ids=["default-inputs", "ill-conditioned-data"])
def test_every_broken_artifact_fails(ill, with_data):
    folder, broken, data, _ = ill
    for fault, artifact in broken.items():
        report = deploykit.verify(folder / "source.pt2", artifact, data=data if with_data else None, profile="fp32")
        assert report.status == "failed", fault
        assert report.outputs[0].metrics["max_rel_error"] > 0.1, fault  # orders of magnitude past any widened limit


def test_cli_shows_the_sensitivity_and_strict_parity_does_not_fail_a_verdict(ill, tmp_path):
    from tests.cli.test_convert_cmd import run

    folder, broken, data, _ = ill
    right = folder / "right" / "source.fp32.tflite"
    shown = run("verify", folder / "source.pt2", right, "--data", data, "--strict-parity", "--report", tmp_path / "r.json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = " ".join(shown.stderr.split())
    assert "ill-conditioned input" in text and "the source itself moves by up to" in text
    assert "judged against 10 x that noise" in text
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["status"] == "passed"
    failed = run("verify", folder / "source.pt2", broken["dropped bias"], "--data", data)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr


def test_strict_parity_option_reaches_the_pipeline():
    assert VerifyOptions(strict=True).for_candidates().strict
