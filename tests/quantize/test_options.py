"""--quantize parsing and flag combinations: pure functions, no conversion."""

from __future__ import annotations

import pytest

from deploykit.core.errors import UsageError
from deploykit.quantize import build_options, parse_keep_float, parse_quantize, skipped_schemes, supported

BOTH = ("tflite", "coreml")


def test_bare_schemes_go_to_every_target_that_can_do_them():
    plan = dict(parse_quantize("fp16,int8-weights,lut4", BOTH))
    assert plan == {"tflite": ("fp32", "fp16", "int8-weights"), "coreml": ("fp32", "fp16", "int8-weights", "lut4")}
    assert skipped_schemes("fp16,int8-weights,lut4", BOTH) == ["lut4: not made for tflite (tflite has no lut4)"]


def test_per_target_schemes_and_repeats():
    plan = dict(parse_quantize(["coreml=lut4,tflite=int8", "coreml=int8-weights", "fp16"], BOTH))
    assert plan == {"tflite": ("fp32", "int8", "fp16"), "coreml": ("fp32", "lut4", "int8-weights", "fp16")}


def test_no_quantize_means_fp32_only():
    assert dict(parse_quantize(None, BOTH)) == {"tflite": ("fp32",), "coreml": ("fp32",)}


@pytest.mark.parametrize("value, targets, message, hint", [
    ("tflite=lut4", BOTH, "tflite cannot do lut4", "tflite can do: fp32, fp16, int8-weights, int8, int16x8, int4"),
    ("coreml=int16x8", BOTH, "coreml cannot do int16x8", "(int16x8 is for tflite)"),
    ("int16x8", ("coreml",), "coreml cannot do int16x8", "(int16x8 is for tflite)"),
    ("int16x8", ("executorch",), "executorch cannot do int16x8",
     "executorch can do: fp32, fp16, int8 (int16x8 is for tflite)"),
    ("int16x8", ("coreml", "executorch"), "no target of this conversion can do int16x8", "int16x8 is made for: tflite"),
    ("lut4", ("tflite",), "tflite cannot do lut4", "(lut4 is for coreml)"),
    ("lut3", BOTH, "unknown quantization scheme 'lut3'", "schemes: fp32, fp16"),
    ("coreml=lut4", ("tflite",), "'coreml' is not a target of this conversion", "--to"),
])
def test_impossible_combinations_name_what_the_target_can_do(value, targets, message, hint):
    with pytest.raises(UsageError) as caught:
        parse_quantize(value, targets)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_supported_lists():  # the pruning schemes (sparse...) are listed in tests/quantize/test_sparsity.py
    assert tuple(s for s in supported("tflite") if not s.startswith("sparse")) == (
        "fp32", "fp16", "int8-weights", "int8", "int16x8", "int4", "auto")
    assert tuple(s for s in supported("coreml") if not s.startswith("sparse")) == (
        "fp32", "fp16", "int8-weights", "int8", "int4", "lut8", "lut6", "lut4", "lut2", "auto")


def test_int16x8_is_made_for_tflite_alone():
    """A bare int16x8 asked of TFLite and Core ML is made for TFLite, with a note for Core ML."""
    assert dict(parse_quantize("int16x8", BOTH)) == {"tflite": ("fp32", "int16x8"), "coreml": ("fp32",)}
    assert skipped_schemes("int16x8", BOTH) == ["int16x8: not made for coreml (coreml has no int16x8)"]
    options = build_options(BOTH, quantize="int16x8", calibration="x.npy", per_tensor=True)
    assert options.needs_calibration and options.schemes("tflite") == ("fp32", "int16x8")


