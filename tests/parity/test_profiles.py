"""Tolerance profiles are data: every threshold has a reason; overrides and variant mapping work."""

from __future__ import annotations

import pytest

from deploykit.core.errors import UsageError
from deploykit.parity.profiles import BOUNDS, PROFILES, get_profile, parse_tolerances, profile_for_variant


def test_every_threshold_has_a_known_metric_and_a_reason():
    for profile in PROFILES.values():
        assert profile.thresholds, profile.name
        assert profile.localize_reason
        for threshold in profile.thresholds:
            assert threshold.metric in BOUNDS
            assert len(threshold.reason) > 20, (profile.name, threshold.metric)


def test_profiles_get_looser_with_precision():
    snr = [get_profile(n).thresholds_for("y", True) for n in ("fp32", "fp16", "int8-weights", "int8")]
    floors = [next(t.limit for t in ts if t.metric == "snr_db") for ts in snr]
    assert floors == sorted(floors, reverse=True)
    lut = [next(t.limit for t in get_profile(f"lut{b}").thresholds if t.metric == "cosine_similarity") for b in range(8, 1, -1)]
    assert lut == sorted(lut, reverse=True)
    assert "not measured" in get_profile("lut5").thresholds[0].reason


def test_aliases_and_unknown_profile():
    assert get_profile("float16").name == "fp16"
    assert get_profile("full-int8").name == "int8"
    with pytest.raises(UsageError, match="unknown parity profile"):
        get_profile("fp8")


def test_classifier_metrics_only_for_classifier_outputs():
    fp32 = get_profile("fp32")
    assert "top1_agreement" in {t.metric for t in fp32.thresholds_for("logits", True)}
    assert "top1_agreement" not in {t.metric for t in fp32.thresholds_for("features", False)}


def test_overrides_per_output_and_for_all():
    overrides = parse_tolerances(["logits:max_rel_error=1e-3", "snr=30", "logits:top1=off", "max_abs_error=0.5"])
    assert overrides == {"logits": {"max_rel_error": 1e-3, "top1_agreement": None}, "*": {"snr_db": 30.0, "max_abs_error": 0.5}}
    fp32 = get_profile("fp32")
    logits = {t.metric: t for t in fp32.thresholds_for("logits", True, overrides)}
    other = {t.metric: t for t in fp32.thresholds_for("boxes", True, overrides)}
    assert logits["max_rel_error"].limit == 1e-3 and "override" in logits["max_rel_error"].reason
    assert "top1_agreement" not in logits and "top1_agreement" in other
    assert logits["snr_db"].limit == other["snr_db"].limit == 30.0
    assert other["max_abs_error"].limit == 0.5 and other["max_rel_error"].limit == 1e-4


@pytest.mark.parametrize("bad", ["logits", "logits:nope=1", "snr=abc", "=3"])
def test_bad_tolerances(bad):
    with pytest.raises(UsageError):
        parse_tolerances([bad])


@pytest.mark.parametrize("variant, quantization, expected", [
    ("fp32", None, "fp32"),
    ("fp16", None, "fp16"),
    # deploykit's own records: the variant is the scheme name, whatever the other fields say
    ("int8-weights", {"scheme": "int8-weights", "activations": "float32 (quantized at run time)"}, "int8-weights"),
    ("int8", {"scheme": "int8", "activations": "int8 asymmetric per-tensor (calibrated)"}, "int8"),
    ("int4", {"scheme": "int4", "activations": "float16"}, "int4"),
    ("lut4", {"scheme": "lut4", "activations": "float16"}, "lut4"),
    ("custom", {"scheme": "int8-weights"}, "int8-weights"),
    # hand-written names
    ("weights-int8", None, "int8-weights"),
    ("int8-full", None, "int8"),
    ("float16", None, "fp16"),
    ("lut4", None, "lut4"),
    ("palettized", {"nbits": 6, "mode": "kmeans"}, "lut6"),
    ("mystery", None, None),
    (None, None, None),
])
def test_profile_for_variant(variant, quantization, expected):
    assert profile_for_variant(variant, quantization) == expected
