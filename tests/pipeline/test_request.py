"""One typed request: the flags parsed and checked before anything is loaded, the same job from the typed
form and from keywords, and a request for one variant that writes only it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import deploykit
from deploykit.core.errors import UsageError
from deploykit.pipeline.request import ConvertRequest, VerifyOptions, request
from tests.conftest import save_keras


def test_flags_become_typed_option_groups():
    made = request("m.keras", to="coreml,tflite", quantize="fp16,coreml=lut4", coreml_target="ios18", passes="none",
                   verify_options=VerifyOptions(samples=3, localize=True))
    assert made.targets == ("coreml", "tflite") and made.convert.coreml_target == "iOS18"
    assert made.schemes("coreml") == ("fp32", "fp16", "lut4") and made.schemes("tflite") == ("fp32", "fp16")
    assert made.passes.mode == "none" and made.verify.samples == 3
    assert made.verify.for_candidates() == replace(made.verify, localize=False)
    assert request("m.keras", verify=False).verify is None


@pytest.mark.parametrize("flags, message", [
    ({"to": "tflit"}, "unknown target tflit"),
    ({"coreml_target": "iOS9"}, "unknown Core ML deployment target"),
    ({"quantize": "int8"}, "int8 needs calibration data"),
    ({"quantize": "lut5"}, "unknown quantization scheme 'lut5'"),
    ({"passes": "fold_bn"}, "unknown pass fold_bn"),
    ({"executorch_backend": "vulkan"}, "unknown ExecuTorch backend"),
])
def test_bad_flags_fail_before_anything_is_loaded(flags, message):
    with pytest.raises(UsageError, match=message):
        request("nowhere.keras", **flags)  # the file does not exist: no loading happened


def test_typed_and_keyword_forms_run_the_same_job(tmp_path):
    source = save_keras("mobilenet", tmp_path)
    typed = deploykit.convert(request(source, to="tflite", out=tmp_path / "typed", verify_options=VerifyOptions(samples=2)))
    keywords = deploykit.convert(source, to="tflite", out=tmp_path / "keywords", verify_options=VerifyOptions(samples=2))
    assert [a.sha256 for a in typed.artifacts] == [a.sha256 for a in keywords.artifacts]
    with pytest.raises(TypeError, match="not both"):
        deploykit.convert(ConvertRequest(str(source)), to="coreml")


def test_a_variant_alone_leaves_its_fp32_base_unwritten(tmp_path):
    source = save_keras("mobilenet", tmp_path)
    both = deploykit.convert(source, to="tflite", out=tmp_path / "both", quantize="fp16")
    alone = deploykit.convert(replace(request(source, to="tflite", out=tmp_path / "alone", quantize="fp16"),
                                      write_fp32=False))
    assert [a.variant for a in alone.artifacts] == ["fp16"]
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == ["deploykit-report.json", "mobilenet_0.fp16.tflite",
                                                                     "report.html"]
    fp16 = next(a for a in both.artifacts if a.variant == "fp16")
    assert alone.artifacts[0].sha256 == fp16.sha256  # derived from the same fp32 base, byte for byte
    record = json.loads((tmp_path / "alone" / "deploykit-report.json").read_text())
    assert [a["variant"] for a in record["artifacts"]] == ["fp16"] and record["artifacts"][0]["parity"]["passed"]
