"""The one seam between deploykit and coremltools (pinned in constraints.txt): every import of coremltools goes
through here, so a version bump touches this file only (as onnx2coreml's ``_mil.py`` does for its lowerings).

Nothing is imported before a function asks for it: ``import coremltools`` pulls in TensorFlow and torch when
they are installed (about 8 s here), and ``deploykit --help`` must stay instant.

The protobuf schema (``model_pb2``, ``mil_pb2``) is loaded without importing coremltools at all: the
generated ``*_pb2`` modules under ``coremltools/proto`` need only protobuf, so when coremltools has not been
imported yet they are loaded through a private package name that points at the same folder. protobuf
registers each .proto file once in its default pool, so a later real import of ``coremltools.proto`` gets
the very same message classes (checked in the tests).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

_PRIVATE_PACKAGE = "_deploykit_coremltools_proto"


# -- the package and its optimize API -------------------------------------------------------------------
def package():
    """``coremltools`` itself: ``convert``, ``TensorType``, ``ImageType``, ``EnumeratedShapes``, ``RangeDim``,
    ``ClassifierConfig``, ``PassPipeline``, ``precision``, ``target``, ``ComputeUnit``, ``models.MLModel``."""
    import coremltools

    return coremltools


def version() -> str:
    """The installed coremltools distribution's version (read from its metadata, without importing it)."""
    from importlib import metadata

    return metadata.version("coremltools")


def optimize():
    """``coremltools.optimize.coreml``: palettization, linear quantization, pruning of a saved ML Program."""
    import coremltools.optimize.coreml as optimize_coreml

    return optimize_coreml


def load_mlmodel(path, *, skip_model_load: bool = True, cpu_only: bool = False):
    """An ``MLModel`` of a saved package. Off macOS only ``skip_model_load=True`` gives a usable object."""
    ct = package()
    if cpu_only:
        return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    return ct.models.MLModel(str(path), skip_model_load=skip_model_load)


def compute_precision(name: str):
    """``ct.precision.FLOAT32`` for "fp32", ``FLOAT16`` for "fp16"."""
    precision = package().precision
    return precision.FLOAT16 if name == "fp16" else precision.FLOAT32


def deployment_target(name: str):
    """``ct.target.iOS16`` and the like, from deploykit's ``--coreml-target`` spelling."""
    return getattr(package().target, name)


def pass_pipeline(kind: str = "default"):
    """A fresh copy of coremltools' ``PassPipeline.DEFAULT`` (or ``EMPTY``)."""
    pipelines = package().PassPipeline
    return pipelines.EMPTY if kind == "empty" else pipelines.DEFAULT


# -- MIL: programs, graph passes, the builder -----------------------------------------------------------
def mil_builder():
    """The MIL op builder (``mb``): ``mb.conv(...)``, ``mb.relu(...)``, ``mb.set_before_op(op)``."""
    from coremltools.converters.mil import Builder

    return Builder


def mil_types():
    """MIL's type module (``types.fp16``, ``types.is_tensor`` ...)."""
    from coremltools.converters.mil.mil import types as mil_types_module

    return mil_types_module


def graph_pass_base():
    """``AbstractGraphPass``, the base class of a MIL graph pass."""
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass

    return AbstractGraphPass


def register_mil_pass(namespace: str, override: bool = False):
    """coremltools' pass registry decorator (a pass then runs by name in a ``PassPipeline``)."""
    from coremltools.converters.mil.mil.passes.pass_registry import register_pass

    return register_pass(namespace=namespace, override=override)


_REGISTERED_PASSES: set[str] = set()


def register_function_pass(namespace: str, name: str, rewrite) -> None:
    """Register, once per process, the MIL pass ``namespace::name`` that calls ``rewrite(function)`` on every
    function of a program (coremltools names a pass by its class name, so the class is made with ``name``)."""
    key = f"{namespace}::{name}"
    if key in _REGISTERED_PASSES:
        return

    def apply(self, prog):
        for function in prog.functions.values():
            rewrite(function)

    register_mil_pass(namespace)(type(name, (graph_pass_base(),), {"apply": apply}))
    _REGISTERED_PASSES.add(key)


def block_context_manager():
    """The decorator that lets a pass edit a MIL block in place."""
    from coremltools.converters.mil.mil.passes.helper import block_context_manager as manager

    return manager


def apply_graph_pass(mlmodel, graph_pass, **kwargs):
    """Run one graph pass on a loaded model's MIL program and return the new ``MLModel``."""
    from coremltools.models.utils import _apply_graph_pass

    return _apply_graph_pass(mlmodel, graph_pass, **kwargs)


def mil_convert(program, **kwargs):
    """Serialize a MIL program (``coremltools.converters.mil.converter.mil_convert``)."""
    from coremltools.converters.mil.converter import mil_convert as convert

    return convert(program, **kwargs)


