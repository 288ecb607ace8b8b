"""Core ML pipelines: models run in order, each reading the pipeline's inputs and the outputs of the models
before it by name (Model.proto ``Pipeline``; a detector is an ML Program then a NonMaximumSuppression model,
``detection.coreml_postprocess``).

A stage is an ML Program (``program.Program``, run by ``program.run``) or a NonMaximumSuppression model
(``suppression``); any other model type is refused at load, naming it. An input the pipeline declares optional
(``FeatureType.isOptional``) may be left out of the feeds: the stage that reads it then uses its own default (an
NMS model's thresholds). The pipeline's outputs are the values its description names, taken from the stage that
produced them last.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError, UsageError
from deploykit.formats.coreml.values import BY_NAME

from .args import TensorDecl
from .program import Program, compile_model, run
from .suppression import NonMaximumSuppression, compile_nms

_ARRAY_DTYPES = {65568: "fp32", 65552: "fp16", 65600: "fp64", 131104: "int32"}
_PIPELINES = ("pipeline", "pipelineClassifier", "pipelineRegressor")


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline. ``inputs``: what a caller must feed (as its first reader declares it); ``optional``: what
    it may add; ``outputs`` / ``output_names``: the pipeline's outputs."""

    inputs: tuple[TensorDecl, ...]
    optional: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]
    output_names: tuple[str, ...]
    stages: tuple[Program | NonMaximumSuppression, ...]
    op_types: Mapping[str, str]

    @property
    def programs(self) -> tuple[Program, ...]:
        return tuple(stage for stage in self.stages if isinstance(stage, Program))


def is_pipeline(model) -> bool:
    return model.WhichOneof("Type") in _PIPELINES


def compile_pipeline(model, blobs) -> Pipeline:
    kind = model.WhichOneof("Type")
    stages = tuple(_compile_stage(m, blobs) for m in _models(model))
    description = model.description
    produced: dict[str, TensorDecl] = {}
    readers: dict[str, TensorDecl] = {}
    for stage in stages:
        for decl in _stage_inputs(stage):
            if decl.name not in produced:
                readers.setdefault(decl.name, decl)
        produced.update((decl.name, decl) for decl in _stage_outputs(stage))
    inputs, optional = [], []
    for feature in description.input:
        decl = readers.get(feature.name) or _feature_decl(feature)
        (optional if feature.type.isOptional else inputs).append(decl)
    unfed = [name for name in readers if name not in {d.name for d in inputs + optional}]
    if unfed:
        raise InputError(f"Core ML {kind}: its models read {unfed}, which neither the pipeline's inputs nor an "
                         "earlier model provide")
    outputs = []
    for feature in description.output:
        if feature.name not in produced:
            raise InputError(f"Core ML {kind}: output {feature.name!r} is produced by none of its models")
        outputs.append(produced[feature.name] if produced[feature.name].dtype is not None else _feature_decl(feature))
    op_types: dict[str, str] = {}
    for stage in stages:
        if isinstance(stage, Program):
            op_types.update(stage.op_types)
        else:
            op_types.update((name, "NonMaximumSuppression") for name in stage.output_names)
    return Pipeline(inputs=tuple(inputs), optional=tuple(optional), outputs=tuple(outputs),
                    output_names=tuple(o.name for o in outputs), stages=stages, op_types=MappingProxyType(op_types))


def run_pipeline(pipeline: Pipeline, feeds: Mapping[str, Any], keep_intermediates: bool = False,
                 threads: int | None = 1):
    """(outputs by name, every stage's intermediates and outputs by name or None), like ``program.run``."""
    required = {d.name for d in pipeline.inputs}
    allowed = required | {d.name for d in pipeline.optional}
    unknown = sorted(set(feeds) - allowed)
    missing = sorted(required - set(feeds))
    if unknown or missing:
        raise UsageError(f"the pipeline takes {sorted(required)}"
                         + (f" and optionally {[d.name for d in pipeline.optional]}" if pipeline.optional else "")
                         + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
    env: dict[str, Any] = dict(feeds)
    intermediates: dict[str, np.ndarray] | None = {} if keep_intermediates else None
    for stage in pipeline.stages:
        if isinstance(stage, Program):
            stage_feeds = {d.name: env[d.name] for d in stage.inputs}
            outputs, inner = run(stage, stage_feeds, keep_intermediates, threads)
            if intermediates is not None:
                intermediates.update(inner)
        else:
            outputs = stage.run({name: env[name] for name in stage.input_names if name in env})
            if intermediates is not None:
                intermediates.update(outputs)
        env.update(outputs)
    return {decl.name: env[decl.name] for decl in pipeline.outputs}, intermediates


def _models(model) -> list:
    kind = model.WhichOneof("Type")
    if kind not in _PIPELINES:
        return [model]
    pipeline = model.pipeline if kind == "pipeline" else getattr(model, kind).pipeline
    if kind != "pipeline":
        raise UnsupportedOperatorError(f"Core ML evaluator: a {kind} (its classifier or regressor interface is not "
                                       "implemented)")
    return [inner for m in pipeline.models for inner in _models(m)]


def _compile_stage(model, blobs):
    kind = model.WhichOneof("Type")
    if kind == "mlProgram":
        return compile_model(model, blobs)
    if kind == "nonMaximumSuppression":
        return compile_nms(model)
    raise UnsupportedOperatorError(f"Core ML evaluator: a pipeline holds a {kind} model, which it does not run",
                                   hint="the numpy evaluator runs ML Programs and NonMaximumSuppression models")


def _stage_inputs(stage) -> tuple[TensorDecl, ...]:
    if isinstance(stage, Program):
        return stage.inputs
    scalar = BY_NAME["fp64"]
    return tuple(TensorDecl(name, scalar, () if name in stage.optional_names else None) for name in stage.input_names)


def _stage_outputs(stage) -> tuple[TensorDecl, ...]:
    if isinstance(stage, Program):
        return tuple(TensorDecl(name, decl.dtype, decl.shape) for name, decl in zip(stage.output_names, stage.outputs))
    return tuple(TensorDecl(name, None, None) for name in stage.output_names)  # typed by the description


def _feature_decl(feature) -> TensorDecl:
    """A pipeline feature no ML Program declares (an NMS model's thresholds and outputs), from its feature type."""
    kind = feature.type.WhichOneof("Type")
    if kind == "doubleType":
        return TensorDecl(feature.name, BY_NAME["fp64"], ())
    if kind == "int64Type":
        return TensorDecl(feature.name, BY_NAME["int64"], ())
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        dtype = _ARRAY_DTYPES.get(array.dataType)
        if dtype is None:
            raise UnsupportedOperatorError(f"Core ML evaluator: feature {feature.name!r} has array type {array.dataType}")
        if len(array.shape):
            shape = tuple(int(d) for d in array.shape)
        elif array.WhichOneof("ShapeFlexibility") == "shapeRange":  # an NMS output: [0..max boxes, classes]
            shape = tuple(int(r.lowerBound) if r.lowerBound == r.upperBound else None
                          for r in array.shapeRange.sizeRanges)
        else:
            shape = None
        return TensorDecl(feature.name, BY_NAME[dtype], shape)
    raise UnsupportedOperatorError(f"Core ML evaluator: pipeline feature {feature.name!r} is a {kind}")
