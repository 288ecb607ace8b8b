"""PyTorch -> ExecuTorch ``.pte``: export, lower, serialize.

``torch.export`` gives an ATen program; ``to_edge_transform_and_lower`` turns it into the Edge dialect
and hands every part a partitioner takes to its backend (XNNPACK by default, the Core ML delegate, or
none: "portable", where every op runs in ExecuTorch's reference kernels); ``to_executorch`` plans memory
and serializes. Every executorch call goes through ``formats.executorch_facade``; where the ops run is
counted on the Edge program (``executorch_record``).

Schemes (``SCHEMES``): fp32 everywhere; fp16 on XNNPACK (``quantize.executorch_fp16``) and on the Core ML
delegate (its ML Program's compute precision); int8 on XNNPACK through PT2E (``quantize.executorch_int8``).
A TorchScript module is re-exported with ``torch._export.converter.TS2EPConverter`` where it can be.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from deploykit.converters import Converted
from deploykit.converters.executorch_record import (
    BACKEND_TITLES,
    PteRecord,
    count_ops,
    export_notes,
    slow_ops,
    slow_warning,
)
from deploykit.core.atomic import write_bytes_atomic
from deploykit.core.errors import ConversionError, UnsupportedOperatorError, UsageError, first_line
from deploykit.core.types import TensorSpec
from deploykit.loaders.torch_export import exported_program

BACKENDS = ("xnnpack", "coreml", "portable")
SCHEMES = {"xnnpack": ("fp32", "fp16", "int8"), "coreml": ("fp32", "fp16"), "portable": ("fp32",)}
SUFFIX = ".pte"
# Why a backend lacks a scheme, for the refusal (what it can do is listed from SCHEMES).
_MISSING = {
    ("portable", "fp16"): "the portable backend is the float32 reference; fp16 compute is XNNPACK's or Core ML's",
    ("portable", "int8"): "portable kernels run no quantized convolutions; int8 programs need XNNPACK",
    ("coreml", "int8"): "deploykit calibrates int8 with the XNNPACK quantizer, whose program the Core ML delegate "
                        "does not take",
}


@dataclass(frozen=True)
class ExecutorchOptions:
    """How to make one ``.pte``. ``calibration``: int8's samples, each a tuple of arrays in the model's
    input order (or a dict by input name, or a bare array for a one-input model); see
    :func:`deploykit.quantize.executorch_int8.calibration_samples` for a ``deploykit.quantize.calibration.Calibration``."""

    backend: str = "xnnpack"
    scheme: str = "fp32"
    calibration: tuple | None = field(default=None, compare=False, repr=False)
    coreml_target: str = "iOS16"  # the Core ML delegate's minimum deployment target


def label(options: ExecutorchOptions, torchscript: bool = False) -> str:
    via = "TS2EPConverter + " if torchscript else ""
    return f"{'torchscript' if torchscript else 'torch'}->executorch ({via}{BACKEND_TITLES[options.backend]})"


def check_options(options: ExecutorchOptions) -> ExecutorchOptions:
    """Refuse a backend or scheme this module cannot make, naming what it can."""
    if options.backend not in BACKENDS:
        raise UsageError(f"unknown ExecuTorch backend {options.backend!r}", hint=f"one of {', '.join(BACKENDS)}")
    can = SCHEMES[options.backend]
    if options.scheme not in can:
        why = _MISSING.get((options.backend, options.scheme), "")
        others = [b for b in BACKENDS if options.scheme in SCHEMES[b]]
        raise UsageError(
            f"the ExecuTorch {options.backend} backend cannot make {options.scheme}"
            f"{': ' + why if why else ''}; it makes {', '.join(can)}",
            hint=(f"--executorch-backend {' or '.join(others)} makes {options.scheme}" if others
                  else f"ExecuTorch schemes here: {', '.join(sorted({s for v in SCHEMES.values() for s in v}))}"))
    if options.scheme == "int8" and not options.calibration:
        raise UsageError("int8 needs calibration data: --calibration FILE.npy / FILE.npz / IMAGE_FOLDER",
                         hint="samples in the source model's input layout, a few dozen are enough")
    from deploykit.converters import check_coreml_target

    check_coreml_target(options.coreml_target)
    return options


def executorch_options(options) -> ExecutorchOptions:
    """The ExecuTorch options inside whatever the pipeline passes: an ExecutorchOptions, or an object
    with an ``executorch`` attribute holding one (ConvertOptions, once it has that field)."""
    if isinstance(options, ExecutorchOptions):
        return options
    inner = getattr(options, "executorch", None)
    return inner if isinstance(inner, ExecutorchOptions) else ExecutorchOptions()


# -- the conversion path -------------------------------------------------------------------------------
def convert(source, out_path: Path, options, workspace) -> Converted:
    """``convert()`` of the (torch, executorch) path. The PteRecord is left in
    ``workspace.products[("executorch", str(out_path))]`` for the pipeline's record."""
    from deploykit.core.flexible import has_flexible, refuse
    from deploykit.loaders.torch_loader import example_tensors

    opts = check_options(executorch_options(options))
    torchscript = bool(source.handle.get("torchscript"))
    if has_flexible(source.inputs):
        raise refuse(source, label(opts, torchscript), "deploykit exports ExecuTorch programs for one size per input")
    record = export_pte(source.handle["module"], example_tensors(source.inputs), Path(out_path), opts,
                        input_names=[t.name for t in source.inputs], output_names=[t.name for t in source.outputs])
    if workspace is not None:
        workspace.products[("executorch", str(out_path))] = record
    return Converted(Path(out_path), label(opts, torchscript), notes=record.sentences())