def replace_constants(path, out_path, values: dict) -> None:
    """The package at ``path`` saved as ``out_path`` with the ``const`` ops that ``values`` names ({value name: array of
    the same shape}, cast to each constant's own dtype) holding those values, under the same names. Nothing else
    changes: the program goes to MIL and back with no pass pipeline (what quantize.layerwise.bias_correction writes)."""
    import numpy as np

    ct, mb = package(), mil_builder()
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    left = set(values)

    class ReplaceConstants(graph_pass_base()):
        def apply(self, prog):
            for function in prog.functions.values():
                for op in list(function.operations):
                    old = op.outputs[0] if op.op_type == "const" else None
                    if old is None or old.name not in left:
                        continue
                    value = np.asarray(values[old.name]).astype(np.asarray(old.val).dtype).reshape(np.shape(old.val))
                    with function:
                        new = mb.const(val=value, name=f"{old.name}_replaced", before_op=op)
                        function.replace_uses_of_var_after_op(anchor_op=op, old_var=old, new_var=new)
                        function.remove_ops([op])
                    new.name = new.op.name = old.name
                    left.discard(old.name)

    program = apply_graph_pass(model, ReplaceConstants(), skip_model_load=True, return_pymil_prog=True)
    if left:
        raise KeyError(f"no const op named {sorted(left)[0]!r} in {path}")
    mil_convert(program, convert_to="mlprogram", convert_from="milinternal", specification_version=spec.specificationVersion,
                compute_units=model.compute_unit, model_description=spec.description, skip_model_load=True,
                pass_pipeline=ct.PassPipeline.EMPTY).save(str(out_path))


def edit_program(path, edit, *, passes: tuple[str, ...] = ()):
    """The ML Program saved at ``path`` with ``edit(function)`` applied to its main MIL function (ops appended with
    ``mil_builder()`` inside ``with function:``, outputs set with ``function.set_outputs``), converted back with no
    pass but ``passes`` (coremltools pass names, "common::dead_code_elimination" say) at the package's own
    specification version. Returns the in-memory ``MLModel``: ``get_spec()`` and its ``weights_dir`` (kept while the
    object lives); compressed weights (``constexpr_*``) go through unchanged."""
    ct = package()
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()

    class Edit(graph_pass_base()):
        def apply(self, prog):
            edit(prog.functions["main"])

    program = apply_graph_pass(model, Edit(), spec_version=spec.specificationVersion, skip_model_load=True,
                               return_pymil_prog=True)
    pipeline = ct.PassPipeline(pass_names=list(passes)) if passes else ct.PassPipeline.EMPTY
    return mil_convert(program, convert_to="mlprogram", convert_from="milinternal",
                       specification_version=spec.specificationVersion, compute_units=model.compute_unit,
                       skip_model_load=True, pass_pipeline=pipeline)


def save_spec(spec, out_path, weights_dir=None) -> None:
    """Save a ``Model`` protobuf of any type as a package at ``out_path`` (an ML Program, or a pipeline holding one,
    with the weight files of ``weights_dir``)."""
    package().models.MLModel(spec, weights_dir=weights_dir, skip_model_load=True).save(str(out_path))


# -- 8-bit activations (W8A8) with statistics taken elsewhere -------------------------------------------
# coremltools' linear_quantize_activations = activation statistics by MLModel.predict (macOS only) + the
# three passes below. deploykit computes the statistics with its numpy evaluator and calls the same passes.
def share_concat_ranges(mlmodel, activation_stats: dict) -> None:
    """coremltools' own rule, in place: the inputs and output of a ``concat`` share one range (the min of
    their minima, the max of their maxima), so the quantized concat needs no rescaling."""
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    _adjust_concat_surrounding_activation_stats(ModelDebugger(mlmodel)._get_concat_op_info(), activation_stats)


def insert_activation_quantization(mlmodel, config, activation_stats: dict):
    """The ML Program with quantize / dequantize pairs on the activations, made exactly as
    ``linear_quantize_activations`` makes it after its calibration: ``insert_prefix_quantize_dequantize_pair``
    and ``insert_suffix_quantize_dequantize_pair`` with ``activation_stats`` ({var name: {"rmin", "rmax"}}),
    then ``dequantize_quantize_pair_elimination``, on the iOS17 opset (where quantize / dequantize exist)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto_to_pymil
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair", "compression::insert_suffix_quantize_dequantize_pair"):
        graph_pass = PASS_REGISTRY[name]
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", activation_stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return apply_graph_pass(mlmodel, passes, spec_version=ct._SPECIFICATION_VERSION_IOS_17,
                            pymil_load_func=milproto_to_pymil.load, skip_model_load=True)


# -- the PyTorch frontend -------------------------------------------------------------------------------
def register_torch_op(function=None, *, torch_alias=None, override: bool = False):
    """Register a lowering for an ATen op with coremltools' PyTorch frontend."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op as register

    if function is None:
        return register(torch_alias=torch_alias, override=override)
    return register(function, torch_alias=torch_alias, override=override)


def torch_op_inputs(context, node, expected=None):
    """The MIL values of a PyTorch node's inputs, inside a registered torch lowering."""
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    return _get_inputs(context, node, expected=expected)


# -- the protobuf schema, without importing coremltools ---------------------------------------------------
def model_pb2():
    """The ``Model_pb2`` module (``Model``, the root message of a .mlmodel file)."""
    return _load("Model_pb2")


def mil_pb2():
    """The ``MIL_pb2`` module (``Program``, ``Operation``, ``Value``, ``DataType``...)."""
    return _load("MIL_pb2")


def _load(module: str):
    real = sys.modules.get(f"coremltools.proto.{module}")
    if real is not None:
        return real
    if "coremltools" in sys.modules:
        return importlib.import_module(f"coremltools.proto.{module}")
    private = sys.modules.get(_PRIVATE_PACKAGE)
    if private is None:
        spec = importlib.util.find_spec("coremltools")
        if spec is None or spec.origin is None:
            raise ImportError("coremltools is not installed; it provides the Core ML protobuf schema")
        private = types.ModuleType(_PRIVATE_PACKAGE)
        private.__path__ = [str(Path(spec.origin).parent / "proto")]
        sys.modules[_PRIVATE_PACKAGE] = private
    return importlib.import_module(f"{_PRIVATE_PACKAGE}.{module}")
