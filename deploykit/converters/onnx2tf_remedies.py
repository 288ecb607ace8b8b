"""The remedies of the ONNX -> TFLite ladder: what each onnx2tf attempt changes, and when it applies.

The ladder (``deploykit.converters.onnx_tflite.rungs``) starts with plain onnx2tf and adds one remedy
per rung, in the order of :data:`REMEDIES`; each rung keeps the remedies below it, because the faults
they fix stack (a YOLOv8 head needs both the layout fix and the constant-operand rewrite). A remedy
that cannot change anything for this graph is left out, so no minutes go to a rung that would
repeat the one below it. docs/conversion.md gives the measurements behind the order.

Three kinds of change, all deterministic and offline:
- onnx2tf options (``Settings.params``: keyword arguments of ``onnx2tf.convert``);
- ONNX rewrites applied to a private copy of the prepared model (``Settings.rewrites``, names in
  :data:`REWRITES`: each a function ``(model) -> nodes changed`` with a Given/Result docstring);
- the layout fix (``Settings.layout_fix``): when onnx2tf stops on a shape mismatch, the input it
  transposed wrongly is read from its error and a parameter-replacement JSON that transposes it back
  is written (:func:`layout_fixes`), then onnx2tf runs again.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

# ONNX ops whose TensorFlow kernels have no TFLite builtin, so onnx2tf's output needs Select-TF (Flex)
# ops, mapped to onnx2tf's ``replace_to_pseudo_operators`` names. The Python API compares them in
# lower case (only its command line lowers them): "Erf" is silently ignored and FlexErf stays.
# "gelu" is deliberately absent: it swaps exact GELU for the tanh approximation (~1e-3 off).
PSEUDO_OPS = {"Erf": "erf", "Asin": "asin", "Acos": "acos", "Atan": "atan"}

MAX_LAYOUT_FIXES = 6  # onnx2tf re-runs per rung for the layout fix; each fixes one op's inputs


@dataclass(frozen=True)
class GraphFacts:
    """What the remedies need to know about the prepared ONNX graph."""

    op_types: frozenset
    input_ranks: tuple  # (name, rank) per graph input
    constant_lhs: int = 0  # Sub/Div nodes whose first operand is a constant (see constant_lhs)
    multi_axis_slices: int = 0  # constant Slices over more than one axis (see single_axis_slices)
    captured_constants: int = 0  # branches reading outer initializers (see subgraph_constants)
    padded_average_pools: int = 0  # AveragePools whose explicit pads ONNX leaves out of the mean

    @classmethod
    def of(cls, model) -> "GraphFacts":
        graph = model.graph
        ops = frozenset(_all_op_types(graph))
        ranks = tuple((v.name, len(v.type.tensor_type.shape.dim)) for v in graph.input
                      if v.name not in {i.name for i in graph.initializer})
        values = _constant_values(graph, _slice_parameters(graph))
        slices = sum(1 for n in graph.node if len(_slice_parts(n, values) or ()) > 1)
        outer = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        captured = sum(1 for n in graph.node for a in n.attribute
                       for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs) if _captured(sub) & outer)
        pools = 0
        if "AveragePool" in ops:
            shapes = _onnx_shapes(model)
            pools = sum(1 for n in graph.node if _pool_correction(n, shapes) is not None)
        return cls(ops, ranks, len(_constant_lhs_sites(graph)), slices, captured, pools)


@dataclass(frozen=True)
class Settings:
    """One onnx2tf attempt."""

    params: dict = field(default_factory=dict)  # extra onnx2tf.convert keyword arguments
    rewrites: tuple = ()  # names in REWRITES, applied in order to the private copy
    layout_fix: bool = False

    def key(self) -> str:
        return repr((sorted(self.params.items()), self.rewrites, self.layout_fix))


@dataclass(frozen=True)
class Remedy:
    name: str  # the rung's name in the record ("onnx2tf:<remedy>"), documented in docs/conversion.md
    why: str  # one line: what it changes
    applies: Callable[[GraphFacts], bool]
    add: Callable[[Settings, GraphFacts], Settings]


# ---- ONNX rewrites -------------------------------------------------------------------------------

def constant_lhs(model) -> int:
    """Sub and Div whose first operand is a constant, rewritten so that the constant comes second.

    Given:  %y = Sub(%C, %x)             Result: %t = Sub(%x, %C);  %y = Neg(%t)
    Given:  %y = Div(%C, %x)             Result: %r = Pow(%x, -1);  %y = Mul(%C, %r)

    TensorFlow 2.21's TFLite converter (its PushTransposeThroughEwise pass) miscompiles a binary op
    whose first operand is a constant and whose second is a transposed tensor, and onnx2tf emits
    transposes at every NCHW <-> NHWC change: ``C - transpose(x)`` comes out as ``x' - C'`` and
    ``C / transpose(x)`` as ``x' * (1/C')``, even for a scalar C. A YOLOv8 box decode
    (``anchors - ltrb``) hits it: the TF model onnx2tf builds is right (3e-7), its .tflite is off by
    1.95 of the output's peak. ``-(x - C)`` is bit-exact; ``C * x^-1`` is within an ulp or two of
    ``C / x`` (POW is not pushed through, MUL commutes).
    """
    import numpy as np
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    sites = _constant_lhs_sites(graph)  # indices into graph.node (protobuf wrappers have no stable id)
    if not sites:
        return 0
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes = []
    for index, node in enumerate(graph.node):
        if index not in sites:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        c, x = node.input
        base = node.name or node.output[0]
        middle = _fresh(f"{base}/constant_second", taken)
        if node.op_type == "Sub":
            nodes.append(helper.make_node("Sub", [x, c], [middle], name=_fresh(f"{base}/swapped", taken)))
            nodes.append(helper.make_node("Neg", [middle], list(node.output), name=_fresh(f"{base}/neg", taken)))
        else:
            exponent = _fresh(f"{base}/minus_one", taken)
            graph.initializer.append(numpy_helper.from_array(np.array(-1, dtype=_dtype_of(model, c)), exponent))
            nodes.append(helper.make_node("Pow", [x, exponent], [middle], name=_fresh(f"{base}/reciprocal", taken)))
            nodes.append(helper.make_node("Mul", [c, middle], list(node.output), name=_fresh(f"{base}/times", taken)))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(sites)


def single_axis_slices(model) -> int:
    """Slices over several axes (constant starts/ends/axes/steps) split into one Slice per axis.

    Given:  %y = Slice(%x, starts=[0, 1], ends=[129, 5], axes=[1, 2])
    Result: %t = Slice(%x, starts=[0], ends=[129], axes=[1]);  %y = Slice(%t, starts=[1], ends=[5], axes=[2])

    onnxsim merges consecutive Slices into one; onnx2tf then maps the axes of the merged Slice into
    its NWC layout wrongly (Silero VAD's STFT: the real and imaginary halves come out with different
    shapes and the Add of their squares fails inside onnx2tf). One axis per Slice is what the
    exporter wrote and what onnx2tf converts. Exact: slicing axes one after another is the same
    selection.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    values = _constant_values(graph, _slice_parameters(graph))
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        parts = _slice_parts(node, values)
        if parts is None or len(parts) < 2:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        current = node.input[0]
        base = node.name or node.output[0]
        for k, (start, end, axis, step) in enumerate(parts):
            names = []
            for label, value in (("starts", start), ("ends", end), ("axes", axis), ("steps", step)):
                name = _fresh(f"{base}/axis{axis}_{label}", taken)
                graph.initializer.append(numpy_helper.from_array(np.array([value], dtype=np.int64), name))
                names.append(name)
            out = node.output[0] if k == len(parts) - 1 else _fresh(f"{base}/axis{axis}", taken)
            nodes.append(helper.make_node("Slice", [current, *names], [out], name=_fresh(f"{base}/axis{axis}", taken)))
            current = out
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _slice_parts(node, values):
    """[(start, end, axis, step)] of an opset >= 10 Slice whose parameters are all constants, else None."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    arrays = [values.get(name) if name else None for name in node.input[1:]]
    starts, ends = arrays[0], arrays[1]
    if starts is None or ends is None:
        return None
    axes = arrays[2] if len(arrays) > 2 and node.input[3] else np.arange(len(starts))
    steps = arrays[3] if len(arrays) > 3 and node.input[4] else np.ones(len(starts), dtype=np.int64)
    if axes is None or steps is None:
        return None
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(starts.ravel(), ends.ravel(), axes.ravel(), steps.ravel())]


def _constant_values(graph, names=None) -> dict:
    """name -> array of the graph's initializers and Constant outputs (only ``names`` when given:
    decoding every weight of a large model to look at a few Slice parameters would be slow)."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer if names is None or i.name in names}
    for node in graph.node:
        if node.op_type == "Constant" and (names is None or node.output[0] in names):
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _slice_parameters(graph) -> set[str]:
    return {name for n in graph.node if n.op_type == "Slice" for name in n.input[1:] if name}


