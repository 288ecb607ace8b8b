"""Every zoo net exported for XNNPACK (fp32) runs in the ExecuTorch runtime and matches PyTorch; the
record says where its ops run. Portable, fp16, int8 and the Core ML delegate on one net each."""

from __future__ import annotations

import pytest

from tests.converters.executorch_pte.helpers import ZOO, conv_count, cosine, relative_error, seeded_feeds, torch_outputs


def _run(record, source, feeds):
    """(outputs, the runner's name, its (input specs, output specs))."""
    from deploykit.runners.executorch_runner import runner_for_pte

    with runner_for_pte(record.path, input_names=[t.name for t in source.inputs],
                        output_names=[t.name for t in source.outputs]) as runner:
        return runner.infer(feeds), runner.name, (runner.input_specs, runner.output_specs)


@pytest.mark.parametrize("name", ZOO)
def test_fp32_xnnpack_matches_torch_and_delegates_every_convolution(pte, name):
    source, record, converted = pte(name)
    feeds = seeded_feeds(source)
    got, runner, _ = _run(record, source, feeds)
    want = torch_outputs(source, feeds)
    assert runner == "executorch"
    for output in want:
        assert relative_error(got[output], want[output]) < 1e-4, output
    assert set(record.delegates) == {"XnnpackBackend"}
    assert record.delegated_ops.get("aten.convolution.default", 0) == conv_count(source) > 0
    assert not any("convolution" in op for op in record.portable_ops)
    assert record.slow_warning is None and not record.slow
    assert record.ops_total == record.ops_delegated + record.ops_portable
    if name == "shufflenet":  # XNNPACK takes no split: its two channel splits run portable, between 3 delegates
        assert record.portable_ops == {"aten.split_with_sizes_copy.default": 2} and len(record.delegates) == 3
    else:
        assert record.delegated_share == 1.0 and record.delegates == ("XnnpackBackend",)
    assert record.inputs[0].name == source.inputs[0].name and record.inputs[0].shape == tuple(source.inputs[0].shape)
    assert record.size_bytes > 0 and converted.converter == "torch->executorch (XNNPACK)"
    assert any("delegated to XnnpackBackend" in note for note in converted.notes)


def test_portable_backend_runs_everything_in_portable_kernels_and_says_it_is_slow(pte):
    source, record, converted = pte("resnet", "portable")
    feeds = seeded_feeds(source)
    got, _, _ = _run(record, source, feeds)
    want = torch_outputs(source, feeds)
    assert relative_error(got["output"], want["output"]) < 1e-4
    assert record.delegates == () and record.ops_delegated == 0 and record.ops_portable == record.ops_total > 0
    assert record.slow_ops["convolution"] == conv_count(source)
    assert record.slow_ops["matmul"] == 1  # the classifier's linear, as addmm
    assert record.slow_warning.startswith(f"{record.path.rsplit('/', 1)[-1]} runs {conv_count(source)} convolutions")
    assert "in ExecuTorch's portable kernels, which are slow" in record.slow_warning
    assert converted.notes[0] == record.slow_warning  # the report leads with it


def test_int8_pt2e_runs_and_stays_close_to_fp32(pte):
    source, record, _ = pte("mobilenet", "xnnpack", "int8")
    feeds = seeded_feeds(source, seed=3)
    got, _, _ = _run(record, source, feeds)
    want = torch_outputs(source, feeds)
    assert cosine(got["output"], want["output"]) > 0.99
    assert record.quantization["calibration_samples"] == 8
    assert record.quantization["weights"] == "int8 symmetric per-channel"
    assert record.delegated_ops["quantized_decomposed.dequantize_per_channel.default"] == conv_count(source) + 1
    assert record.weight_bytes["int8"] == max(record.weight_bytes.values())  # float32: the per-channel scales
    fp32 = pte("mobilenet")[1]
    assert record.size_bytes < fp32.size_bytes


def test_fp16_xnnpack_computes_in_half_precision_with_float32_io(pte):
    source, record, _ = pte("efficientnet", "xnnpack", "fp16")
    feeds = seeded_feeds(source, seed=4)
    got, _, (inputs, outputs) = _run(record, source, feeds)
    want = torch_outputs(source, feeds)
    error = relative_error(got["output"], want["output"])
    assert 1e-6 < error < 2e-2  # half precision: not exact, not far
    assert inputs[0].dtype == "float32" and outputs[0].dtype == "float32"
    assert record.portable_ops == {"dim_order_ops._to_dim_order_copy.default": 2}  # the two casts
    assert record.delegated_ops["aten.convolution.default"] == conv_count(source)
    assert record.weight_bytes["float16"] > 0
    # ExecuTorch's XNNPACK serializer keeps convolution weights float32: the record says so, with the share
    assert record.weight_bytes["float32"] > 0
    assert any("stay float32" in note for note in record.notes)
    # its SiLUs are rewritten to stay in half precision: one delegate, not one per SiLU
    assert record.delegates == ("XnnpackBackend",)
    assert any(note.startswith("fp16: 7 SiLU rewritten") for note in record.notes)


def test_coreml_delegate_is_checked_through_its_embedded_ml_program(pte):
    from deploykit.inspection.executorch_graph import split

    source, record, converted = pte("squeezenet", "coreml")
    assert record.delegates == ("CoreMLBackend",) and record.ops_portable == 0
    assert record.verification.startswith("verifiable on this machine")
    feeds = seeded_feeds(source, seed=5)
    got, runner, _ = _run(record, source, feeds)
    assert runner == "executorch-coreml-numpy"
    assert relative_error(got["output"], torch_outputs(source, feeds)["output"]) < 1e-4
    assert converted.converter == "torch->executorch (Core ML delegate)"
    where = split(record.path)
    assert where.delegate_calls == {"CoreMLBackend": 1} and where.kernel_calls == {}
    assert where.delegates[0].nodes["conv"] == conv_count(source)
