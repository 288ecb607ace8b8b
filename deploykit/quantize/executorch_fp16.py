"""ExecuTorch ``fp16`` on XNNPACK: the module in half precision between casts at its inputs and outputs, so the
program keeps float32 I/O like every other deploykit artifact; SiLUs rewritten so XNNPACK runs them in fp16
(the ``silu_as_sigmoid_mul`` pass)."""

from __future__ import annotations

import copy

from deploykit.core.errors import ConversionError, first_line
from deploykit.passes.registry import get


def half_precision_program(module, examples):
    """(the fp16 program, how many SiLUs were rewritten)."""
    import torch

    from deploykit.loaders.torch_export import exported_program

    # The original module when there is one (a clean trace); else the exported program's module.
    plain = isinstance(module, torch.nn.Module) and not isinstance(module, torch.jit.ScriptModule)
    inner = module if plain else exported_program(module, examples).module()
    half = _half_wrapper(copy.deepcopy(inner).half()).eval()
    try:
        exported = torch.export.export(half, tuple(examples))
        graph_module = exported.module()
        rewritten = get("silu_as_sigmoid_mul", "aten").apply(graph_module)
        return (torch.export.export(graph_module, tuple(examples)) if rewritten else exported), rewritten
    except Exception as exc:
        raise ConversionError(f"the model does not export in half precision: {first_line(exc)}",
                              hint="some op of the model insists on float32 (an explicit dtype, a float64 constant); "
                                   "use fp32 or int8 for ExecuTorch") from exc


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
