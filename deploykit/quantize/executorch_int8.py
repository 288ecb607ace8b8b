"""ExecuTorch ``int8`` on XNNPACK through PT2E: torchao's ``prepare_pt2e`` / ``convert_pt2e`` with the XNNPACK
quantizer (per-channel symmetric int8 weights, per-tensor int8 activations calibrated on the given samples)."""

from __future__ import annotations

from typing import Sequence

from deploykit.core.errors import ConversionError, UsageError, first_line
from deploykit.core.types import TensorSpec


def calibration_samples(calibration, inputs: Sequence[TensorSpec]) -> tuple:
    """``Calibration.feeds`` (dicts by input name) as ExecutorchOptions.calibration: tuples in input order."""
    return tuple(tuple(feed[spec.name] for spec in inputs) for feed in calibration.feeds)


def quantized_program(program, examples, samples, input_names):
    """PT2E: annotate with the XNNPACK quantizer, observe the calibration samples, convert, re-export."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from deploykit.formats.executorch_facade import xnnpack_int8_quantizer

    quantizer = xnnpack_int8_quantizer()
    batches = [_sample_tensors(s, examples, input_names) for s in samples]
    try:
        prepared = prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(*batch)
        converted = convert_pt2e(prepared)
        quantized = torch.export.export(converted, tuple(examples))
    except Exception as exc:
        raise ConversionError(f"PT2E int8 quantization failed: {first_line(exc)}",
                              hint="rerun with --verbose to see the log") from exc
    return quantized, {"method": "PT2E (torchao prepare_pt2e / convert_pt2e) with XNNPACKQuantizer",
                       "weights": "int8 symmetric per-channel", "activations": "int8 per-tensor (calibrated)",
                       "io": "float32", "calibration_samples": len(batches)}


def _sample_tensors(sample, examples, input_names) -> tuple:
    import numpy as np
    import torch

    if isinstance(sample, dict):
        names = list(input_names) if input_names else list(sample)
        sample = tuple(sample[n] for n in names)
    elif isinstance(sample, np.ndarray) or isinstance(sample, torch.Tensor):
        sample = (sample,)
    if len(sample) != len(examples):
        raise UsageError(f"a calibration sample has {len(sample)} array(s); the model takes {len(examples)} input(s)")
    tensors = []
    for value, example in zip(sample, examples):
        tensor = torch.as_tensor(np.asarray(value)).to(example.dtype)
        if tuple(tensor.shape) != tuple(example.shape):
            if tensor.shape == example.shape[1:] and example.shape[0] == 1:
                tensor = tensor[None]
            else:
                raise UsageError(f"a calibration sample has shape {tuple(tensor.shape)}, the input "
                                 f"takes {tuple(example.shape)}")
        tensors.append(tensor)
    return tuple(tensors)
