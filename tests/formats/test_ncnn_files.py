"""NCNN files as deploykit reads and writes them: the .param parser's refusals, blob renaming, and the fp16 .bin
deploykit writes from an fp32 one, against the one pnnx writes itself (``fp16=1``) from the same model."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError
from deploykit.formats.ncnn import pair, param, weights

PARAM = """7767517
4 4
Input                    in0                      0 1 in0
Convolution              conv_0                   1 1 in0 1 0=8 1=3 4=1 5=1 6=216 9=1
Pooling                  gap_0                    1 1 1 2 0=1 4=1
InnerProduct             linear_0                 1 1 2 out0 0=10 1=1 2=80
"""


def test_a_sound_param_is_read_with_its_blobs_and_histogram():
    graph = param.parse(PARAM)
    assert graph.input_blobs == ("in0",) and graph.output_blobs == ("out0",)
    assert graph.histogram() == {"Convolution": 1, "InnerProduct": 1, "Pooling": 1}
    assert graph.layers[1].param(6) == "216" and graph.input_shape("in0") is None


@pytest.mark.parametrize("text, words", [
    ("PK\x03\x04", "not an NCNN .param"),
    (PARAM.replace("4 4", "5 4"), "declares 5 layers but has 4"),
    (PARAM.replace("1 1 2 out0", "1 1 7 out0"), "reads blob '7' before any layer writes it"),
    (PARAM.replace("0=10 1=1", "0=10 junk"), "malformed parameter"),
    (PARAM.replace("Input                    in0                      0 1 in0", "ReLU r 0 1 in0"), "no Input layer"),
    (PARAM.replace("1 1 2 out0 0=10 1=1 2=80", "1 1 2"), "lists fewer blobs"),
])
def test_malformed_params_are_refused_before_ncnn_reads_them(text, words):
    with pytest.raises(InputError, match=words):
        param.parse(text)


def test_renaming_blobs_is_exact_and_declares_the_input_shape():
    text = param.renamed(PARAM, {"in0": "image", "out0": "logits"}, {"image": (3, 5, 7)})
    graph = param.parse(text)
    assert graph.input_blobs == ("image",) and graph.output_blobs == ("logits",)
    assert graph.input_shape("image") == (3, 5, 7)
    assert graph.layers[1].inputs == ("image",) and graph.layers[1].params == param.parse(PARAM).layers[1].params
    with pytest.raises(InputError, match="other blobs of that name"):
        param.renamed(PARAM, {"in0": "1"})


def test_blob_names_are_made_ncnn_safe():
    assert param.blob_name("input ids") == "input_ids" and param.blob_name("x.1") == "x.1"
    assert len(param.blob_name("a" * 400)) == param.MAX_NAME


def test_an_incomplete_pair_is_refused(tmp_path):
    (tmp_path / "m.param").write_text(PARAM)
    with pytest.raises(InputError, match="m.bin not found"):
        pair.files(tmp_path / "m.param")


def test_the_fp16_bin_deploykit_writes_has_pnnx_fp16_layout(tmp_path):
    """Same length and bytes as pnnx's own for the zoo's MobileNet-style net, but for halves too small for a normal
    fp16: pnnx flushes them to zero, deploykit keeps them (subnormal)."""
    import torch

    from deploykit.converters import pnnx_facade
    from deploykit.core.types import TensorSpec
    from tests.zoo import torch_nets

    module = torch_nets.build("mobilenet", 0)
    traced = torch.jit.trace(module, torch.rand(1, 3, 32, 32))
    torch.jit.save(traced, str(tmp_path / "m.pt"))
    spec = (TensorSpec("x", (1, 3, 32, 32)),)
    fp32 = pnnx_facade.convert(tmp_path / "m.pt", spec, fp16=False, label="test")
    fp16 = pnnx_facade.convert(tmp_path / "m.pt", spec, fp16=True, label="test")
    graph = param.parse(fp32.param_text)
    spans = weights.tagged_blobs(graph, fp32.weights)
    assert spans is not None and set(spans) == {l.name for l in graph.layers if l.type.startswith(("Convolution", "InnerProduct"))}
    ours = weights.to_fp16(fp32.weights, spans)
    assert len(ours) == len(fp16.weights)
    a, b = np.frombuffer(ours, "<u2"), np.frombuffer(fp16.weights, "<u2")
    differ = a != b
    assert differ.mean() < 0.001
    assert np.all((a[differ] & 0x7C00) == 0) and np.all((b[differ] & 0x7FFF) == 0)  # ours subnormal, pnnx's +-0
    assert weights.storage_of(ours) == "float16" and weights.storage_of(fp32.weights) == "float32"
    # a layer kept float32 keeps its bytes, and the file is then longer
    kept = next(iter(spans))
    mixed = weights.to_fp16(fp32.weights, spans, frozenset([kept]))
    assert len(ours) < len(mixed) < len(fp32.weights)


def test_a_bin_with_a_layer_deploykit_cannot_walk_is_left_alone():
    graph = param.parse(PARAM.replace("Pooling ", "Mystery "))
    assert weights.tagged_blobs(graph, bytes(4 + 216 * 4 + 8 * 4 + 4 + 800 * 4 + 40)) is None
