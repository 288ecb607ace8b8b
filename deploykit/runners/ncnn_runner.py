"""NCNN models (``.param`` + ``.bin``) with the ``ncnn`` runtime, in this process.

NCNN tensors have no batch axis: an input of the source's shape ``(1, C, H, W)`` is fed as ``(C, H, W)``, and
each output comes back without it and is given the source's shape again. Integer inputs (token ids) are fed
as int32, what ncnn's Embed layer reads from a blob (whose 4-byte elements each layer reads as it means them).
The .param is parsed and checked by deploykit before ncnn (native code) reads it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.core.types import TensorSpec
from deploykit.formats import ncnn_facade
from deploykit.formats.ncnn import pair, param
from deploykit.runners.base import Runner

_INT32 = np.iinfo(np.int32)


class NcnnRunner(Runner):
    """``fp16``: run with fp16 storage and arithmetic, as an app runs an fp16 artifact. ``inputs`` / ``outputs``:
    the tensors as the record describes them (names are blob names, shapes the source's); without them the
    Input layers' declared shapes are used and the outputs' shapes come from one run on zeros, batch 1 added to
    both (the source's shapes when it had a batch axis of 1, which deploykit requires of NCNN sources)."""

    name = "ncnn"

    def __init__(self, path, *, fp16: bool = False, threads: int = 1, inputs: tuple[TensorSpec, ...] = (),
                 outputs: tuple[TensorSpec, ...] = ()):
        super().__init__()
        self.param_path, self.bin_path = pair.files(path)
        self.fp16, self.threads = fp16, threads
        self._given = (tuple(inputs), tuple(outputs))
        self.notes = (f"ncnn {ncnn_facade.version()} on the CPU, fp16 storage and arithmetic {'on' if fp16 else 'off'}",)
        self._net = None

    def activate_impl(self):
        graph = param.read(self.param_path)
        inputs, outputs = self._given
        if not inputs:
            inputs = tuple(TensorSpec(blob, (1, *(graph.input_shape(blob) or ()))) for blob in graph.input_blobs)
        self._net = ncnn_facade.open_net(self.param_path, self.bin_path, fp16=self.fp16, threads=self.threads)
        if not outputs:  # a .param holds no output shapes: one run on zeros tells them
            zeros = {t.name: np.zeros(t.shape[1:], np.float32) for t in inputs}
            shapes = ncnn_facade.run(self._net, zeros, graph.output_blobs)
            outputs = tuple(TensorSpec(blob, (1, *shapes[blob].shape)) for blob in graph.output_blobs)
        missing = [t.name for t in inputs if t.name not in graph.input_blobs]
        if missing:
            raise UsageError(f"{self.param_path} has no input blob {', '.join(missing)}",
                             hint=f"its inputs are {', '.join(graph.input_blobs)}")
        return inputs, outputs

    def deactivate_impl(self) -> None:
        self._net = None

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Integer feeds (token ids) go to ncnn as int32: a blob's elements are 4 bytes that each layer reads as it
        means them, and Embed reads int32 indices (the same ids as floats index garbage). Their shapes are checked
        like any input's."""
        specs = {t.name: t for t in self.input_specs}
        ints, checked = {}, {}
        for name, value in feeds.items():
            value = np.asarray(value)
            if value.dtype.kind in "iub":
                if value.size and (value.min() < _INT32.min or value.max() > _INT32.max):
                    raise UsageError(f"NCNN takes input {name!r} as int32, which cannot hold {value.min()}..{value.max()}")
                ints[name] = value.astype(np.int32)
                spec = specs.get(name)
                if spec is None or np.dtype(spec.dtype).kind not in "iub":  # a float32 Input layer: checked as one
                    value = ints[name].view(np.float32)
            checked[name] = value
        return {name: ints.get(name, value) for name, value in super().check_feeds(checked).items()}

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ncnn_feeds = {}
        for spec in self.input_specs:
            value = np.asarray(feeds[spec.name])
            if value.ndim and value.shape[0] != 1:
                raise UsageError(f"NCNN runs one sample at a time; input {spec.name!r} has batch {value.shape[0]}")
            ncnn_feeds[spec.name] = value[0] if value.ndim > 1 else value
        results = ncnn_facade.run(self._net, ncnn_feeds, tuple(t.name for t in self.output_specs))
        return {t.name: _with_shape(results[t.name], t.shape) for t in self.output_specs}


def _with_shape(value: np.ndarray, shape: tuple) -> np.ndarray:
    """An NCNN output in the source's shape when its size matches (the batch axis comes back), else batch 1 added."""
    if shape and all(isinstance(d, int) and d > 0 for d in shape) and int(np.prod(shape)) == value.size:
        return value.reshape(shape)
    return value[None]
