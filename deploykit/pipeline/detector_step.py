"""``--detector`` in a conversion: the preset fitted to the source before anything converts, and the decode and
NMS appended to every written artifact once all of a target's variants are made (each variant derives from the
raw fp32 artifact, so the post-process goes on last: quantizers, repairs and the fp16 rescue see the raw head)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from deploykit.core.errors import UsageError
from deploykit.core.hashing import sha256_path, size_path
from deploykit.detection.options import DetectorOptions
from deploykit.detection.presets import Head, fit, input_size
from deploykit.targets.base import Target


@dataclass(frozen=True)
class DetectorPlan:
    options: DetectorOptions
    head: Head
    labels: tuple[str, ...] | None


def plan_detector(request, model, targets) -> DetectorPlan | None:
    """The fitted head of ``request.detector`` on the loaded source ``model`` (before app I/O wraps it)."""
    options = request.detector
    if options is None:
        return None
    unsupported = [t.title for t in targets if type(t).attach_detector is Target.attach_detector]
    if unsupported:
        raise UsageError(f"--detector is not made for {', '.join(unsupported)} artifacts yet",
                         hint="convert those targets in a run without --detector")
    if len(model.inputs) != 1:
        raise UsageError(f"--detector needs a model with one image input; this one has {len(model.inputs)}")
    spec = model.inputs[0]
    head = fit(options, input_size(spec.shape, spec.layout), {o.name: o.shape for o in model.outputs},
               _op_types(model))
    labels = None
    if request.classifier is not None:
        from deploykit.labels.spec import read_labels

        labels = read_labels(Path(request.classifier.labels))
        if len(labels) != head.classes:
            raise UsageError(f"--labels has {len(labels)} labels; the {options.preset} head has {head.classes} classes")
    return DetectorPlan(options, head, labels)


def with_detector(artifact, target, staging: Path, model, workspace, plan: DetectorPlan):
    """``artifact`` with the decode and NMS appended to its file, its outputs and figures read back."""
    path = Path(staging) / artifact.path
    block = target.attach_detector(path, plan.head, plan.options, plan.labels)
    _, outputs, ops = target.interface(path, model, workspace)
    return replace(artifact, outputs=outputs, op_histogram=ops, size_bytes=size_path(path), sha256=sha256_path(path),
                   detector=block)


def _op_types(model) -> set[str]:
    graph = getattr(getattr(model, "handle", None), "graph", None)
    return {node.op_type for node in graph.node} if graph is not None and hasattr(graph, "node") else set()
