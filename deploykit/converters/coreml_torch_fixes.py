"""Fixes for coremltools' PyTorch frontend, registered through its public op registry.

``int``/``bool`` casts of a constant one-element tensor (what ``n, c, h, w = x.shape`` in a channel
shuffle traces to) fail on numpy 2 inside coremltools 9 ("only 0-dimensional arrays can be converted
to Python scalars"): the constant is a shape-(1,) array and ``int(array)`` is no longer allowed.
The override folds such constants with ``.item()`` and otherwise does exactly what coremltools does.
"""

from __future__ import annotations

from deploykit.formats import coremltools_facade

_INSTALLED = False


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    import numpy as np
    mb = coremltools_facade.mil_builder()
    _get_inputs = coremltools_facade.torch_op_inputs
    register_torch_op = coremltools_facade.register_torch_op
    def cast_scalar(context, node, dtype, dtype_name):
        x = _get_inputs(context, node, expected=1)[0]
        if not (len(x.shape) == 0 or all(d == 1 for d in x.shape)):
            raise ValueError("input to cast must be either a scalar or a length 1 tensor")
        if x.can_be_folded_to_const():
            result = mb.const(val=dtype(np.asarray(x.val).reshape(-1)[0].item()), name=node.name)
        elif len(x.shape) > 0:
            result = mb.cast(x=mb.squeeze(x=x, name=node.name + "_item"), dtype=dtype_name, name=node.name)
        else:
            result = mb.cast(x=x, dtype=dtype_name, name=node.name)
        context.add(result, node.name)

    @register_torch_op(torch_alias=["int"], override=True)
    def _int(context, node):
        cast_scalar(context, node, int, "int32")

    @register_torch_op(torch_alias=["bool"], override=True)
    def _bool(context, node):
        cast_scalar(context, node, bool, "bool")

    _INSTALLED = True