def test_core_ml_int8_needs_ios17():
    """quantize / dequantize are iOS17 ops: asked of Core ML (explicitly, or Core ML alone) with an older target
    it is refused naming the flag; a bare int8 for several targets leaves Core ML out, with a note."""
    for value, targets in (("coreml=int8", BOTH), ("int8", ("coreml",))):
        with pytest.raises(UsageError) as caught:
            parse_quantize(value, targets, "iOS16")
        assert "Core ML int8 (8-bit activations) needs --coreml-target iOS17 or later (got iOS16)" in caught.value.message
        assert "add --coreml-target iOS17" in caught.value.hint
    assert dict(parse_quantize("int8", BOTH, "iOS16")) == {"tflite": ("fp32", "int8"), "coreml": ("fp32",)}
    assert skipped_schemes("int8", BOTH, "iOS16") == ["int8: not made for coreml (needs --coreml-target iOS17 or later, got iOS16)"]
    for target in ("iOS17", "iOS18", "macOS14", "macOS15"):
        assert dict(parse_quantize("int8", BOTH, target)) == {"tflite": ("fp32", "int8"), "coreml": ("fp32", "int8")}
        assert skipped_schemes("int8", BOTH, target) == []


def test_keep_float_parsing():
    keep = parse_keep_float(["first,last", "small", "block_3"])
    assert (keep.first, keep.last, keep.small, keep.names) == (True, True, 2048, ("block_3",))
    assert parse_keep_float("first-last,small=100").small == 100
    default = parse_keep_float(None)
    assert default.small is None and default.small_for("tflite", "int8-weights") == 1024  # the legacy TFLite rule
    assert default.small_for("coreml", "lut4") == 0 and default.coreml_threshold("lut4") == 0
    assert parse_keep_float("small=600").coreml_threshold("lut4") == 599  # coremltools keeps sizes <= threshold
    with pytest.raises(UsageError):
        parse_keep_float("small=many")


@pytest.mark.parametrize("kwargs, message", [
    ({"quantize": "int8"}, "int8 needs calibration data"),
    ({"quantize": "int8-weights", "int8_io": True}, "--int8-io applies to TFLite int8 only"),
    ({"quantize": "fp16", "calibration": "x.npy"}, "--calibration is only used by --quantize int8"),
    ({"quantize": "fp16", "per_tensor": True}, "--per-tensor applies to int8-weights, int8 and int16x8"),
    ({"quantize": "int16x8"}, "int16x8 needs calibration data"),
    ({"quantize": "int8,int16x8"}, "int8 and int16x8 need calibration data"),
    ({"quantize": "int16x8", "calibration": "x.npy", "int8_io": True}, "--int8-io applies to TFLite int8 only"),
    ({"quantize": "fp16", "lut_group_size": 16}, "--lut-group-size applies to the lut schemes"),
    ({"quantize": "coreml=int4"}, "needs --coreml-target iOS18"),
    ({"quantize": "coreml=lut4", "lut_group_size": 16}, "needs --coreml-target iOS18"),
    ({"quantize": "int8", "calibration": "x.npy", "calibration_samples": 0}, "at least 1"),
    ({"quantize": "fp16", "lut_budget": 10}, "--lut-budget applies to the lut schemes"),
    ({"quantize": "coreml=lut4", "lut_budget": 10, "lut_group_size": 4, "coreml_target": "iOS18"}, "exclude each other"),
    ({"quantize": "coreml=lut4", "lut_budget": 150}, "from 0 to 100"),
])
def test_flag_combinations_fail_before_any_work(kwargs, message):
    with pytest.raises(UsageError) as caught:
        build_options(BOTH, **kwargs)
    assert message in caught.value.message


def test_ios18_schemes_accepted_with_the_target():
    options = build_options(BOTH, quantize="int4,lut4", lut_group_size=16, coreml_target="iOS18")
    assert options.schemes("coreml") == ("fp32", "int4", "lut4")
    assert options.schemes("tflite") == ("fp32", "int4")
    assert options.lut_grouped and options.lut_budget == 8.0
    assert not build_options(BOTH, quantize="lut4").lut_grouped  # iOS16: one table per tensor or fp16 only
