"""The target catalogue: every target describes itself completely, and every stage finds it by name, by an
artifact's suffix and by a bundle's platform and variant."""

from __future__ import annotations

import dataclasses

import pytest

from deploykit.core.errors import InputError, UsageError
from deploykit.core.types import Artifact
from deploykit.image_io.feeds import KINDS
from deploykit.targets import TARGETS, for_bundle, for_path, get, parse_targets, runner_for
from deploykit.targets.base import BundleSlot, Target


def _artifact(target: str, variant: str = "fp16", **quantization) -> Artifact:
    return Artifact(target=target, variant=variant, path=f"m.{variant}{TARGETS[target].suffix}", size_bytes=1,
                    sha256="0" * 64, inputs=(), outputs=(), converter="", conversion_seconds=0.0, op_histogram={},
                    quantization=quantization or None)


def test_every_target_describes_itself():
    assert list(TARGETS) == ["tflite", "coreml", "executorch", "ncnn"]
    suffixes = [t.suffix for t in TARGETS.values()]
    assert len(set(suffixes)) == len(suffixes) and all(s.startswith(".") for s in suffixes)
    for name, target in TARGETS.items():
        assert isinstance(target, Target) and target.name == name and target.title and target.plot_title
        # an NCNN bundle names its .param (the .bin beside it): a suffix the target also reads
        assert target.bundle_model.startswith("model/model.")
        assert target.bundle_model.endswith((target.suffix, *target.also_reads))
        assert target.tool_packages and set(target.sources) <= {"keras", "torch", "onnx"}
        assert target.pixel_feed is None or (target.pixel_feed.kind in KINDS and target.pixel_feed.target == name)
        for method in ("make", "interface", "graph_check", "runner", "inspect", "bundle_slots", "bundle_payload"):
            assert getattr(type(target), method) is not getattr(Target, method), f"{name} lacks {method}"


def test_an_artifact_is_found_by_its_suffix():
    assert for_path("dist/m.fp16.tflite").name == "tflite"
    assert for_path("dist/m.fp32.mlpackage/").name == "coreml" and for_path("old.mlmodel").name == "coreml"
    assert for_path("m.int8.pte").name == "executorch"
    assert for_path("dist/m.fp16.ncnn").name == "ncnn" and for_path("pnnx/model.ncnn.param").name == "ncnn"
    with pytest.raises(InputError, match="cannot tell the artifact type of model.onnx"):
        for_path("model.onnx")


def test_targets_are_parsed_and_checked():
    assert parse_targets("coreml, tflite,coreml") == ("coreml", "tflite")
    assert parse_targets(["executorch"]) == ("executorch",)
    with pytest.raises(UsageError, match="unknown target tflit"):
        parse_targets("tflit")
    with pytest.raises(UsageError, match="no target given"):
        parse_targets(" , ")
    with pytest.raises(UsageError, match="unknown target 'mnn'"):
        get("mnn")


def test_bundles_of_each_target_and_back():
    assert get("tflite").bundle_slots(_artifact("tflite")) == (BundleSlot("android", "litert", "tflite"),)
    assert get("coreml").bundle_slots(_artifact("coreml")) == (BundleSlot("ios", "coreml", "mlpackage"),)
    executorch = get("executorch")
    assert [s.platform for s in executorch.bundle_slots(_artifact("executorch", backend="xnnpack"))] == ["android", "ios"]
    assert [s.platform for s in executorch.bundle_slots(_artifact("executorch", backend="coreml"))] == ["ios"]
    assert executorch.bundle_variant(_artifact("executorch", "int8")) == "executorch-int8"
    assert get("tflite").bundle_variant(_artifact("tflite", "int8")) == "int8"
    # what a build's gates read back from a published release: which job made each bundle
    assert [(t.name, v) for t, v in (for_bundle("android", "fp16"), for_bundle("ios", "lut4"),
                                     for_bundle("android", "executorch-fp16"), for_bundle("ios", "executorch-int8"))] == [
        ("tflite", "fp16"), ("coreml", "lut4"), ("executorch", "fp16"), ("executorch", "int8")]


def test_sources_and_pixel_inputs_a_target_refuses():
    source = dataclasses.make_dataclass("Source", ["framework", "format"])
    get("tflite").check_source(source("onnx", "onnx"))
    with pytest.raises(UsageError, match="--to executorch needs a PyTorch source"):
        get("executorch").check_source(source("keras", "keras"))
    with pytest.raises(UsageError, match="--image-input is not made for ExecuTorch programs"):
        get("executorch").check_images(("image",))
    get("coreml").check_images(("image",))


def test_a_missing_artifact_has_no_runner(tmp_path):
    with pytest.raises(InputError, match="artifact not found"):
        runner_for(tmp_path / "missing.tflite")