def subgraph_constants(model) -> int:
    """Outer-scope initializers (and Constant outputs) that If/Loop/Scan branches read, copied into
    each branch's own initializers.

    Given:  If(%cond) then_branch={ %y = Gemm(%h, W_outer, b_outer) }     (W_outer: a main-graph initializer)
    Result: If(%cond) then_branch={ initializers W_outer, b_outer;  %y = Gemm(%h, W_outer, b_outer) }

    onnx2tf converts a branch's nodes one by one and looks every input up among the tensors it has
    built; an outer initializer is not one of them, so it stops with ``KeyError: 'W_outer'``
    (openWakeWord's verifier head, an If whose branch runs a second classifier). ONNX lets a branch
    read outer names, so a copy inside the branch computes the same; returns branches changed.
    """
    from onnx import TensorProto, numpy_helper

    outer = {i.name: i for i in model.graph.initializer}
    constant_outputs = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for name, value in _constant_values(model.graph, constant_outputs).items():
        if name not in outer:
            outer[name] = numpy_helper.from_array(value, name)
    changed = 0
    for node in model.graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                needed = sorted(_captured(sub) & set(outer))
                for name in needed:
                    copy = TensorProto()
                    copy.CopyFrom(outer[name])
                    sub.initializer.append(copy)
                changed += bool(needed)
    return changed


