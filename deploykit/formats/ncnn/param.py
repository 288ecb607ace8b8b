"""Read, check and edit an NCNN ``.param`` file (the text graph of an NCNN model) without the runtime.

The format, as ncnn's ``Net::load_param`` reads it::

    7767517
    <layer count> <blob count>
    <type> <name> <inputs> <outputs> <input blob>... <output blob>... <key>=<value>...

Keys are integers; a key at or below -23300 holds an array (``-23310=2,0.0,6.0`` is key 10 with two values).
The runtime is native code: deploykit parses a file itself first and refuses anything malformed with a
readable error, so ncnn only ever sees a file whose structure is sound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.core.errors import InputError

MAGIC = "7767517"
# ncnn reads every token with "%255s": longer names are cut, so deploykit refuses them.
MAX_NAME = 255
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.:/-]")


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...] = ()  # the ``key=value`` tokens as written

    def param(self, key: int) -> str | None:
        prefix = f"{key}="
        return next((p[len(prefix):] for p in self.params if p.startswith(prefix)), None)


@dataclass(frozen=True)
class Graph:
    layers: tuple[Layer, ...]
    blob_count: int
    notes: tuple[str, ...] = field(default=())

    @property
    def input_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.type == "Input")

    @property
    def input_blobs(self) -> tuple[str, ...]:
        return tuple(layer.outputs[0] for layer in self.input_layers)

    @property
    def output_blobs(self) -> tuple[str, ...]:
        """Blobs no layer consumes, in the order they are produced (pnnx writes the model's outputs last)."""
        consumed = {blob for layer in self.layers for blob in layer.inputs}
        return tuple(blob for layer in self.layers for blob in layer.outputs
                     if blob not in consumed and layer.type != "Input")

    def histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for layer in self.layers:
            if layer.type != "Input":
                counts[layer.type] = counts.get(layer.type, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def input_shape(self, blob: str) -> tuple[int, ...] | None:
        """The shape an Input layer declares (ncnn's c, d, h, w order, without batch), or None when it declares none."""
        layer = next((l for l in self.input_layers if l.outputs[0] == blob), None)
        if layer is None:
            return None
        w, h, d, c = (int(layer.param(k) or 0) for k in (0, 1, 11, 2))
        dims = [x for x in (c, d, h, w) if x > 0]
        return tuple(dims) or None


def parse(text: str, where: str = "the .param file") -> Graph:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise InputError(f"{where} is not an NCNN .param file (it does not start with the magic number {MAGIC})",
                         hint="pass the .param of an NCNN model, or the folder deploykit wrote")
    try:
        layer_count, blob_count = (int(x) for x in lines[1])
    except (IndexError, ValueError):
        raise InputError(f"{where}: the second line must be '<layer count> <blob count>'") from None
    if layer_count != len(lines) - 2:
        raise InputError(f"{where} declares {layer_count} layers but has {len(lines) - 2}", hint="the file is truncated or edited")
    layers, produced = [], set()
    for number, tokens in enumerate(lines[2:], start=3):
        layers.append(_layer(tokens, f"{where}, line {number}"))
        for blob in layers[-1].inputs:
            if blob not in produced:
                raise InputError(f"{where}, line {number}: layer {layers[-1].name!r} reads blob {blob!r} before any layer writes it")
        produced.update(layers[-1].outputs)
    if len(produced) > blob_count:
        raise InputError(f"{where} declares {blob_count} blobs but its layers write {len(produced)}")
    if not any(layer.type == "Input" for layer in layers):
        raise InputError(f"{where} has no Input layer")
    return Graph(tuple(layers), blob_count)


def _layer(tokens: list[str], where: str) -> Layer:
    if len(tokens) < 4:
        raise InputError(f"{where}: a layer line needs a type, a name and its input and output counts")
    kind, name = tokens[0], tokens[1]
    try:
        n_in, n_out = int(tokens[2]), int(tokens[3])
    except ValueError:
        raise InputError(f"{where}: the input and output counts of layer {name!r} are not integers") from None
    if n_in < 0 or n_out < 0 or len(tokens) < 4 + n_in + n_out:
        raise InputError(f"{where}: layer {name!r} lists fewer blobs than it declares")
    blobs = tokens[4:4 + n_in + n_out]
    params = tuple(tokens[4 + n_in + n_out:])
    for token in (kind, name, *blobs):
        if len(token) > MAX_NAME:
            raise InputError(f"{where}: a name is longer than ncnn's {MAX_NAME} characters")
    for token in params:
        key, sep, _ = token.partition("=")
        if not sep or not key.lstrip("-").isdigit():
            raise InputError(f"{where}: layer {name!r} has a malformed parameter {token[:40]!r}")
    return Layer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params)


def read(path: str | Path) -> Graph:
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not an NCNN .param file (it is not ASCII text)") from None
    return parse(text, str(path))


def blob_name(name: str) -> str:
    """A source tensor's name as an NCNN blob name: no whitespace, at most 255 characters, readable."""
    safe = _SAFE_NAME.sub("_", name)[:MAX_NAME]
    return safe or "blob"


def renamed(text: str, mapping: dict[str, str], input_shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """``text`` with blobs (and the Input layers that write them) renamed per ``mapping``; an Input layer named
    in ``input_shapes`` (keys: new names) declares that shape (c, d, h, w without batch) as its w/h/d/c params.

    A blob's name is only a key the app passes to ``Extractor::input`` / ``extract``: renaming is exact."""
    graph = parse(text)
    taken = {blob for layer in graph.layers for blob in (*layer.inputs, *layer.outputs)} - set(mapping)
    clash = sorted(set(mapping.values()) & taken)
    if clash:
        raise InputError(f"cannot name NCNN blobs {', '.join(clash)}: the graph has other blobs of that name")
    lines = [MAGIC, f"{len(graph.layers)} {graph.blob_count}"]
    for layer in graph.layers:
        name = mapping.get(layer.outputs[0], layer.name) if layer.type == "Input" else layer.name
        params = layer.params
        if layer.type == "Input" and input_shapes and name in input_shapes:
            params = _shape_params(input_shapes[name])
        blobs = [mapping.get(b, b) for b in (*layer.inputs, *layer.outputs)]
        lines.append(" ".join([f"{layer.type:<24}", f"{name:<24}", str(len(layer.inputs)), str(len(layer.outputs)),
                               *blobs, *params]).rstrip())
    return "\n".join(lines) + "\n"


def _shape_params(dims: tuple[int, ...]) -> tuple[str, ...]:
    """Input layer parameters for a shape in ncnn's order: (w), (h, w), (c, h, w) or (c, d, h, w)."""
    keys = {1: (0,), 2: (1, 0), 3: (2, 1, 0), 4: (2, 11, 1, 0)}.get(len(dims))
    if keys is None:
        return ()
    return tuple(f"{key}={dim}" for key, dim in sorted(zip(keys, dims)))
