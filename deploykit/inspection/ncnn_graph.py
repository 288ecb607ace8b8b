"""NCNN models: one layer per ``.param`` line, shapes from one run of the ``ncnn`` runtime on zeros.

The .param holds no tensor shapes, so the inspection runs the model once (CPU, fp32) on zero inputs of the
shapes its Input layers declare and reads every blob's shape; multiply-adds follow from a layer's weight count
and its output's spatial size. A model whose Input layers declare no shape is listed without shapes (a note
says so). Weights are counted from each layer's declared weight size, stored as the .bin's storage says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.formats.ncnn import pair, param, weights
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import conv_layer_type

# layer type -> (key of its weight count, key of its bias flag or None, key of its output channels)
_WEIGHTED = {
    "Convolution": (6, 5, 0), "ConvolutionDepthWise": (6, 5, 0), "Convolution1D": (6, 5, 0), "Convolution3D": (6, 5, 0),
    "ConvolutionDepthWise1D": (6, 5, 0), "ConvolutionDepthWise3D": (6, 5, 0),
    "Deconvolution": (6, 5, 0), "DeconvolutionDepthWise": (6, 5, 0), "Deconvolution1D": (6, 5, 0),
    "Deconvolution3D": (6, 5, 0), "InnerProduct": (2, 1, 0), "Embed": (3, 2, 0),
}


def inspect(path: Path) -> Inspection:
    param_path, bin_path = pair.files(path)
    graph = param.read(param_path)
    storage = weights.storage(bin_path)
    builder = GraphBuilder(str(path), "ncnn")
    shapes = _blob_shapes(param_path, bin_path, graph, builder)
    for blob in graph.input_blobs:
        builder.input(blob, shapes.get(blob, ()), "float32")
    for layer in graph.layers:
        if layer.type == "Input":
            continue
        counts = _weight_counts(layer)
        names = [f"{layer.name}/{i}" for i in range(len(counts))]
        for name, count in zip(names, counts):
            builder.constant(name, (count,), storage if i_is_kernel(name) else "float32")
        out_shape = shapes.get(layer.outputs[0]) if layer.outputs else None
        for blob in layer.outputs:
            builder.activation(blob, shapes.get(blob, ()), "float32")
        in_shape = shapes.get(layer.inputs[0]) if layer.inputs else None
        builder.layer(name=layer.name, op=layer.type, layer_type=_layer_type(layer, in_shape),
                      macs=_macs(layer, counts, out_shape, [shapes.get(b) for b in layer.inputs]),
                      reads=list(layer.inputs), weights=names, writes=list(layer.outputs), output_shape=out_shape)
    for blob in graph.output_blobs:
        builder.output(blob, shapes.get(blob, ()), "float32")
    builder.notes.append(f"weights stored as {storage}; NCNN blobs have no batch axis (shapes are c, d, h, w)")
    return builder.build()


def _layer_type(layer: param.Layer, in_shape) -> str:
    """The MobileNet table's row (``inspection.rules``): kernel from params 1 / 11, groups from 7 (depthwise)."""
    if layer.type == "InnerProduct":
        return "fully_connected"
    if not layer.type.startswith(("Convolution", "Deconvolution")) or in_shape is None:
        return "other"
    if layer.type.startswith("Deconvolution"):
        return "conv"
    kernel_w = int(layer.param(1) or 1)
    kernel = (int(layer.param(11) or kernel_w), kernel_w)
    groups = int(layer.param(7) or 1) if "DepthWise" in layer.type else 1
    return conv_layer_type(kernel, groups, in_shape[0], tuple(in_shape[1:]))


def i_is_kernel(name: str) -> bool:
    return name.endswith("/0")


def _weight_counts(layer: param.Layer) -> list[int]:
    keys = _WEIGHTED.get(layer.type)
    if keys is None:
        return []
    size, bias, channels = (int(float(layer.param(k) or 0)) if k is not None else 0 for k in keys)
    return [size] + ([channels] if bias and channels else [])


def _macs(layer: param.Layer, counts: list[int], out_shape, in_shapes) -> int:
    if not counts or out_shape is None:
        return 0
    kernel = counts[0]
    if layer.type.startswith("Deconvolution"):
        spatial = in_shapes[0][1:] if in_shapes and in_shapes[0] else ()
        return int(kernel * int(np.prod(spatial or (1,))))
    if layer.type.startswith("Convolution"):
        return int(kernel * int(np.prod(out_shape[1:] or (1,))))
    if layer.type == "InnerProduct":
        rows = int(np.prod(out_shape[:-1])) if len(out_shape) > 1 else 1
        return kernel * rows
    return 0


def _blob_shapes(param_path: Path, bin_path: Path, graph: param.Graph, builder) -> dict[str, tuple[int, ...]]:
    """Every blob's shape from one fp32 run on zeros, or {} (with a note) when an input declares no shape."""
    from deploykit.formats import ncnn_facade

    declared = {blob: graph.input_shape(blob) for blob in graph.input_blobs}
    if any(shape is None for shape in declared.values()):
        builder.notes.append("the Input layers declare no shape: no tensor shapes or multiply-adds")
        return {}
    net = ncnn_facade.open_net(param_path, bin_path, fp16=False)
    blobs = tuple(dict.fromkeys(b for layer in graph.layers for b in layer.outputs))
    values = ncnn_facade.run(net, {b: np.zeros(s, np.float32) for b, s in declared.items()}, blobs,
                             keep_all=True)
    return {name: tuple(value.shape) for name, value in values.items()}