def average_pool_pads(model) -> int:
    """AveragePool that excludes padding (count_include_pad=0, the default) with explicit pads,
    rewritten as the pad-including average times a constant correction.

    Given:  %y = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1])       (count_include_pad=0)
    Result: %a = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1], count_include_pad=1)
            %y = Mul(%a, C)     C[i, j] = kernel cells / real (unpadded) cells under window (i, j)

    onnx2tf writes an explicitly padded AveragePool as PAD + AVERAGE_POOL_2D(VALID), which divides by
    every cell of the window, zeros included: the model-zoo Inception v1's last pool (6x6 input,
    7x7 kernel, one row and column of padding) comes out 36/49 of the ONNX value (max error 0.11 of
    the output's peak). The product is within an ulp of ONNX's quotient. Needs static input shapes
    (the prepared graph has them); pools it cannot size are left alone.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    shapes = _onnx_shapes(model)
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        correction = _pool_correction(node, shapes)
        kept = NodeProto()
        kept.CopyFrom(node)
        if correction is None:
            nodes.append(kept)
            continue
        base = node.name or node.output[0]
        including = _fresh(f"{base}/including_pads", taken)
        factor = _fresh(f"{base}/pad_correction", taken)
        graph.initializer.append(numpy_helper.from_array(correction, factor))
        for attribute in list(kept.attribute):
            if attribute.name == "count_include_pad":
                kept.attribute.remove(attribute)
        kept.attribute.append(helper.make_attribute("count_include_pad", 1))
        del kept.output[:]
        kept.output.append(including)
        nodes.append(kept)
        nodes.append(helper.make_node("Mul", [including, factor], list(node.output), name=_fresh(f"{base}/corrected", taken)))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _pool_correction(node, shapes):
    """The [1, 1, *out] correction of an AveragePool that excludes explicit pads, or None."""
    from onnx import helper

    if node.op_type != "AveragePool":
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
    shape = shapes.get(node.input[0])
    if attrs.get("count_include_pad", 0) or not any(pads) or not kernel or shape is None \
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or attrs.get("ceil_mode", 0) \
            or any(d != 1 for d in attrs.get("dilations", [1] * len(kernel))) or len(shape) != len(kernel) + 2:
        return None
    strides = list(attrs.get("strides", [1] * len(kernel)))
    rank = len(kernel)
    counts = np.ones((1,), dtype=np.float64)
    per_axis = []
    for axis in range(rank):
        size, k, s, begin, end = shape[2 + axis], kernel[axis], strides[axis], pads[axis], pads[axis + rank]
        out = (size + begin + end - k) // s + 1
        starts = np.arange(out) * s - begin
        real = np.minimum(starts + k, size) - np.maximum(starts, 0)
        per_axis.append(real.astype(np.float64))
    counts = per_axis[0]
    for real in per_axis[1:]:
        counts = np.multiply.outer(counts, real)
    correction = float(np.prod(kernel)) / counts
    if np.all(correction == 1.0):
        return None
    return correction.reshape((1, 1, *correction.shape)).astype(np.float32)


def _captured(graph) -> set[str]:
    """Names a graph (and its nested graphs) reads without defining them."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    read = set()
    for node in graph.node:
        read.update(name for name in node.input if name)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                read |= _captured(sub)
        defined.update(node.output)
    read.update(o.name for o in graph.output)
    return read - defined


