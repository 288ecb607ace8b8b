"""TFLite artifacts with the LiteRT interpreter, called through a signature by name (what apps call).

Integer inputs and outputs that carry a (scale, zero point) are quantized / dequantized here:
``q = clamp(round_half_away(x / scale) + zero_point)`` and ``x = (q - zero_point) * scale``,
TFLite's own rounding. Callers feed and receive floats, so a full-int8 artifact compares with
its float source directly. Plain integer tensors (scale 0) pass through unchanged.

Inference uses the default op resolver (XNNPACK on CPU, what an Android app gets); ``trace``
builds a second interpreter with builtin kernels only and every tensor preserved, because the
delegate does not keep intermediates.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError, UsageError
from deploykit.core.types import TensorSpec
from deploykit.runners.base import Intermediate, Runner


class LiteRTRunner(Runner):
    name = "litert"

    def __init__(self, path, *, signature: str | None = None, dequantize: bool = True):
        super().__init__()
        self.path = str(path)
        self.signature = signature
        self.dequantize = dequantize
        self._runner = None
        self._details: tuple[dict, dict] = ({}, {})
        self.notes = ("TFLite run by the LiteRT interpreter (ai-edge-litert, default CPU kernels with XNNPACK)",)

    def activate_impl(self):
        interpreter = _interpreter(self.path, preserve=False)
        self._runner, key = _signature_runner(interpreter, self.signature, self.path)
        self.signature = key
        ins, outs = self._runner.get_input_details(), self._runner.get_output_details()
        self._details = (ins, outs)
        return (tuple(self._spec(n, d) for n, d in ins.items()), tuple(self._spec(n, d) for n, d in outs.items()))

    def deactivate_impl(self) -> None:
        self._runner = None

    def _spec(self, name: str, detail: dict) -> TensorSpec:
        quant = quantization(detail)
        dtype = np.dtype(detail["dtype"]).name
        if quant and self.dequantize:
            dtype = "float32"  # this runner takes and gives floats for quantized tensors
        from deploykit.formats.tflite.signature import signature_shape

        return TensorSpec(name, signature_shape(detail), dtype, None, quant)

    @property
    def quantized_io(self) -> dict[str, tuple[float, int, str]]:
        """Tensor name -> (scale, zero point, storage dtype) for every quantized input and output."""
        ins, outs = self._details
        return {n: (*quantization(d), np.dtype(d["dtype"]).name) for n, d in {**ins, **outs}.items() if quantization(d)}

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        ins, outs = self._details
        ready = {n: self._to_tensor(v, ins[n]) for n, v in feeds.items()}
        result = self._runner(**ready)
        return {n: self._from_tensor(np.asarray(result[n]), outs[n]) for n in outs}

    def _to_tensor(self, value: np.ndarray, detail: dict) -> np.ndarray:
        quant = quantization(detail)
        if quant and self.dequantize:
            return quantize(value, quant, np.dtype(detail["dtype"]))
        return value.astype(detail["dtype"], copy=False)

    def _from_tensor(self, value: np.ndarray, detail: dict) -> np.ndarray:
        quant = quantization(detail)
        return dequantize(value, quant) if quant and self.dequantize else value

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        ready = self.check_feeds(feeds)
        interpreter = _interpreter(self.path, preserve=True)
        runner, _ = _signature_runner(interpreter, self.signature, self.path)
        ins = runner.get_input_details()
        runner(**{n: self._to_tensor(v, ins[n]) for n, v in ready.items()})
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
        records, produced = [], {}
        for op in interpreter._get_ops_details():  # the only API that lists ops with their tensors
            for index in op["outputs"]:
                detail = details.get(int(index))
                if detail is None:
                    continue
                try:
                    value = interpreter.get_tensor(int(index))
                except ValueError:  # tensors the runtime freed despite preservation
                    continue
                quant = quantization(detail)
                if quant:
                    value = dequantize(value, quant)
                elif not np.issubdtype(value.dtype, np.floating):
                    continue
                name = f"{detail['name']}#{index}"
                inputs = tuple(produced[i] for i in op["inputs"] if i in produced)
                produced[int(index)] = name
                scope = detail["name"].split(";")[0] or f"tensor {index}"
                records.append(Intermediate(name, scope, op["op_name"], np.array(value, copy=True), inputs))
        return records


def quantization(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return (float(scale), int(zero_point)) if scale else None


def quantize(value: np.ndarray, quant: tuple[float, int], dtype: np.dtype) -> np.ndarray:
    scale, zero_point = quant
    scaled = np.asarray(value, dtype=np.float64) / scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # TFLite rounds half away from zero
    info = np.iinfo(dtype)
    return np.clip(rounded + zero_point, info.min, info.max).astype(dtype)


def dequantize(value: np.ndarray, quant: tuple[float, int]) -> np.ndarray:
    scale, zero_point = quant
    return ((value.astype(np.float64) - zero_point) * scale).astype(np.float32)


def representable_range(scale: float, zero_point: int, storage_dtype: str) -> tuple[float, float]:
    """The float interval a quantized tensor can express."""
    info = np.iinfo(np.dtype(storage_dtype))
    return ((info.min - zero_point) * scale, (info.max - zero_point) * scale)


def _interpreter(path: str, *, preserve: bool):
    from deploykit.formats.litert_facade import interpreter

    _refuse_flex(path)
    try:  # tracing every tensor needs the builtin kernels: a delegate fuses them away
        return interpreter(path, delegates=not preserve, preserve_all_tensors=preserve)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"LiteRT cannot open {path}: {str(exc).splitlines()[0][:300]}") from exc


def _refuse_flex(path: str) -> None:
    """A model with Select-TF (Flex) ops: a deploykit error naming them, not LiteRT's RuntimeError at
    allocation ("Select TensorFlow op(s) ... not supported by this interpreter")."""
    from deploykit.formats.tflite.flex import SELECT_TF_LIBRARY, flex_ops

    try:
        ops = flex_ops(path)
    except (OSError, ValueError, AttributeError):  # unreadable: the interpreter reports it below
        return
    if ops:
        raise UnsupportedOperatorError(
            f"{path} needs Select-TF op(s) {', '.join(ops)}, which stock LiteRT (ai-edge-litert) cannot run, "
            "so deploykit cannot run it either",
            hint=f"an app that runs it needs {SELECT_TF_LIBRARY}; convert without --allow-flex to get a builtin-only "
                 "model (deploykit's ladder tries onnx2tf's pseudo-op formulas), or replace the operator in the source")


def _signature_runner(interpreter, key: str | None, path: str):
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise InputError(f"{path} has no signature; deploykit calls TFLite models by signature name",
                         hint="convert it with deploykit, which writes a serving_default signature")
    if key is None:
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    if key not in signatures:
        raise UsageError(f"{path} has no signature {key!r}", hint=f"signatures: {', '.join(sorted(signatures))}")
    return interpreter.get_signature_runner(key), key
