"""A Core ML artifact's accelerator compatibility, as far as it can be known off macOS: static.

Where Core ML runs each op (CPU, GPU, Neural Engine) is decided on the device; ``MLComputePlan`` reports it
(iOS 17.4 / macOS 14.4 and later) and needs Apple's Core ML framework, so on Linux nothing asks it. What the file
says is read instead: the ML Program's op types and the data types its ops compute in. Apple's documentation names
no ML Program op that runs on the CPU only (searched: the Core ML and coremltools docs), so no op is listed as
refused; what it does say is per precision: a float 32 typed model runs on the GPU and CPU, a float 16 typed one is
eligible for the Neural Engine as well (``DOCS``), which is the note a float32 program gets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

DOCS = {
    "typed_execution": "https://apple.github.io/coremltools/docs-guides/source/typed-execution-example.html",
    "compute_plan": "https://developer.apple.com/documentation/coreml/mlcomputeplan-1w21n",
}
STATIC_NOTE = ("static: where each op runs is Core ML's compute plan (MLComputePlan, iOS 17.4 / macOS 14.4 and "
               f"later, {DOCS['compute_plan']}), which needs Apple's Core ML framework; off macOS only the file is read")
NO_CPU_ONLY = ("Apple's documentation names no ML Program op that runs on the CPU only, so no op is listed as "
               "refused; that is not evidence that every op runs on the GPU or Neural Engine")


def compatibility(path: Path) -> dict:
    """The record's ``compatibility`` block of an .mlpackage (``Artifact.compatibility``)."""
    from deploykit.formats.coreml.package import load_model, locate
    from deploykit.formats.coreml.spec import stages
    from deploykit.formats.coremltools_facade import version

    models = stages(load_model(locate(path)))
    programs = [m for m in models if m.WhichOneof("Type") == "mlProgram"]
    op_types: Counter = Counter()
    dtypes: Counter = Counter()  # output data type of each op -> ops
    for program in programs:
        function = program.mlProgram.functions["main"]
        _walk(function.block_specializations[function.opset], op_types, dtypes)
    others = [m.WhichOneof("Type") for m in models if m.WhichOneof("Type") != "mlProgram"]
    entry = {
        "name": "coreml-static",
        "title": "Core ML (static: compute units unknown off macOS)",
        "ops": sum(op_types.values()),
        "supported": None,
        "refused": [],
        "static": True,
        "op_types": dict(op_types.most_common()),
        "dtypes": sorted(dtypes),
        "ops_by_dtype": dict(sorted(dtypes.items())),
    }
    notes = [STATIC_NOTE, NO_CPU_ONLY]
    if dtypes.get("fp32"):
        notes.append(f"{dtypes['fp32']} of its {entry['ops']} ops compute in float32: Apple's coremltools guide says a "
                     "float 32 typed model executes on a combination of the GPU and CPU, and a float 16 typed one is "
                     f"eligible for the Neural Engine as well ({DOCS['typed_execution']})")
    if not programs:
        notes.append("no ML Program in the package: nothing to count")
    if others:
        notes.append(f"a pipeline: after the ML Program, {', '.join(others)} (Core ML's own model, not counted as ops)")
    return {"static": True,
            "checked_with": f"the package's ML Program read from its protobuf (coremltools {version()} schema); "
                            "no Core ML runtime asked",
            "accelerators": [entry], "notes": notes}


def _walk(block, op_types: Counter, dtypes: Counter) -> None:
    """Count every op but constants (weights and scalars), nested blocks included, with its first output's type."""
    from deploykit.formats.coreml.values import DTYPES

    for op in block.operations:
        if op.type != "const":
            op_types[op.type] += 1
            kind = op.outputs[0].type if op.outputs else None
            if kind is not None and kind.WhichOneof("type") == "tensorType":
                code = kind.tensorType.dataType
                dtypes[DTYPES[code].name if code in DTYPES else f"type {code}"] += 1
        for inner in op.blocks:
            _walk(inner, op_types, dtypes)