def export_pte(module, examples: tuple, out_path: Path, options: ExecutorchOptions, *,
               input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None) -> PteRecord:
    """Export ``module`` (an nn.Module, a TorchScript module or an ExportedProgram) on ``examples`` to a
    ``.pte`` at ``out_path`` for ``options.backend`` / ``options.scheme``, and describe it."""
    options = check_options(options)
    out_path = Path(out_path)
    started = time.perf_counter()
    with _quiet_upstream():
        quantization, extra_notes = None, []
        if options.scheme == "fp16" and options.backend == "xnnpack":
            from deploykit.quantize.executorch_fp16 import half_precision_program

            program, rewritten = half_precision_program(module, examples)
            if rewritten:
                extra_notes.append(f"fp16: {rewritten} SiLU rewritten as x * sigmoid(x) so XNNPACK runs them in half "
                                   "precision (PyTorch's SiLU decomposition would compute them in float32 between "
                                   "casts that XNNPACK does not take)")
        else:
            program = exported_program(module, examples)
            if options.scheme == "int8":
                from deploykit.quantize.executorch_int8 import quantized_program

                program, quantization = quantized_program(program, examples, options.calibration, input_names)
        edge = _lower(program, options)
        counts = count_ops(edge)
        try:
            buffer = edge.to_executorch().buffer
        except Exception as exc:
            raise ConversionError(f"ExecuTorch could not serialize the program: {first_line(exc)}",
                                  hint="rerun with --verbose to see ExecuTorch's log") from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_path, buffer)
    seconds = time.perf_counter() - started
    from deploykit.inspection.executorch_graph import inspect
    from deploykit.runners.executorch_runner import coreml_delegate_status

    inspection = inspect(out_path)
    inputs = _named(inspection.inputs, input_names, "input")
    outputs = _named(inspection.outputs, output_names, "output")
    verification = "checked by the ExecuTorch runtime on this machine (in a child process)"
    if options.backend == "coreml":
        verification = coreml_delegate_status(out_path)
    slow = slow_ops(counts)
    return PteRecord(
        path=str(out_path), backend=options.backend, scheme=options.scheme, size_bytes=out_path.stat().st_size,
        export_seconds=seconds, inputs=inputs, outputs=outputs,
        ops_total=sum(counts.delegated.values()) + sum(counts.portable.values()),
        ops_delegated=sum(counts.delegated.values()), ops_portable=sum(counts.portable.values()),
        delegated_ops=dict(counts.delegated.most_common()), portable_ops=dict(counts.portable.most_common()),
        delegates=counts.delegates, slow_ops=slow, slow_warning=slow_warning(out_path.name, slow, options.backend),
        verification=verification, quantization=quantization, weight_bytes=dict(inspection.weight_bytes),
        notes=tuple(extra_notes + export_notes(options, inspection, counts)),
    )


def _lower(program, options: ExecutorchOptions):
    from deploykit.formats.executorch_facade import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, _partitioners(options))
    except Exception as exc:
        text = first_line(exc)
        lowered = text.lower()
        if any(word in lowered for word in ("not supported", "unsupported", "core aten", "operator", "no kernel")):
            raise UnsupportedOperatorError(f"ExecuTorch ({options.backend}): {text}",
                                           hint="replace the operator, or try another --executorch-backend") from exc
        raise ConversionError(f"ExecuTorch ({options.backend}) could not lower the program: {text}",
                              hint="rerun with --verbose to see ExecuTorch's log") from exc


def _partitioners(options: ExecutorchOptions) -> list:
    from deploykit.formats import executorch_facade

    if options.backend == "xnnpack":
        return [executorch_facade.xnnpack_partitioner()]
    if options.backend == "coreml":
        return [executorch_facade.coreml_partitioner(options.scheme, options.coreml_target)]
    return []  # portable: nothing delegated, every op runs in a portable kernel


# -- helpers -------------------------------------------------------------------------------------------
def _named(infos, names, kind: str) -> tuple[TensorSpec, ...]:
    if names is not None and len(names) != len(infos):
        raise ConversionError(f"the program has {len(infos)} {kind}(s), the source {len(names)}")
    names = list(names) if names is not None else [f"{kind}_{i}" for i in range(len(infos))]
    return tuple(TensorSpec(n, tuple(t.shape), t.dtype, "NCHW" if len(t.shape) == 4 else None)
                 for n, t in zip(names, infos))


@contextlib.contextmanager
def _quiet_upstream():
    """ExecuTorch's partitioner logs a warning per op it refuses and coremltools a banner per conversion;
    the pipeline captures stdout/stderr, but Python loggers at WARNING would still reach the terminal."""
    import logging

    loggers = [logging.getLogger(n) for n in ("executorch", "coremltools", "torch._export", "torchao")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
