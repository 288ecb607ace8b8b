"""The one seam between deploykit and the executorch package (pinned in constraints.txt): every import of it
goes through here, so a version bump touches this file only.

``executorch.exir`` takes about 10 s to import and pulls in torch, so nothing here is imported before a
function needs it; files of the wheel (flatc, schemas) are found without importing the package at all.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def wheel_file(relative: str) -> Path:
    """A file of the installed executorch wheel, found without importing it."""
    spec = importlib.util.find_spec("executorch")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"executorch/{relative} is not installed")


def version() -> str:
    """The installed executorch distribution's version (read from its metadata, without importing it)."""
    from importlib import metadata

    return metadata.version("executorch")


def deserialize_pte(data: bytes):
    """The ``PTEFile`` of a serialized program (no runtime involved)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    return deserialize_pte_binary(data)


def unflatten_directory(payload: bytes, folder: str) -> bool:
    """Unpack a Core ML delegate's flattened directory into ``folder``."""
    from executorch.backends.apple.coreml import executorchcoreml

    return executorchcoreml.unflatten_directory_contents(bytes(payload), folder)


def to_edge_transform_and_lower(program, partitioners):
    from executorch.exir import to_edge_transform_and_lower as lower

    return lower(program, partitioner=partitioners)


def xnnpack_partitioner():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


def coreml_partitioner(precision: str, deployment_target: str):
    """The Core ML delegate's partitioner: ``precision`` "fp32" or "fp16", ``deployment_target`` e.g. "iOS16"."""
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    from deploykit.formats.coremltools_facade import compute_precision
    from deploykit.formats.coremltools_facade import deployment_target as target_of

    specs = CoreMLBackend.generate_compile_specs(compute_precision=compute_precision(precision),
                                                 minimum_deployment_target=target_of(deployment_target))
    return CoreMLPartitioner(compile_specs=specs)


def xnnpack_int8_quantizer():
    """XNNPACK's PT2E quantizer: per-channel symmetric int8 weights, per-tensor int8 activations."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def runtime_bindings():
    """The runtime's Python bindings (the optimized kernels' ``_C`` when the wheel has them, else the portable
    library), for the runner's child process. torch is loaded first: the bindings resolve libtorch's symbols."""
    import torch  # noqa: F401

    try:
        from executorch.extension.pybindings import _C

        _C._load_program, _C._unsafe_reset_threadpool  # noqa: B018  (the functions the child uses)
        return _C
    except (ImportError, AttributeError):
        from executorch.extension.pybindings import portable_lib

        return portable_lib
