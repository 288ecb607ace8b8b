"""``GraphBuilder``: what every walker feeds, in graph order, and the one place parameters and memory are counted.

A walker declares constants (weights as the file stores them), activations (tensors computed at run
time) and ops. An op that reads only constants (TFLite's DEQUANTIZE of fp16 weights, a transpose of a
weight) is folded: its output is a constant too, with the decoded size, so a quantized artifact counts
the same parameters as its source. Each constant is counted once, by the first op that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deploykit.inspection.model import Inspection, Layer, TensorInfo
from deploykit.inspection.rules import dtype_bytes, elements, is_parameter


@dataclass
class _Constant:
    elements: int
    dtype: str
    counted: bool = False


@dataclass
class GraphBuilder:
    path: str
    format: str
    notes: list[str] = field(default_factory=list)
    _constants: dict[str, _Constant] = field(default_factory=dict)
    _activations: dict[str, int] = field(default_factory=dict)  # name -> bytes
    _layers: list[Layer] = field(default_factory=list)
    _reads: list[tuple[str, ...]] = field(default_factory=list)
    _writes: list[tuple[str, ...]] = field(default_factory=list)
    _stored: dict[str, float] = field(default_factory=dict)
    _inputs: list[TensorInfo] = field(default_factory=list)
    _outputs: list[TensorInfo] = field(default_factory=list)
    _input_keys: list[str] = field(default_factory=list)
    _output_keys: list[str] = field(default_factory=list)

    # -- declaring ----------------------------------------------------------------------------
    def constant(self, name: str, shape, dtype: str, stored_bytes: float | None = None) -> None:
        """A weight as stored; ``stored_bytes`` when it differs from shape x dtype (palettized, sparse)."""
        count = elements(shape)
        self._constants[name] = _Constant(count, dtype)
        self._stored[dtype] = self._stored.get(dtype, 0) + (count * dtype_bytes(dtype) if stored_bytes is None
                                                            else stored_bytes)

    def stored(self, dtype: str, nbytes: float) -> None:
        """Bytes of a stored tensor the walker does not declare as a constant (a palette's LUT, say)."""
        self._stored[dtype] = self._stored.get(dtype, 0) + nbytes

    def is_constant(self, name: str) -> bool:
        return name in self._constants

    def input(self, name: str, shape, dtype: str, display: str | None = None) -> None:
        """A graph input; ``display`` is the name an app sees when ``name`` is the walker's own key."""
        self._inputs.append(TensorInfo(display or name, tuple(shape), dtype))
        self._input_keys.append(name)
        self.activation(name, shape, dtype)

    def output(self, name: str, shape, dtype: str, display: str | None = None) -> None:
        self._outputs.append(TensorInfo(display or name, tuple(shape), dtype))
        self._output_keys.append(name)

    def activation(self, name: str, shape, dtype: str) -> None:
        self._activations[name] = int(elements(shape) * dtype_bytes(dtype)) if shape is not None else 0

    def fold(self, outputs: list[tuple[str, tuple, str]], reads: list[str]) -> None:
        """An op computed from constants only: its outputs are constants with their decoded sizes."""
        for name in reads:
            if name in self._constants:
                self._constants[name].counted = True  # the folded result is what layers read
        for name, shape, dtype in outputs:
            self._constants[name] = _Constant(elements(shape), dtype)

    def layer(self, *, name: str, op: str, layer_type: str = "other", macs: int = 0,
              reads: list[str] = (), weights: list[str] = (), writes: list[str] = (),
              output_shape=None) -> None:
        """One op. ``weights``: constants counted whatever their dtype (a conv's kernel and bias, even int32);
        other constant ``reads`` count when ``rules.is_parameter`` says they are learned."""
        params = 0
        for weight in weights:
            params += self._take(weight, require_parameter=False)
        activations = []
        for read in reads:
            if read in self._constants:
                params += self._take(read, require_parameter=True)
            else:
                activations.append(read)
        self._layers.append(Layer(name=name, op=op, layer_type=layer_type, macs=int(macs), params=params,
                                  output_shape=tuple(output_shape) if output_shape is not None else None))
        self._reads.append(tuple(activations))
        self._writes.append(tuple(writes))

    def _take(self, name: str, *, require_parameter: bool) -> int:
        constant = self._constants.get(name)
        if constant is None or constant.counted:
            return 0
        if require_parameter and not is_parameter(constant.dtype, constant.elements):
            return 0
        constant.counted = True
        return constant.elements

    # -- result -------------------------------------------------------------------------------
    def build(self) -> Inspection:
        return Inspection(
            path=self.path, format=self.format, inputs=tuple(self._inputs), outputs=tuple(self._outputs),
            layers=tuple(self._layers), weight_bytes={k: int(round(v)) for k, v in sorted(self._stored.items()) if v > 0},
            peak_activation_bytes=self._peak_bytes(), notes=tuple(self.notes),
        )

    def _peak_bytes(self) -> int:
        """Liveness in graph order: inputs live from the start, outputs to the end, the rest until last read."""
        last_read: dict[str, int] = {}
        for index, reads in enumerate(self._reads):
            for name in reads:
                last_read[name] = index
        keep = set(self._output_keys)
        live = {name: self._activations.get(name, 0) for name in self._input_keys}
        peak = sum(live.values())
        for index, writes in enumerate(self._writes):
            for name in writes:
                live[name] = self._activations.get(name, 0)
            peak = max(peak, sum(live.values()))
            for name in [n for n in live if last_read.get(n, -1) <= index and n not in keep]:
                del live[name]
        return int(peak)
