"""What an NCNN conversion says when pnnx cannot give ncnn a model (found running the corpus through ``--to ncnn``):
the op pnnx left unconverted with the parameters it dropped, a layer ncnn's loader refuses named by type and name
(a conversion failure, so the ladder goes on, never a bad-input error about a file deploykit wrote), and pnnx's
own failures as one line without terminal colours or onnxruntime's warnings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deploykit.converters import pnnx_facade
from deploykit.converters.ncnn_common import write_artifact
from deploykit.core.errors import ConversionError
from deploykit.core.types import TensorSpec

LABEL = "onnx->ncnn (pnnx)"


def source(inputs, outputs):
    return SimpleNamespace(inputs=tuple(TensorSpec(n, s) for n, s in inputs),
                           outputs=tuple(TensorSpec(n, s) for n, s in outputs))


def test_an_op_pnnx_left_is_named_with_the_parameters_it_dropped(tmp_path):
    """ddddocr's YOLOX Focus: four strided slices, which NCNN's Crop cannot express."""
    text = """7767517
4 5
Input                    in0                      0 1 in0
Split                    splitncnn_0              1 2 in0 1 2
Tensor.slice             Tensor.slice_23          1 1 1 3
Tensor.slice             Tensor.slice_25          1 1 2 out0
"""
    log = "\n".join(f"ignore Tensor.slice Tensor.slice_{n} param {p}" for n in (23, 25)
                    for p in ("dims=(2,3)", "starts=(0,0)", "steps=(2,2)"))
    output = pnnx_facade.PnnxOutput(text, b"", log)
    with pytest.raises(ConversionError) as raised:
        write_artifact(output, source([("images", (1, 3, 8, 8))], [("y", (1, 3, 4, 4))]), tmp_path / "m.ncnn", LABEL)
    assert raised.value.message == (f"{LABEL}: pnnx left op(s) NCNN has no layer for: Tensor.slice x2 "
                                    "(Tensor.slice_23: dims=(2,3) starts=(0,0) steps=(2,2))")
    assert not (tmp_path / "m.ncnn").exists()


def test_a_layer_ncnn_refuses_is_a_conversion_error_naming_it(tmp_path):
    """openWakeWord's melspectrogram: an ONNX Clip whose lower bound is a tensor, left by pnnx under the name of
    NCNN's Clip, which takes one blob; ncnn's loader refuses it by index."""
    text = """7767517
4 5
Input                    in0                      0 1 in0
Split                    splitncnn_0              1 2 in0 1 2
Reduction                max_6                    1 1 2 3 0=4 1=1 4=0
Clip                     Clip_19                  2 1 1 3 out0
"""
    output = pnnx_facade.PnnxOutput(text, b"", "ignore Clip Clip_19 param max=inf\n")
    with pytest.raises(ConversionError) as raised:  # not InputError: the ladder would stop at the first route
        write_artifact(output, source([("input", (1, 8, 4))], [("mel", (1, 8, 4))]), tmp_path / "m.ncnn", LABEL)
    message = raised.value.message
    assert message.startswith(f"{LABEL}: ncnn cannot run the pair pnnx wrote: ")
    assert "one_blob_only layer 3; ncnn could not load the .param " in message
    assert message.endswith("(Clip 'Clip_19' with 2 input(s) and 1 output(s); pnnx left it unconverted: max=inf)")


def test_a_pair_that_crashes_ncnn_crashes_a_child_process_not_deploykit(tmp_path, monkeypatch):
    """ViT traced: pnnx's SDPA layer with a folded mask corrupts ncnn's heap on the first run (SIGABRT). The probe runs
    the pair in a child; its end becomes the conversion error, and the ladder goes on to the ONNX route."""
    import subprocess

    from deploykit.formats import ncnn_facade

    def crashed(args, **kwargs):
        assert args[1:3] == ["-m", "deploykit.formats.ncnn_facade"]
        return subprocess.CompletedProcess(args, -6, "", "malloc_consolidate(): invalid chunk size\n")

    monkeypatch.setattr(subprocess, "run", crashed)
    assert ncnn_facade.probe(tmp_path / "m.param", tmp_path / "m.bin") == (
        "ncnn crashed (SIGABRT) running it once on zeros: malloc_consolidate(): invalid chunk size")
    text = """7767517
2 2
Input                    in0                      0 1 in0
ReLU                     relu_0                   1 1 in0 out0
"""
    with pytest.raises(ConversionError, match="ncnn cannot run the pair pnnx wrote: ncnn crashed .SIGABRT."):
        write_artifact(pnnx_facade.PnnxOutput(text, b"", ""), source([("x", (1, 4))], [("y", (1, 4))]),
                       tmp_path / "m.ncnn", LABEL)


def test_a_pair_ncnn_loads_is_written_with_the_source_names(tmp_path):
    text = """7767517
2 2
Input                    in0                      0 1 in0
ReLU                     relu_0                   1 1 in0 out0
"""
    output = pnnx_facade.PnnxOutput(text, b"", "")
    write_artifact(output, source([("x", (1, 3, 4, 4))], [("y", (1, 3, 4, 4))]), tmp_path / "m.ncnn", LABEL)
    written = (tmp_path / "m.ncnn" / "model.ncnn.param").read_text()
    assert "Input" in written and " x " in f" {written} " and written.rstrip().endswith("x y")


def test_pnnx_failures_are_one_line_without_colours_or_onnxruntime_warnings():
    """oww-hey-jarvis: pnnx runs onnxruntime to fold constants, which rejects the If's subgraph; pnnx then crashes."""
    log = ("#### pass_level0\nfold_constants ...                \x1b[0;93m2026-12-07 05:14:59.16 [W:onnxruntime:pnnx, "
           "cpuid_info.cc:105 LogEarlyWarning] Unknown CPU vendor. cpuinfo_vendor value: 0\x1b[m\n"
           'ort CreateSession failed This is an invalid model. In Node, ("If_32", If, "", -1) : ... Error Nodes in a '
           "graph must be topologically sorted\nname: Gemm_34 OpType: Gemm\n")
    reason = pnnx_facade._reason(log, -11)
    assert reason.startswith("pnnx crashed (SIGSEGV): ort CreateSession failed This is an invalid model. In Node, "
                             '("If_32", If')
    assert "\x1b" not in reason and "onnxruntime" not in reason and "\n" not in reason
    assert pnnx_facade._reason("", 3) == "exit code 3"
    assert pnnx_facade._reason("", -9) == "pnnx crashed (SIGKILL)"
