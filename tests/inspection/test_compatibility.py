"""Accelerator compatibility (docs/compatibility.md): the analyzer's text read back, and the record's block of real
conversions: XNNPACK refusing a CUMSUM, ExecuTorch's delegate leaving it to the portable kernels, Core ML static."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, save_pt2

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]

# Real output of an older analyzer that still checked ops for the GPU delegate (TensorFlow 2.13, quoted in
# tensorflow/tensorflow#61743), and the per-subgraph summary of TensorFlow 2.8.2 (google/automl#1174).
ANALYZER_2_13 = """\
Subgraph#0 main(T#0) -> [T#31]
  Op#0 EXPAND_DIMS(T#0, T#13[1]) -> [T#15]
GPU COMPATIBILITY WARNING: Not supported op EXPAND_DIMS
  Op#1 TILE(T#15, T#7[1, 4, 1]) -> [T#16]
  Op#2 SHAPE(T#0) -> [T#17]
GPU COMPATIBILITY WARNING: Not supported op SHAPE
  Op#3 STRIDED_SLICE(T#17, T#9[1], T#10[0], T#9[1]) -> [T#18]
GPU COMPATIBILITY WARNING: STRIDED_SLICE supports for 3 or 4 dimensional tensors only.
  Op#4 CONCATENATION(T#5[4], T#18) -> [T#19]
  Op#5 RESHAPE(T#16, T#19) -> [T#20]
GPU COMPATIBILITY WARNING: Expected 1 runtime input tensor(s), but node has 2 runtime input(s).
  Op#6 WHILE(T#11[0], T#4[2, 0, 0, 0, 0, ...], T#13[1], T#14, T#20, Cond: Subgraph#1, Body: Subgraph#2) -> [T#21, T#22, T#23, T#24, T#25]
GPU COMPATIBILITY WARNING: Not supported op WHILE
  Op#7 RESHAPE(T#22, T#8[1, 4, 15]) -> [T#26]
  Op#8 RESHAPE(T#24, T#1[1, 4]) -> [T#27]
  Op#9 TOPK_V2(T#27, T#6[4]) -> [T#28, T#29]
GPU COMPATIBILITY WARNING: Not supported op TOPK_V2
"""
SUMMARY_2_8 = """\
  Op#482 TFLite_Detection_PostProcess(T#600, T#601, T#602) -> [T#603, T#604, T#605, T#606]
GPU COMPATIBILITY WARNING: Not supported custom op TFLite_Detection_PostProcess

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 482 with TFLite runtime version 2.8.2
"""


def run(*args):
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=900)


# -- the analyzer's text ----------------------------------------------------------------------------------
def test_parser_attaches_each_warning_to_the_op_above_it():
    from deploykit.formats.tflite.analyzer import parse

    found = parse(ANALYZER_2_13)
    assert [op.op for op in found.ops] == ["EXPAND_DIMS", "TILE", "SHAPE", "STRIDED_SLICE", "CONCATENATION", "RESHAPE",
                                          "WHILE", "RESHAPE", "RESHAPE", "TOPK_V2"]
    refused = {(op.index, op.op): op.gpu_warning for op in found.refused}
    assert refused == {(0, "EXPAND_DIMS"): "Not supported op EXPAND_DIMS", (2, "SHAPE"): "Not supported op SHAPE",
                       (3, "STRIDED_SLICE"): "STRIDED_SLICE supports for 3 or 4 dimensional tensors only.",
                       (5, "RESHAPE"): "Expected 1 runtime input tensor(s), but node has 2 runtime input(s).",
                       (6, "WHILE"): "Not supported op WHILE", (9, "TOPK_V2"): "Not supported op TOPK_V2"}


def test_parser_reads_the_summary_as_the_verdict_not_as_an_op_warning():
    from deploykit.formats.tflite.analyzer import parse

    found = parse(SUMMARY_2_8)
    assert found.gpu_verdict == "incompatible" and found.runtime_version == "2.8.2"
    assert [(op.op, op.gpu_warning) for op in found.ops] == [
        ("TFLite_Detection_PostProcess", "Not supported custom op TFLite_Detection_PostProcess")]


def test_installed_analyzer_passes_an_op_no_delegate_has():
    """LiteRT 2.3.0's analyzer prints "looks compatible" for a custom op no GPU delegate can run: it checks no op.
    When an upgrade brings the check back this fails: the GPU entry then reports refused ops (update
    docs/compatibility.md and bench/results/compatibility.md)."""
    from deploykit.formats import litert_facade
    from deploykit.formats.tflite import analyzer

    text = litert_facade.analyze(_canary(), gpu_compatibility=True)
    found = analyzer.parse(text)
    assert [op.op for op in found.ops] == [analyzer.CANARY_OP]
    assert found.gpu_verdict == "compatible" and not found.refused
    assert analyzer.checks_gpu_ops() is False


def _canary():
    import tempfile
    from pathlib import Path

    from deploykit.formats.tflite.analyzer import canary_model

    path = Path(tempfile.mkdtemp(prefix="deploykit-test-")) / "canary.tflite"
    path.write_bytes(canary_model())
    return path


def test_gpu_entry_takes_the_analyzers_reasons_when_it_checks():
    from deploykit.formats.tflite.analyzer import parse
    from deploykit.inspection.compat_tflite import gpu_entry

    entry = gpu_entry(parse(ANALYZER_2_13), checks=True)
    assert (entry["ops"], entry["supported"]) == (10, 4)
    assert {"op": "TOPK_V2", "count": 1, "reason": "Not supported op TOPK_V2"} in entry["refused"]
    unchecked = gpu_entry(parse(ANALYZER_2_13), checks=False)
    assert unchecked["supported"] is None and unchecked["refused"] == [] and "not checked" in unchecked["unavailable"]


# -- the record of real conversions -------------------------------------------------------------------------
class CumsumNet:
    """A convolution then a cumulative sum over channels: XNNPACK takes the one, not the other."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

            def forward(self, x):
                return torch.cumsum(torch.relu(self.conv(x)), dim=1)

        torch.manual_seed(0)
        return Net().eval()


