"""The remedies of the ONNX -> TFLite ladder: what each onnx2tf attempt changes, and when it applies.

The ladder (``deploykit.converters.onnx_tflite.rungs``) starts with plain onnx2tf and adds one remedy
per rung, in the order of :data:`REMEDIES`; each rung keeps the remedies below it, because the faults
they fix stack (a YOLOv8 head needs both the layout fix and the constant-operand rewrite). A remedy
that cannot change anything for this graph is left out, so no minutes go to a rung that would
repeat the one below it. docs/conversion.md gives the measurements behind the order.

Three kinds of change, all deterministic and offline:
- onnx2tf options (``Settings.params``: keyword arguments of ``onnx2tf.convert``);
- ONNX rewrites applied to a private copy of the prepared model (``Settings.rewrites``, names in
  registered passes of stage ``onnx``, ``deploykit/passes/onnx_*.py``: each ``(model) -> nodes changed`` with a Given/Result docstring);
- the layout fix (``Settings.layout_fix``): when onnx2tf stops on a shape mismatch, the input it
  transposed wrongly is read from its error and a parameter-replacement JSON that transposes it back
  is written (:func:`layout_fixes`), then onnx2tf runs again.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Callable

from deploykit.passes.onnx_graph import onnx_shapes
from deploykit.passes.onnx_rewrites import rewrite_sites

# ONNX ops whose TensorFlow kernels have no TFLite builtin, so onnx2tf's output needs Select-TF (Flex)
# ops, mapped to onnx2tf's ``replace_to_pseudo_operators`` names. The Python API compares them in
# lower case (only its command line lowers them): "Erf" is silently ignored and FlexErf stays.
# "gelu" is deliberately absent: it swaps exact GELU for the tanh approximation (~1e-3 off).
# PRelu too: TFLite's PRELU takes rank 4 at most ("'tfl.prelu' op failed to verify ... within the rank 4" on
# a PReLU over a 5-D tensor); the pseudo form relu(x) + (x - |x|) * (slope / 2) is exact (scaling by 2 and 1/2 is).
PSEUDO_OPS = {"Erf": "erf", "Asin": "asin", "Acos": "acos", "Atan": "atan", "PRelu": "prelu"}

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
    scalar_divisions: int = 0  # Divs by one float constant (see scalar_division)
    pools_3d: int = 0  # MaxPools / AveragePools over three axes that split exactly into 2-D ones (see max_pool3d_as_2d)
    constant_tiles: int = 0  # Tiles by constant repeats over rank >= 3 (see tile_as_concat)
    dilated_convs: int = 0  # dilated Convs onnx2tf cannot write with builtin ops (see dilated_conv_as_dense)
    dilated_max_pools: int = 0  # dilated MaxPools, which onnx2tf writes as Dilation2D (see dilated_max_pool_as_phases)
    float64_places: int = 0  # float64 inputs, weights, constants, Casts: no TFLite kernel takes them (see float64_as_float32)

    @classmethod
    def of(cls, model) -> "GraphFacts":
        graph = model.graph
        ops = frozenset(_all_op_types(graph))
        ranks = tuple((v.name, len(v.type.tensor_type.shape.dim)) for v in graph.input
                      if v.name not in {i.name for i in graph.initializer})
        sites = rewrite_sites(model, bool({"AveragePool", "MaxPool"} & ops))
        return cls(ops, ranks, sites["constant_lhs"], sites["single_axis_slices"], sites["subgraph_constants"],
                   sites["average_pool_pads"], sites["scalar_division"],
                   sites["max_pool3d_as_2d"] + sites["average_pool3d_as_2d"], sites["tile_as_concat"],
                   sites["dilated_conv_as_dense"], sites["dilated_max_pool_as_phases"], sites["float64_as_float32"])


@dataclass(frozen=True)
class Settings:
    """One onnx2tf attempt."""

    params: dict = field(default_factory=dict)  # extra onnx2tf.convert keyword arguments
    rewrites: tuple = ()  # names of registered onnx-stage passes, applied in order to the private copy
    layout_fix: bool = False

    def key(self) -> str:
        return repr((sorted(self.params.items()), self.rewrites, self.layout_fix))


@dataclass(frozen=True)
class Remedy:
    name: str  # the rung's name in the record ("onnx2tf:<remedy>"), documented in docs/conversion.md
    why: str  # one line: what it changes
    applies: Callable[[GraphFacts], bool]
    add: Callable[[Settings, GraphFacts], Settings]


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
    shapes = onnx_shapes(model)
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


def _pseudo_ops_present(facts: GraphFacts) -> list[str]:
    return [PSEUDO_OPS[op] for op in sorted(PSEUDO_OPS) if op in facts.op_types]


def _odd_rank_inputs(facts: GraphFacts) -> list[str]:
    return [name for name, rank in facts.input_ranks if rank in (3, 5)]


def _rewrite(*names: str, **params):
    def add(settings: Settings, facts: GraphFacts) -> Settings:
        return replace(settings, rewrites=settings.rewrites + names, params={**settings.params, **params})

    return add


def _params(make: Callable[[GraphFacts], dict]):
    """A remedy that sets onnx2tf options; a list option adds to the list the settings have (names to keep)."""
    def add(settings: Settings, facts: GraphFacts) -> Settings:
        params = dict(settings.params)
        for key, value in make(facts).items():
            before = params.get(key)
            params[key] = list(dict.fromkeys(before + value)) if isinstance(before, list) and isinstance(value, list) else value
        return replace(settings, params=params)

    return add


REMEDIES: tuple[Remedy, ...] = (
    Remedy("onnx2tf:float32",
           "compute a float64 graph in float32, as Core ML does (TFLite has no float64 kernels: FlexAddV2 and the like)",
           lambda facts: facts.float64_places > 0, _rewrite("float64_as_float32")),
    Remedy("onnx2tf:subgraph-constants",
           "copy the outer initializers If/Loop branches read into the branches (onnx2tf: KeyError on them)",
           lambda facts: facts.captured_constants > 0, _rewrite("subgraph_constants")),
    Remedy("onnx2tf:pseudo-ops",
           "replace_to_pseudo_operators for the graph's Erf/Asin/Acos/Atan/PRelu: builtin-op formulas instead of Flex "
           "ops (and of a PRELU above rank 4)",
           lambda facts: bool(_pseudo_ops_present(facts)),
           _params(lambda facts: {"replace_to_pseudo_operators": _pseudo_ops_present(facts)})),
    Remedy("onnx2tf:pool3d-as-2d",
           "rewrite 3-D MaxPool / AveragePool as a 2-D pool over (H, W) and one over depth (onnx2tf writes "
           "FlexMaxPool3D / FlexAvgPool3D)",
           lambda facts: facts.pools_3d > 0, _rewrite("max_pool3d_as_2d", "average_pool3d_as_2d")),
    Remedy("onnx2tf:tile-as-concat",
           "rewrite Tile by constant repeats as Concats of copies (onnx2tf tiles an NHWC tensor by NCHW-ordered repeats)",
           lambda facts: facts.constant_tiles > 0, _rewrite("tile_as_concat")),
    Remedy("onnx2tf:dense-dilated-conv",
           "rewrite a Conv dilated and strided at once, or a dilated 3-D Conv, as an undilated Conv with zeros between "
           "the kernel's taps (onnx2tf stops on the first, writes FlexSpaceToBatchND for the second)",
           lambda facts: facts.dilated_convs > 0, _rewrite("dilated_conv_as_dense")),
    Remedy("onnx2tf:phased-dilated-pool",
           "rewrite a dilated MaxPool as an undilated one over the input's phases (onnx2tf writes FlexDilation2D)",
           lambda facts: facts.dilated_max_pools > 0, _rewrite("dilated_max_pool_as_phases")),
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
    Remedy("onnx2tf:scalar-division",
           "rewrite Div by a scalar constant as Mul by its reciprocal (onnx2tf's Div accuracy correction stops on a "
           "constant divisor)",
           lambda facts: facts.scalar_divisions > 0, _rewrite("scalar_division")),
)


def ladder(facts: GraphFacts, base: Settings = Settings()) -> list[tuple[str, str, Settings]]:
    """(rung name, why, settings) for plain onnx2tf (with ``base``) and then each applicable remedy, cumulatively."""
    settings = base
    rungs = [("onnx2tf", "onnx2tf's defaults on the prepared graph", settings)]
    for remedy in REMEDIES:
        if remedy.applies(facts):
            settings = remedy.add(settings, facts)
            rungs.append((remedy.name, remedy.why, settings))
    return rungs


# ---- helpers -------------------------------------------------------------------------------------

def _all_op_types(graph):
    for node in graph.node:
        yield node.op_type
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _all_op_types(sub)


