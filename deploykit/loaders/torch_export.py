"""A loaded PyTorch source as a ``torch.export`` program: what ExecuTorch and its quantizers start from."""

from __future__ import annotations

import contextlib

from deploykit.core.errors import ConversionError, InputError, UnsupportedOperatorError, first_line


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
            raise InputError(f"this TorchScript module cannot be re-exported for ExecuTorch: {first_line(exc)}",
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
        text = first_line(exc)
        if "unsupported" in text.lower() or "not supported" in text.lower():
            raise UnsupportedOperatorError(f"torch.export: {text}",
                                           hint="replace the operator, or convert to another target") from exc
        raise ConversionError(f"torch.export failed: {text}", hint="rerun with --verbose to see the log") from exc