@pytest.fixture(scope="module")
def cumsum(tmp_path_factory):
    """The net converted by the CLI to the three targets (ExecuTorch with XNNPACK), once for all xdist workers."""
    import torch
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "compatibility-cumsum"
    folder.mkdir(exist_ok=True)
    source, record = folder / "cumsum.pt2", folder / "record.json"
    with FileLock(str(folder / ".lock")):
        if not record.exists():
            module = CumsumNet.build()
            torch.export.save(torch.export.export(module, (torch.rand(1, 3, 16, 16),)), source)
            result = run("convert", source, "--to", "tflite,coreml,executorch", "--no-verify", "--out", folder / "dist",
                         "--json")
            assert result.returncode == 0, result.stderr
            record.write_text(result.stdout)
    artifacts = {a["target"]: a for a in json.loads(record.read_text())["artifacts"]}
    return folder / "dist", artifacts


def test_tflite_record_names_the_op_xnnpack_refuses(cumsum):
    _, artifacts = cumsum
    block = artifacts["tflite"]["compatibility"]
    assert block["static"] is False and "XNNPACK delegate in ai-edge-litert" in block["checked_with"]
    gpu, xnnpack = block["accelerators"]
    ops = sum(artifacts["tflite"]["op_histogram"].values())
    if gpu_checked():  # TensorFlow 2.16.2's analyzer (setup.sh): its GPU rules take a cumulative sum
        assert (gpu["name"], gpu["ops"], gpu["supported"], gpu["refused"]) == ("gpu", ops, ops, [])
        assert "TensorFlow 2.16.2's model analyzer" in block["checked_with"]
    else:
        assert (gpu["name"], gpu["ops"], gpu["supported"]) == ("gpu", ops, None) and "not checked" in gpu["unavailable"]
    assert (xnnpack["name"], xnnpack["ops"], xnnpack["supported"]) == ("xnnpack", ops, ops - 1)
    assert [(r["op"], r["count"]) for r in xnnpack["refused"]] == [("CUMSUM", 1)]
    assert "runs on LiteRT's builtin kernels" in xnnpack["refused"][0]["reason"]


def test_executorch_record_leaves_the_cumsum_to_the_portable_kernels(cumsum):
    _, artifacts = cumsum
    block = artifacts["executorch"]["compatibility"]
    (entry,) = block["accelerators"]
    assert (entry["name"], entry["title"]) == ("delegate", "XNNPACK delegate")
    refused = {r["op"]: r["count"] for r in entry["refused"]}
    assert refused.get("aten::cumsum.out") == 1 and not any("convolution" in op for op in refused)
    assert entry["ops"] == entry["supported"] + sum(refused.values()) and entry["supported"] >= 1
    # the export's own count (the Edge program, before lowering) is a note: only convert has it
    assert any("the export's partitioner delegated" in note for note in block["notes"])


