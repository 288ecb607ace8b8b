"""Prepare an ONNX graph before any converter sees it: the user's input shapes written into the graph,
old opsets upgraded, then constant folding and simplification with onnxsim (shape sub-graphs that
exporters emit, Shape -> Gather -> Concat -> Reshape, collapse into constants).

The opset upgrade happens when the source is loaded (``loaders.onnx_upgrade``), before the parity reference
runs the graph, so the loaded graph already is the upgraded one; ``upgrade_opset`` records what the loader
did (``SourceModel.opset``) and upgrades here only a source that no loader prepared.

Both ONNX paths start from the same prepared model, made once per workspace. Each step that changed
something is listed in ``Prepared.steps`` for the record. A step that fails leaves the model as it was
(and says so in the steps): preparation makes conversion easier, it must never be the reason it fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploykit.loaders.onnx_upgrade import opset_of, upgrade


@dataclass(frozen=True)
class Prepared:
    model: object  # onnx.ModelProto
    path: Path  # the prepared model saved in the workspace
    steps: tuple[str, ...]

    def records(self) -> list[dict]:
        """The steps as pass records (``name``, ``stage``, ``by``, ``items``), for the artifact's ``passes``."""
        entries = []
        for step in self.steps:
            name, _, detail = step.partition(": ")
            entries.append({"name": name, "stage": "source", "by": "deploykit", "count": 1, "items": [detail]})
        return entries


def recorded_steps(source, workspace) -> list[dict]:
    """The preparation records of ``source`` if a path prepared it in this workspace, else none."""
    found = workspace.products.get(("onnx-prepared", source.path, id(source.handle)))
    return found.records() if found is not None else []


def prepared(source, workspace) -> Prepared:
    key = ("onnx-prepared", source.path, id(source.handle))
    if key not in workspace.products:
        workspace.products[key] = _prepare(source, workspace)
    return workspace.products[key]


def _prepare(source, workspace) -> Prepared:
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(source.handle)
    steps = []
    _fix_input_shapes(model, source.inputs)
    steps.append("fix_input_shapes: " + ", ".join(f"{t.name}={'x'.join(map(str, t.shape))}" for t in source.inputs))
    model, note = _upgrade_opset(model, source.opset)
    if note:
        steps.append(note)
    model, note = _simplify(model)
    if note:
        steps.append(note)
    count = sum(1 for k in workspace.products if isinstance(k, tuple) and k[0] == "onnx-prepared")
    folder = workspace.root / f"prepared-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit
    onnx.save_model(model, str(path), save_as_external_data=large, location="model.onnx.data")
    return Prepared(model, path, tuple(steps))


def _fix_input_shapes(model, inputs) -> None:
    """Every graph input gets the static shape deploykit resolved; output and intermediate shapes are
    cleared so shape inference recomputes them from the fixed inputs (stale symbolic dims confuse it)."""
    shapes = {t.name: t.shape for t in inputs}
    for value in model.graph.input:
        if value.name in shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[value.name]):
                dim.Clear()
                dim.dim_value = int(size)
    for value in model.graph.output:
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{value.name}_{index}"
    del model.graph.value_info[:]


def _upgrade_opset(model, loaded: dict | None):
    """``(model, step)``. ``loaded`` is what the loader did (``SourceModel.opset``): the graph is already the
    upgraded one, or stays the file's own (the reference ran it as it is), so nothing changes here."""
    if loaded is not None:
        if "upgraded_to" in loaded:
            return model, f"upgrade_opset: {loaded['file']} -> {loaded['upgraded_to']} (when loaded, before the parity " \
                          "reference ran it)"
        if "not_upgraded" in loaded:
            return model, (f"upgrade_opset: kept opset {loaded['file']} ({loaded['not_upgraded'][:160]}; reference: "
                           f"{loaded.get('reference')})")
        return model, None
    before = opset_of(model)
    model, record = upgrade(model)
    if "upgraded_to" in record:
        return model, f"upgrade_opset: {before} -> {record['upgraded_to']}"
    if "not_upgraded" in record:  # the converter lacks an adapter for some old op: the graph as it is
        return model, f"upgrade_opset: kept opset {before} ({record['not_upgraded'][:160]})"
    return model, None


def _simplify(model):
    import onnxsim

    nodes = len(model.graph.node)
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:
        return model, f"onnxsim: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
    if not ok:
        return model, "onnxsim: skipped (its own check failed)"
    return simplified, f"onnxsim: {nodes} -> {len(simplified.graph.node)} nodes"
