"""End to end on whole networks: the zoo's small PyTorch and Keras nets, converted as users do,
evaluated with numpy and compared with the source framework."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP16_TOL, FP32_TOL, convert_keras, convert_torch, only_output, seeded

NAMES = ["mobilenet", "resnet", "shufflenet", "squeezenet", "efficientnet"]


def _torch_package(name, precision, folder):
    import torch

    from tests.zoo import torch_nets

    module = torch_nets.build(name)
    x = torch.from_numpy(seeded((1, 3, 32, 32), seed=1))
    traced = None
    if name == "shufflenet":
        # coremltools 9 fails on the trace of ``n, c, h, w = x.shape; x.view(n, g, c // g, h, w)``
        # with numpy 2 ("only 0-dimensional arrays can be converted to Python scalars" in its
        # aten::Int handler). Tracing the torch.export module instead gives static shapes.
        traced = torch.jit.trace(torch.export.export(module, (x,)).module(), x)
    with torch.no_grad():
        reference = module(x).numpy()
    path = convert_torch(module, x, folder / f"torch_{name}_{precision}.mlpackage", precision, traced=traced)
    return path, x.numpy(), reference


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_network(name, precision, tmp_path):
    from deploykit.runners.coreml_eval import evaluate, load_program

    path, x, reference = _torch_package(name, precision, tmp_path)
    if name == "shufflenet":  # coremltools fuses cat + channel shuffle into an interleaved concat
        program = load_program(path)
        interleaved = [s for s in program.steps if s.type == "concat"
                       and bool(program.constants.get(s.inputs["interleave"][0].name, s.inputs["interleave"][0].value))]
        assert interleaved, [s.type for s in program.steps]
    out = only_output(evaluate(path, {"x": x}))
    tol = FP32_TOL if precision == "fp32" else FP16_TOL
    np.testing.assert_allclose(out.astype(np.float32), reference, **tol)


@pytest.mark.parametrize("precision", [None, "fp32"], ids=["default_fp16", "fp32"])
@pytest.mark.parametrize("name", NAMES)
def test_keras_network(name, precision, tmp_path):
    """``precision=None`` is the plain ``ct.convert(model, convert_to="mlprogram", inputs=...)`` call:
    coremltools then computes in fp16 (fp32 inputs and outputs, cast inside the program)."""
    from deploykit.runners.coreml_eval import evaluate, load_program

    from tests.zoo import keras_nets

    model = keras_nets.build(name)
    x = seeded((1, 32, 32, 3), seed=2)
    reference = np.asarray(model(x))
    path = convert_keras(model, tmp_path / f"keras_{name}.mlpackage", precision=precision, target=None)
    (input_name,) = [d.name for d in load_program(path).inputs]
    out = only_output(evaluate(path, {input_name: x}))
    np.testing.assert_allclose(out, reference, **(FP32_TOL if precision == "fp32" else FP16_TOL))


def test_intermediates_localize_values(tmp_path):
    """keep_intermediates returns every op result under its MIL name; the last one is the output."""
    from deploykit.runners.coreml_eval import Evaluation, evaluate, load_program

    path, x, reference = _torch_package("resnet", "fp16", tmp_path)
    result = evaluate(path, {"x": x}, keep_intermediates=True)
    assert isinstance(result, Evaluation)
    program = load_program(path)
    produced = [o.name for step in program.steps for o in step.outputs]
    assert list(result.intermediates) == produced
    (out_name,) = result.outputs
    np.testing.assert_array_equal(result.intermediates[program.outputs[0].name], result.outputs[out_name])
    assert all(v.dtype == np.float16 for v in result.intermediates.values() if v.dtype.kind == "f")
    assert {result.op_types[name] for name in produced} >= {"conv", "relu", "max_pool", "add", "linear"}
    np.testing.assert_allclose(result.outputs[out_name].astype(np.float32), reference, **FP16_TOL)


@pytest.mark.heavy
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_mobilenet_v2_224(precision, tmp_path):
    import torch

    from deploykit.runners.coreml_eval import evaluate

    from tests.zoo import torch_nets

    module = torch_nets.build("mobilenet_v2")
    x = torch.from_numpy(seeded((1, 3, 224, 224), seed=3))
    with torch.no_grad():
        reference = module(x).numpy()
    path = convert_torch(module, x, tmp_path / f"mnv2_{precision}.mlpackage", precision)
    out = only_output(evaluate(path, {"x": x.numpy()})).astype(np.float32)
    np.testing.assert_allclose(out, reference, **(FP32_TOL if precision == "fp32" else FP16_TOL))