def test_coreml_record_is_static_with_its_ops_and_dtypes(cumsum):
    _, artifacts = cumsum
    block = artifacts["coreml"]["compatibility"]
    assert block["static"] is True
    (entry,) = block["accelerators"]
    assert entry["static"] is True and entry["supported"] is None and entry["refused"] == []
    assert entry["op_types"]["cumsum"] == 1 and entry["op_types"]["conv"] == 1
    assert entry["ops"] == sum(entry["op_types"].values()) and entry["dtypes"] == ["fp32"]
    assert any("MLComputePlan" in note for note in block["notes"])


def test_inspect_shows_what_the_record_holds(cumsum):
    from deploykit.pipeline.inspect import inspect_model

    dist, artifacts = cumsum
    for target in ("tflite", "coreml", "executorch"):
        figures = inspect_model(dist / artifacts[target]["path"]).to_json()
        assert figures["compatibility"]["accelerators"] == artifacts[target]["compatibility"]["accelerators"], target
    table = run("inspect", dist / artifacts["tflite"]["path"])
    assert table.returncode == 0, table.stderr
    assert "Accelerator compatibility" in table.stdout and "CUMSUM x1" in table.stdout


def test_a_net_xnnpack_takes_whole_refuses_nothing(tmp_path, model_dir):
    import deploykit

    report = deploykit.convert(save_pt2("mobilenet", model_dir), to="tflite", out=tmp_path, verify=False)
    gpu, xnnpack = report.artifacts[0].compatibility["accelerators"]
    assert xnnpack["supported"] == xnnpack["ops"] == sum(report.artifacts[0].op_histogram.values()) > 0
    assert xnnpack["refused"] == [] and gpu["supported"] == (gpu["ops"] if gpu_checked() else None)


def gpu_checked() -> bool:
    from deploykit.formats.tflite import analyzer

    return analyzer.gpu_analyzer() is not None


def test_the_gpu_delegate_refuses_top_k_with_the_analyzers_reason(tmp_path):
    """A TFLite graph ending in TOPK_V2 (written by TensorFlow's converter): LiteRT's GPU delegate has no TOPK_V2
    (TensorFlow 2.16.2's analyzer, which setup.sh extracts, says so in its own words; the installed one checks
    nothing), while XNNPACK's refusals come from the interpreter as usual."""
    import tensorflow as tf

    from deploykit.inspection.compat_tflite import compatibility

    if not gpu_checked():
        pytest.skip("no analyzer here checks GPU compatibility (setup.sh extracts TensorFlow 2.16.2's)")

    class TopK(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def top(self, x):
            return tf.math.top_k(tf.nn.relu(x), k=3).values

    module = TopK()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.top.get_concrete_function()], module)
    path = tmp_path / "topk.tflite"
    path.write_bytes(converter.convert())
    block = compatibility(path)
    gpu, xnnpack = block["accelerators"]
    assert "TensorFlow 2.16.2's model analyzer" in block["checked_with"]
    assert [(r["op"], r["count"], r["reason"]) for r in gpu["refused"]] == [("TOPK_V2", 1, "Not supported op TOPK_V2")]
    assert gpu["supported"] == gpu["ops"] - 1 and "TOPK_V2" in {r["op"] for r in xnnpack["refused"]}


# -- a failing analysis ------------------------------------------------------------------------------------
def test_a_failing_analysis_is_recorded_not_raised(tmp_path):
    from deploykit.pipeline.artifact import compatibility_of
    from deploykit.targets.tflite import TFLite

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    block = compatibility_of(TFLite(), broken, None, verbose=False)
    assert set(block) == {"unavailable"} and block["unavailable"].startswith("the TFLite (LiteRT) analysis failed: ")


def test_the_block_round_trips_through_the_record():
    from deploykit.core.types import Artifact

    block = {"static": False, "checked_with": "x", "accelerators": [
        {"name": "xnnpack", "title": "XNNPACK", "ops": 3, "supported": 2, "refused": [{"op": "CUMSUM", "count": 1,
                                                                                     "reason": "r"}]}], "notes": []}
    artifact = Artifact(target="tflite", variant="fp32", path="m.tflite", size_bytes=1, sha256="0", inputs=(),
                        outputs=(), converter="c", conversion_seconds=0.0, op_histogram={}, compatibility=block)
    assert Artifact.from_json(json.loads(json.dumps(artifact.to_json()))).compatibility == block