REWRITES: dict[str, Callable] = {"constant_lhs": constant_lhs, "single_axis_slices": single_axis_slices,
                                 "subgraph_constants": subgraph_constants, "average_pool_pads": average_pool_pads}


def apply_rewrites(path, names) -> dict[str, int]:
    """Apply the named rewrites, in order, to the ONNX file at ``path`` in place; name -> nodes changed."""
    import onnx

    if not names:
        return {}
    model = onnx.load(str(path))
    counts = {name: REWRITES[name](model) for name in names}
    if any(counts.values()):
        large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit
        onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}.data")
    return counts


# ---- the layout fix ------------------------------------------------------------------------------

def layout_fixes(error, model) -> list[dict]:
    """Parameter-replacement operations that undo onnx2tf's wrong NCHW -> NHWC guess at the op it
    stopped on, read from its error: the TF shapes it built for the op's inputs ("with input shapes:
    [1,2100,4], [1,18,2100]") against the ONNX shapes of those inputs. An input whose TF shape is a
    permutation of its ONNX shape gets ``pre_process_transpose_perm`` back to the ONNX order (the
    channel-last -> channel-first permutation first when several fit). Empty when the error is not
    of that kind.

    ``model`` is the ONNX model onnx2tf was given; names are written as onnx2tf spells them
    (``:`` -> ``__``, a leading ``/`` -> ``wa/``), which its JSON matching leaves unchanged.
    """
    op_name = getattr(error, "onnx_op_name", None)
    tf_shapes = _input_shapes(getattr(error, "detail", "") or "")
    if not op_name or not tf_shapes:
        return []
    node = next((n for n in model.graph.node if onnx2tf_name(n.name) == op_name), None)
    if node is None:
        return []
    shapes = _onnx_shapes(model)
    fixes = []
    for name, tf_shape in zip(node.input, tf_shapes):
        onnx_shape = shapes.get(name)
        if not onnx_shape or tf_shape == onnx_shape or sorted(tf_shape) != sorted(onnx_shape):
            continue
        perm = _permutation(tf_shape, onnx_shape)
        if perm is not None:
            fixes.append({"op_name": op_name, "param_target": "inputs", "param_name": onnx2tf_name(name),
                          "pre_process_transpose_perm": list(perm)})
    return fixes


def write_replacements(path, operations: list[dict]):
    """onnx2tf's parameter-replacement file (``param_replacement_file``) with ``operations``."""
    import json
    from pathlib import Path

    path = Path(path)
    path.write_text(json.dumps({"format_version": 1, "operations": operations}, indent=2) + "\n")
    return path


def onnx2tf_name(name: str) -> str:
    """A node or tensor name as onnx2tf renames it when it writes signatures."""
    return re.sub("^/", "wa/", name.replace(":", "__"))


def _input_shapes(detail: str) -> list[tuple]:
    found = re.search(r"with input shapes: (.*?)(?: and with computed|\.\s*$|$)", detail, re.MULTILINE)
    if not found:
        return []
    shapes = []
    for text in re.findall(r"\[([^\]]*)\]", found.group(1)):
        dims = [d.strip() for d in text.split(",") if d.strip()]
        if not all(d.lstrip("-").isdigit() for d in dims):
            return []  # a dynamic ("?") dimension: no reliable permutation
        shapes.append(tuple(int(d) for d in dims))
    return shapes


def _permutation(tf_shape: tuple, onnx_shape: tuple):
    """perm with ``tf_shape[perm[k]] == onnx_shape[k]``: the channel-last -> channel-first one when it
    fits (the transpose onnx2tf most often adds wrongly), else the first in lexicographic order."""
    rank = len(tf_shape)
    preferred = [(0, rank - 1, *range(1, rank - 1))] if rank >= 3 else []
    for perm in preferred + list(itertools.permutations(range(rank))):
        if perm != tuple(range(rank)) and all(tf_shape[p] == d for p, d in zip(perm, onnx_shape)):
            return perm
    return None


