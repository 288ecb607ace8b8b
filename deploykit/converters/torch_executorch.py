"""PyTorch -> ExecuTorch ``.pte``: the one seam to ExecuTorch's export and lowering API.

``torch.export`` gives an ATen program; ``to_edge_transform_and_lower`` turns it into the Edge dialect
and hands every part a partitioner takes to its backend (XNNPACK by default, the Core ML delegate, or
none: "portable", where every op runs in ExecuTorch's reference kernels); ``to_executorch`` plans memory
and serializes. Ops are counted on the Edge program: a ``executorch_call_delegate`` node holds the ops
it took in its lowered module's ``original_module``, every other ATen node runs in a portable kernel.

Schemes (``SCHEMES``): fp32 everywhere; fp16 on XNNPACK (the module in half precision between casts at
its inputs and outputs, so the program keeps float32 I/O like every other deploykit artifact) and on
the Core ML delegate (its ML Program's compute precision); int8 on XNNPACK through PT2E (torchao's
``prepare_pt2e`` / ``convert_pt2e`` with ``XNNPACKQuantizer``: per-channel symmetric int8 weights,
per-tensor int8 activations calibrated on the given samples). A TorchScript module is re-exported with
``torch._export.converter.TS2EPConverter`` where it can be.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from deploykit.converters import Converted
from deploykit.core.errors import ConversionError, InputError, UnsupportedOperatorError, UsageError
from deploykit.core.types import TensorSpec

BACKENDS = ("xnnpack", "coreml", "portable")
SCHEMES = {"xnnpack": ("fp32", "fp16", "int8"), "coreml": ("fp32", "fp16"), "portable": ("fp32",)}
BACKEND_TITLES = {"xnnpack": "XNNPACK", "coreml": "Core ML delegate", "portable": "portable kernels"}
SUFFIX = ".pte"
# Why a backend lacks a scheme, for the refusal (what it can do is listed from SCHEMES).
_MISSING = {
    ("portable", "fp16"): "the portable backend is the float32 reference; fp16 compute is XNNPACK's or Core ML's",
    ("portable", "int8"): "portable kernels run no quantized convolutions; int8 programs need XNNPACK",
    ("coreml", "int8"): "deploykit calibrates int8 with the XNNPACK quantizer, whose program the Core ML delegate "
                        "does not take",
}
# Edge op names (``aten.<op>.<overload>``) whose portable kernels are the slow ones: naive loops over
# every multiply-accumulate, single-threaded, no SIMD.
_CONVOLUTIONS = ("aten.convolution.", "aten.conv1d.", "aten.conv2d.", "aten.conv3d.", "aten.conv_transpose")
_MATMULS = ("aten.mm.", "aten.addmm.", "aten.bmm.", "aten.baddbmm.", "aten.matmul.", "aten.linear.")


@dataclass(frozen=True)
class ExecutorchOptions:
    """How to make one ``.pte``. ``calibration``: int8's samples, each a tuple of arrays in the model's
    input order (or a dict by input name, or a bare array for a one-input model); see
    :func:`calibration_samples` for a ``deploykit.quantize.calibration.Calibration``."""

    backend: str = "xnnpack"
    scheme: str = "fp32"
    calibration: tuple | None = field(default=None, compare=False, repr=False)
    coreml_target: str = "iOS16"  # the Core ML delegate's minimum deployment target


@dataclass(frozen=True)
class PteRecord:
    """What one export produced: the file, and where its ops run.

    ``ops_total`` = ``ops_delegated`` + ``ops_portable``: ATen ops of the Edge program the partitioner
    saw; ``delegates``: the backend id of each delegate call; ``slow_ops``: convolutions and matrix
    products left to portable kernels ({"convolution": n, "matmul": m}), with ``slow_warning`` saying so.
    ``verification``: how this machine can check the program's numbers.
    """

    path: str
    backend: str
    scheme: str
    size_bytes: int
    export_seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ops_total: int
    ops_delegated: int
    ops_portable: int
    delegated_ops: dict[str, int]
    portable_ops: dict[str, int]
    delegates: tuple[str, ...]
    slow_ops: dict[str, int]
    slow_warning: str | None
    verification: str
    quantization: dict[str, Any] | None = None
    weight_bytes: dict[str, int] = field(default_factory=dict)  # stored dtype -> bytes, read back from the file
    notes: tuple[str, ...] = ()

    @property
    def delegated_share(self) -> float:
        return self.ops_delegated / self.ops_total if self.ops_total else 0.0

    @property
    def slow(self) -> bool:
        return self.slow_warning is not None

    def sentences(self) -> tuple[str, ...]:
        """What a report prints about this program, the slow-kernel warning first."""
        split = (f"{self.ops_delegated} of {self.ops_total} ops ({100 * self.delegated_share:.0f} %) delegated"
                 f"{' to ' + ', '.join(sorted(set(self.delegates))) if self.delegates else ''}, "
                 f"{self.ops_portable} in portable kernels")
        return tuple(s for s in (self.slow_warning, split, self.verification, *self.notes) if s)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "backend": self.backend, "scheme": self.scheme, "size_bytes": self.size_bytes,
            "export_seconds": round(self.export_seconds, 2),
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "ops_total": self.ops_total, "ops_delegated": self.ops_delegated, "ops_portable": self.ops_portable,
            "delegated_share": round(self.delegated_share, 4), "delegated_ops": dict(self.delegated_ops),
            "portable_ops": dict(self.portable_ops), "delegates": list(self.delegates),
            "slow_ops": dict(self.slow_ops), "slow_warning": self.slow_warning, "verification": self.verification,
            "quantization": self.quantization, "weight_bytes": dict(self.weight_bytes), "notes": list(self.notes),
        }


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


def calibration_samples(calibration, inputs: Sequence[TensorSpec]) -> tuple:
    """``Calibration.feeds`` (dicts by input name) as ExecutorchOptions.calibration: tuples in input order."""
    return tuple(tuple(feed[spec.name] for spec in inputs) for feed in calibration.feeds)


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
            program, rewritten = _half_precision(module, examples)
            if rewritten:
                extra_notes.append(f"fp16: {rewritten} SiLU rewritten as x * sigmoid(x) so XNNPACK runs them in half "
                                   "precision (PyTorch's SiLU decomposition would compute them in float32 between "
                                   "casts that XNNPACK does not take)")
        else:
            program = exported_program(module, examples)
            if options.scheme == "int8":
                program, quantization = _quantized_int8(program, examples, options.calibration, input_names)
        edge = _lower(program, options)
        counts = count_ops(edge)
        try:
            buffer = edge.to_executorch().buffer
        except Exception as exc:
            raise ConversionError(f"ExecuTorch could not serialize the program: {_first_line(exc)}",
                                  hint="rerun with --verbose to see ExecuTorch's log") from exc
    _write_atomically(out_path, buffer)
    seconds = time.perf_counter() - started
    from deploykit.inspection.executorch_graph import coreml_delegate_status, inspect

    inspection = inspect(out_path)
    inputs = _named(inspection.inputs, input_names, "input")
    outputs = _named(inspection.outputs, output_names, "output")
    verification = "checked by the ExecuTorch runtime on this machine (in a child process)"
    if options.backend == "coreml":
        verification = coreml_delegate_status(out_path)
    slow = {"convolution": sum(n for op, n in counts.portable.items() if op.startswith(_CONVOLUTIONS)),
            "matmul": sum(n for op, n in counts.portable.items() if op.startswith(_MATMULS))}
    slow = {k: v for k, v in slow.items() if v}
    return PteRecord(
        path=str(out_path), backend=options.backend, scheme=options.scheme, size_bytes=out_path.stat().st_size,
        export_seconds=seconds, inputs=inputs, outputs=outputs,
        ops_total=sum(counts.delegated.values()) + sum(counts.portable.values()),
        ops_delegated=sum(counts.delegated.values()), ops_portable=sum(counts.portable.values()),
        delegated_ops=dict(counts.delegated.most_common()), portable_ops=dict(counts.portable.most_common()),
        delegates=counts.delegates, slow_ops=slow, slow_warning=_slow_warning(out_path.name, slow, options.backend),
        verification=verification, quantization=quantization, weight_bytes=dict(inspection.weight_bytes),
        notes=tuple(extra_notes + _notes(options, inspection, counts)),
    )


def exported_program(module, examples: tuple):
    """An ExportedProgram of ``module``: itself, ``torch.export.export`` of an nn.Module, or a TorchScript
    module re-exported by TS2EPConverter (which refuses some TorchScript, e.g. loops over tensors)."""
    import torch

    if isinstance(module, torch.export.ExportedProgram):
        return module
    if isinstance(module, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter

        try:
            converted = TS2EPConverter(module, tuple(examples)).convert()
        except Exception as exc:
            raise InputError(f"this TorchScript module cannot be re-exported for ExecuTorch: {_first_line(exc)}",
                             hint="save the model with torch.export.save(torch.export.export(model, example_inputs), "
                                  "'model.pt2') and convert the .pt2") from exc
        # TS2EPConverter keeps TorchScript's symbolic sizes (a traced channel shuffle's size arithmetic
        # becomes data-dependent), which ExecuTorch's memory planning cannot serialize; tracing its module
        # again on the examples gives the static program a .pt2 would have.
        with contextlib.suppress(Exception):
            return torch.export.export(converted.module(), tuple(examples))
        return converted
    try:
        return torch.export.export(module, tuple(examples))
    except Exception as exc:
        text = _first_line(exc)
        if "unsupported" in text.lower() or "not supported" in text.lower():
            raise UnsupportedOperatorError(f"torch.export: {text}",
                                           hint="replace the operator, or convert to another target") from exc
        raise ConversionError(f"torch.export failed: {text}", hint="rerun with --verbose to see the log") from exc


def _lower(program, options: ExecutorchOptions):
    from executorch.exir import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, partitioner=_partitioners(options))
    except Exception as exc:
        text = _first_line(exc)
        lowered = text.lower()
        if any(word in lowered for word in ("not supported", "unsupported", "core aten", "operator", "no kernel")):
            raise UnsupportedOperatorError(f"ExecuTorch ({options.backend}): {text}",
                                           hint="replace the operator, or try another --executorch-backend") from exc
        raise ConversionError(f"ExecuTorch ({options.backend}) could not lower the program: {text}",
                              hint="rerun with --verbose to see ExecuTorch's log") from exc


def _partitioners(options: ExecutorchOptions) -> list:
    if options.backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    if options.backend == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        precision = ct.precision.FLOAT32 if options.scheme == "fp32" else ct.precision.FLOAT16
        target = getattr(ct.target, options.coreml_target)
        specs = CoreMLBackend.generate_compile_specs(compute_precision=precision, minimum_deployment_target=target)
        return [CoreMLPartitioner(compile_specs=specs)]
    return []  # portable: nothing delegated, every op runs in a portable kernel


def _half_wrapper(inner):
    import torch

    class HalfPrecision(torch.nn.Module):
        # fp32 in, fp16 inside, fp32 out: the two casts run as portable kernels, everything between
        # them is delegated in half precision.
        def __init__(self, module):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            args = [a.half() if a.is_floating_point() else a for a in args]
            result = self.inner(*args)
            if isinstance(result, torch.Tensor):
                return result.float() if result.is_floating_point() else result
            return tuple(r.float() if r.is_floating_point() else r for r in result)

    return HalfPrecision(inner)


def _half_precision(module, examples):
    """(the fp16 program, how many SiLUs were rewritten)."""
    import torch

    # The original module when there is one (a clean trace); else the exported program's module.
    plain = isinstance(module, torch.nn.Module) and not isinstance(module, torch.jit.ScriptModule)
    inner = module if plain else exported_program(module, examples).module()
    half = _half_wrapper(copy.deepcopy(inner).half()).eval()
    try:
        exported = torch.export.export(half, tuple(examples))
        graph_module = exported.module()
        rewritten = silu_as_sigmoid_mul(graph_module)
        return (torch.export.export(graph_module, tuple(examples)) if rewritten else exported), rewritten
    except Exception as exc:
        raise ConversionError(f"the model does not export in half precision: {_first_line(exc)}",
                              hint="some op of the model insists on float32 (an explicit dtype, a float64 constant); "
                                   "use fp32 or int8 for ExecuTorch") from exc


def silu_as_sigmoid_mul(graph_module) -> int:
    """Rewrite every SiLU of an ATen graph as a multiplication by its sigmoid; returns how many.

    Given:  %y = aten.silu(%x)
    Result: %s = aten.sigmoid(%x); %y = aten.mul(%x, %s)

    In half precision PyTorch's SiLU decomposition computes in float32 between two casts, and XNNPACK
    takes no dtype-changing cast: each SiLU would leave two portable kernel calls and split the program
    into one more delegate (EfficientNet-style nets: 16 casts, 15 delegates). Sigmoid and mul are core
    ATen ops XNNPACK runs in fp16 as they are.
    """
    import torch

    graph = graph_module.graph
    silu = (torch.ops.aten.silu.default, torch.ops.aten.silu_.default)
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in silu:
            continue
        with graph.inserting_after(node):
            sigmoid = graph.call_function(torch.ops.aten.sigmoid.default, (node.args[0],))
        with graph.inserting_after(sigmoid):
            product = graph.call_function(torch.ops.aten.mul.Tensor, (node.args[0], sigmoid))
        node.replace_all_uses_with(product)
        graph.erase_node(node)
        count += 1
    if count:
        graph.lint()
        graph_module.recompile()
    return count


def _quantized_int8(program, examples, samples, input_names):
    """PT2E: annotate with the XNNPACK quantizer, observe the calibration samples, convert, re-export."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    batches = [_sample_tensors(s, examples, input_names) for s in samples]
    try:
        prepared = prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(*batch)
        converted = convert_pt2e(prepared)
        quantized = torch.export.export(converted, tuple(examples))
    except Exception as exc:
        raise ConversionError(f"PT2E int8 quantization failed: {_first_line(exc)}",
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


# -- counting ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpCounts:
    delegated: Counter
    portable: Counter
    delegates: tuple[str, ...]


def count_ops(edge) -> OpCounts:
    """Ops of an EdgeProgramManager's forward: those inside each delegate call's lowered module (before
    the backend's own fusions) and those left outside, which run in portable kernels."""
    program = edge.exported_program()
    delegated, portable, delegates = Counter(), Counter(), []
    for node in program.graph.nodes:
        if node.op != "call_function" or _is_getitem(node.target):
            continue
        if "call_delegate" in str(node.target):
            lowered = getattr(program.graph_module, node.args[0].target)
            delegates.append(str(lowered.backend_id))
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and not _is_getitem(inner.target):
                    delegated[op_name(inner.target)] += 1
        else:
            portable[op_name(node.target)] += 1
    return OpCounts(delegated, portable, tuple(delegates))


def op_name(target) -> str:
    """``aten.convolution.default`` for an Edge or ATen op, the function name otherwise."""
    return getattr(target, "__name__", None) or str(target)


def _is_getitem(target) -> bool:
    import operator

    return target is operator.getitem


def _slow_warning(name: str, slow: dict[str, int], backend: str) -> str | None:
    if not slow:
        return None
    parts = []
    if slow.get("convolution"):
        parts.append(f"{slow['convolution']} convolution{'s' if slow['convolution'] != 1 else ''}")
    if slow.get("matmul"):
        parts.append(f"{slow['matmul']} matrix multiplication{'s' if slow['matmul'] != 1 else ''} "
                     "(linear layers included)")
    why = ("the portable backend delegates nothing; --executorch-backend xnnpack runs them in XNNPACK"
           if backend == "portable" else
           f"the {BACKEND_TITLES[backend]} partitioner did not take them; rerun with --verbose for its reasons")
    return (f"{name} runs {' and '.join(parts)} in ExecuTorch's portable kernels, which are slow: plain reference "
            f"loops, single-threaded and without SIMD, often 10-100x slower than XNNPACK ({why})")


def _notes(options: ExecutorchOptions, inspection, counts: OpCounts) -> list[str]:
    notes = []
    if options.scheme == "fp16" and options.backend == "xnnpack":
        total = sum(inspection.weight_bytes.values())
        fp32 = inspection.weight_bytes.get("float32", 0)
        notes.append("fp16: the program computes in half precision inside XNNPACK, between float32 casts at its "
                     "inputs and outputs (two portable kernel calls)")
        casts = counts.portable.get("dim_order_ops._to_dim_order_copy.default", 0)
        if casts > 2:
            notes.append(f"fp16: {casts - 2} more dtype casts run in portable kernels inside the model (an op that "
                         f"computes in float32), splitting it into {len(counts.delegates)} XNNPACK delegates")
        if total and fp32:
            notes.append(f"fp16: {100 * fp32 / total:.0f} % of the stored weights stay float32: ExecuTorch's XNNPACK "
                         "serializer writes convolution weights and biases as float32 (XNNPACK converts them to fp16 "
                         "when it packs them at load), so the file does not halve; linear weights are stored fp16")
    if options.scheme == "int8" and counts.portable:
        left = ", ".join(f"{op} x{n}" for op, n in counts.portable.most_common(6))
        notes.append(f"int8: ops outside XNNPACK run in float portable kernels between dequantize/quantize: {left}")
    notes.extend(inspection.notes)
    return notes


# -- helpers -------------------------------------------------------------------------------------------
def _named(infos, names, kind: str) -> tuple[TensorSpec, ...]:
    if names is not None and len(names) != len(infos):
        raise ConversionError(f"the program has {len(infos)} {kind}(s), the source {len(names)}")
    names = list(names) if names is not None else [f"{kind}_{i}" for i in range(len(infos))]
    return tuple(TensorSpec(n, tuple(t.shape), t.dtype, "NCHW" if len(t.shape) == 4 else None)
                 for n, t in zip(names, infos))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    staging.write_bytes(data)
    os.replace(staging, path)


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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
