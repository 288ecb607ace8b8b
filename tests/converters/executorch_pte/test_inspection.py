"""``deploykit inspect model.pte``: XNNPACK nodes and portable kernels counted like the source."""

from __future__ import annotations

import pytest

from tests.converters.executorch_pte.helpers import conv_count


@pytest.mark.parametrize("backend", ["xnnpack", "portable"])
def test_mult_adds_match_the_source(pte, backend):
    from deploykit.pipeline.inspect import inspect_model
    from deploykit.inspection.executorch_graph import inspect

    source, record, _ = pte("mobilenet", backend)
    program, original = inspect(record.path), inspect_model(source.path)
    assert program.format == "pte"
    assert program.macs == original.macs > 0
    assert program.by_layer_type()["depthwise"]["macs"] == original.by_layer_type()["depthwise"]["macs"]
    assert [t.shape for t in program.inputs] == [t.shape for t in original.inputs]
    assert sum(program.weight_bytes.values()) <= record.size_bytes


def test_split_shows_delegate_calls_and_kernel_calls(pte):
    from deploykit.inspection.executorch_graph import inspect, split

    source, xnnpack, _ = pte("mobilenet")
    where = split(xnnpack.path)
    assert where.delegate_calls == {"XnnpackBackend": 1} and where.kernel_calls == {}
    nodes = where.delegates[0].nodes
    assert nodes["XNNConv2d"] + nodes["XNNDepthwiseConv2d"] == conv_count(source)
    assert inspect(xnnpack.path).op_histogram["XNNFullyConnected"] == 1

    _, portable, _ = pte("mobilenet", "portable")
    where = split(portable.path)
    assert where.delegate_calls == {} and where.delegates == ()
    assert where.kernel_calls["aten::convolution.out"] == conv_count(source)
    assert where.to_json()["portable_calls"] == sum(where.kernel_calls.values())


def test_int8_weights_are_stored_as_int8(pte):
    from deploykit.inspection.executorch_graph import inspect

    _, record, _ = pte("mobilenet", "xnnpack", "int8")
    found = inspect(record.path)
    # every weight element one int8 byte, every bias element an int32: together the parameters
    assert found.weight_bytes["int8"] + found.weight_bytes["int32"] // 4 == found.params > 0
    assert "float16" not in found.weight_bytes
