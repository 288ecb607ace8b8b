"""PyTorch -> Core ML: TorchScript (traced here when needed) into coremltools.

coremltools' torch.export frontend fails on this torch version (training dialect, max_pool2d after
decompositions), so modules are traced with torch.jit.trace, which converts reliably.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.coreml_common import (
    deployment_target,
    output_types,
    rename_and_save,
    run_ct_convert,
    tensor_types,
)
from deploykit.core.errors import ConversionError

LABEL = "torch->coreml (torch.jit.trace + coremltools)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    import torch

    from deploykit.converters import coreml_torch_fixes
    from deploykit.loaders.torch_loader import example_tensors

    coreml_torch_fixes.install()

    module = source.handle["module"]
    if not source.handle["torchscript"]:
        examples = example_tensors(source.inputs)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                module = torch.jit.trace(module, examples if len(examples) > 1 else examples[0])
        except Exception as exc:
            raise ConversionError(f"{LABEL}: torch.jit.trace failed: {str(exc).splitlines()[0][:300]}",
                                  hint="models with data-dependent control flow need torch.jit.script before saving") from exc
    mlmodel = run_ct_convert(
        module,
        label=LABEL, options=options,
        source="pytorch",
        inputs=tensor_types(source.inputs),
        outputs=output_types(source.outputs, named=True),
        minimum_deployment_target=deployment_target(options.coreml_target),
    )
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])
    return Converted(out_path, LABEL)
