"""What an inspection finds: layers with their mult-adds and parameters, and the figures derived from them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

# The rows of the MobileNet paper's "resources per layer type" table (Howard et al. 2017, Table 2), plus
# "other" for everything the paper leaves out (batch norm, activations, pooling, attention matmuls).
LAYER_TYPES = ("conv1x1", "depthwise", "conv", "fully_connected", "other")
LAYER_TYPE_TITLES = {
    "conv1x1": "1x1 convolution",
    "depthwise": "depthwise convolution",
    "conv": "other convolution",
    "fully_connected": "fully connected",
    "other": "everything else",
}

COUNTING_NOTE = (
    "mult-adds (MACs): one multiply-accumulate counted once, in convolutions and matrix products only; "
    "batch norm, activations, pooling and element-wise ops are not counted, as in the MobileNet, ShuffleNet "
    "and SqueezeNet papers. Parameters: elements of the weights each layer reads (quantized weights counted "
    "at their decoded size); batch norm running statistics are state, not parameters."
)
MEMORY_NOTE = (
    "peak activation memory is an estimate: every op writes a new buffer that is freed after its last "
    "reader, in graph order; runtimes that alias reshapes or plan arenas differently use less or more."
)


@dataclass(frozen=True)
class Layer:
    """One op of the model's graph. ``op`` is the format's own type name (Conv2D, CONV_2D, conv, ...)."""

    name: str
    op: str
    layer_type: str  # one of LAYER_TYPES
    macs: int
    params: int
    output_shape: tuple | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "layer_type": self.layer_type, "macs": self.macs,
                "params": self.params, "output_shape": list(self.output_shape) if self.output_shape else None}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Inspection:
    """The figures of one model file, from one format's graph."""

    path: str
    format: str  # keras | pt2 | entrypoint | torchscript | onnx | tflite | mlpackage
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[Layer, ...]
    weight_bytes: Mapping[str, int]  # stored dtype -> bytes of constant tensors as the file stores them
    peak_activation_bytes: int
    notes: tuple[str, ...] = field(default=())
    # An artifact's accelerator compatibility (Target.compatibility, docs/compatibility.md); None for a source
    compatibility: Mapping[str, Any] | None = None

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(layer.op for layer in self.layers).most_common())

    def by_layer_type(self) -> dict[str, dict[str, float]]:
        """Per layer type: MACs, parameters, and each as a share (percent) of the model's total."""
        total_macs, total_params = self.macs, self.params
        rows = {}
        for kind in LAYER_TYPES:
            macs = sum(layer.macs for layer in self.layers if layer.layer_type == kind)
            params = sum(layer.params for layer in self.layers if layer.layer_type == kind)
            rows[kind] = {"macs": macs, "params": params,
                          "macs_percent": 100.0 * macs / total_macs if total_macs else 0.0,
                          "params_percent": 100.0 * params / total_params if total_params else 0.0}
        return rows

    def to_json(self, per_layer: bool = False) -> dict[str, Any]:
        data = {
            "path": self.path, "format": self.format,
            "params": self.params, "macs": self.macs, "by_layer_type": self.by_layer_type(),
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "ops": self.op_histogram, "weight_bytes": dict(self.weight_bytes),
            "peak_activation_bytes": self.peak_activation_bytes,
            "notes": [COUNTING_NOTE, MEMORY_NOTE, *self.notes],
        }
        if self.compatibility is not None:
            data["compatibility"] = dict(self.compatibility)
        if per_layer:
            data["layers"] = [layer.to_json() for layer in self.layers]
        return data