def _onnx_shapes(model) -> dict[str, tuple]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    shapes = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


# ---- the remedies, in ladder order ---------------------------------------------------------------

def _pseudo_ops_present(facts: GraphFacts) -> list[str]:
    return [PSEUDO_OPS[op] for op in sorted(PSEUDO_OPS) if op in facts.op_types]


def _odd_rank_inputs(facts: GraphFacts) -> list[str]:
    return [name for name, rank in facts.input_ranks if rank in (3, 5)]


def _rewrite(name: str, **params):
    def add(settings: Settings, facts: GraphFacts) -> Settings:
        return replace(settings, rewrites=settings.rewrites + (name,), params={**settings.params, **params})

    return add


def _params(make: Callable[[GraphFacts], dict]):
    def add(settings: Settings, facts: GraphFacts) -> Settings:
        return replace(settings, params={**settings.params, **make(facts)})

    return add


REMEDIES: tuple[Remedy, ...] = (
    Remedy("onnx2tf:subgraph-constants",
           "copy the outer initializers If/Loop branches read into the branches (onnx2tf: KeyError on them)",
           lambda facts: facts.captured_constants > 0, _rewrite("subgraph_constants")),
    Remedy("onnx2tf:pseudo-ops",
           "replace_to_pseudo_operators for the graph's Erf/Asin/Acos/Atan: builtin-op formulas instead of Flex ops",
           lambda facts: bool(_pseudo_ops_present(facts)),
           _params(lambda facts: {"replace_to_pseudo_operators": _pseudo_ops_present(facts)})),
    Remedy("onnx2tf:layout-fix",
           "when onnx2tf stops on a shape mismatch, transpose the input it laid out wrongly back (JSON from its error)",
           lambda facts: True, lambda settings, facts: replace(settings, layout_fix=True)),
    Remedy("onnx2tf:constant-lhs",
           "rewrite Sub/Div with a constant first operand, which TF 2.21's TFLite converter miscompiles after a transpose",
           lambda facts: facts.constant_lhs > 0, _rewrite("constant_lhs")),
    Remedy("onnx2tf:single-axis-slices",
           "split Slices over several axes into one per axis (onnx2tf maps merged ones wrongly); onnx2tf's own "
           "onnxsim off, since it would merge them again",
           lambda facts: facts.multi_axis_slices > 0, _rewrite("single_axis_slices", not_use_onnxsim=True)),
    Remedy("onnx2tf:average-pool-pads",
           "rewrite AveragePools that exclude explicit pads as the pad-including mean times a constant correction "
           "(onnx2tf divides by the whole window)",
           lambda facts: facts.padded_average_pools > 0, _rewrite("average_pool_pads")),
    Remedy("onnx2tf:keep-input-shape",
           "keep_shape_absolutely_input_names for rank-3 and rank-5 inputs: no NCW -> NWC guess on sequences, states, volumes",
           lambda facts: bool(_odd_rank_inputs(facts)),
           _params(lambda facts: {"keep_shape_absolutely_input_names": _odd_rank_inputs(facts)})),
)


def ladder(facts: GraphFacts) -> list[tuple[str, str, Settings]]:
    """(rung name, why, settings) for plain onnx2tf and then each applicable remedy, cumulatively."""
    settings = Settings()
    rungs = [("onnx2tf", "onnx2tf's defaults on the prepared graph", settings)]
    for remedy in REMEDIES:
        if remedy.applies(facts):
            settings = remedy.add(settings, facts)
            rungs.append((remedy.name, remedy.why, settings))
    return rungs


# ---- helpers -------------------------------------------------------------------------------------

def _constant_lhs_sites(graph) -> set[int]:
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return {index for index, n in enumerate(graph.node) if n.op_type in ("Sub", "Div") and len(n.input) == 2
            and n.input[0] in constants and n.input[1] not in constants}


def _all_op_types(graph):
    for node in graph.node:
        yield node.op_type
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _all_op_types(sub)


def _fresh(name: str, taken: set) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def _dtype_of(model, name: str):
    import numpy as np
    from onnx import helper

    for init in model.graph.initializer:
        if init.name == name:
            return helper.tensor_dtype_to_np_dtype(init.data_type)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return helper.tensor_dtype_to_np_dtype(attribute.t.data_type)
    return np.float32
