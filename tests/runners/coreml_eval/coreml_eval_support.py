"""Helpers for the Core ML evaluator tests: convert tiny models quietly and compare.

Tolerances are data, each with its reason:

- fp32 programs: 1e-4 absolute and relative. The evaluator computes in float32 like the source
  frameworks; only the summation order differs (numpy per-tap products vs. oneDNN / Eigen).
- fp16 programs against the fp32 source: 2e-2 absolute and relative. Every op result is rounded
  to fp16 (a relative step of 2**-11, about 5e-4) and a small net has about ten such roundings in
  a row, on values of order one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

FP32_TOL = dict(rtol=1e-4, atol=1e-4)
FP16_TOL = dict(rtol=2e-2, atol=2e-2)


@contextlib.contextmanager
def quiet():
    """Silence the converters' progress bars, logs and warnings (failures still raise).

    Also skips the ``gc.collect()`` calls coremltools makes in every conversion (one at the end,
    two more in the TensorFlow frontend): with torch and TensorFlow loaded each takes ~1 s, most
    of a tiny model's conversion time, and they only free memory.
    """
    import gc
    from unittest import mock

    previous = logging.getLogger("coremltools").level
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()), \
                mock.patch.object(gc, "collect", lambda *a: 0):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger("coremltools").setLevel(previous)


def _precision(name: str):
    import coremltools as ct

    return {"fp32": ct.precision.FLOAT32, "fp16": ct.precision.FLOAT16}[name]


def convert_torch(module, example, path: Path, precision: str = "fp32", target: str = "iOS16",
                  name: str = "x", traced=None) -> Path:
    """trace -> coremltools.convert(mlprogram) -> save. Returns the .mlpackage path."""
    import coremltools as ct
    import torch

    module = module.eval()
    with quiet():
        traced = traced if traced is not None else torch.jit.trace(module, example)
        model = ct.convert(traced, inputs=[ct.TensorType(name=name, shape=tuple(example.shape))],
                           convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                           compute_precision=_precision(precision))
        model.save(str(path))
    return path


def convert_keras(model, path: Path, precision: str | None = "fp32", target: str | None = "iOS16") -> Path:
    """A Keras 3 model object -> mlprogram. ``precision=None`` keeps coremltools' default (fp16)."""
    import coremltools as ct

    kwargs = {}
    if precision is not None:
        kwargs["compute_precision"] = _precision(precision)
    if target is not None:
        kwargs["minimum_deployment_target"] = getattr(ct.target, target)
    with quiet():
        mlmodel = ct.convert(model, convert_to="mlprogram",
                             inputs=[ct.TensorType(shape=tuple(d or 1 for d in model.inputs[0].shape))], **kwargs)
        mlmodel.save(str(path))
    return path


def program_ops(path: Path) -> list[str]:
    """Op types of a saved package, constants left out (to assert what a test exercises)."""
    from deploykit.runners.coreml_eval import load_program

    return [step.type for step in load_program(path).steps]


def only_output(outputs: dict) -> np.ndarray:
    assert len(outputs) == 1, outputs.keys()
    return next(iter(outputs.values()))


def seeded(shape, seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def save_small_program(path: Path) -> Path:
    """x (1, 3, 8, 8) -> conv (weights in weight.bin) -> relu -> gelu, fp32 iOS16, built directly in
    MIL with no graph passes, so the ops and their names stay as written."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    weight = np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8))], opset_version=ct.target.iOS16)
    def program(x):
        y = mb.conv(x=x, weight=weight, pad_type="custom", pad=[1, 1, 1, 1], name="conv_out")
        y = mb.relu(x=y, name="relu_out")
        return mb.gelu(x=y, mode="EXACT", name="gelu_out")

    with quiet():
        ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                   compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY).save(str(path))
    return path


def save_mil(build, specs, path: Path, target: str = "iOS16") -> Path:
    """A MIL program -> .mlpackage with no graph passes, so its ops and types stay as written
    (an fp16 program is one built from fp16 inputs and constants).

    ``build``'s parameters are the program inputs (named after them, as ``mb.program`` does);
    ``specs`` gives one shape per parameter, in order, or ``(shape, MIL dtype)`` for non-fp32 ones.
    """
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    tensor_specs = [mb.TensorSpec(shape=s[0], dtype=s[1]) if len(s) == 2 and not isinstance(s[1], int)
                    else mb.TensorSpec(shape=s) for s in specs]
    program = mb.program(input_specs=tensor_specs, opset_version=getattr(ct.target, target))(build)
    with quiet():
        model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                           compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY)
        model.save(str(path))
    return path
