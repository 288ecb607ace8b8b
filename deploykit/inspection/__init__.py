"""``deploykit inspect``: parameters, mult-adds, the per-layer-type table, ops, bytes and peak memory.

One walker per format (``keras_graph``, ``torch_graph``, ``onnx_graph``, ``tflite_graph``,
``coreml_graph``) reads the model's own graph and feeds a ``GraphBuilder`` (``graph``), which applies the
counting rules (``rules``) the same way for every format, so a source and its artifacts can be compared
figure by figure. ``inspect_source_file`` and ``inspect_source`` pick a source's walker; an artifact's walker
is its target's (``deploykit.targets``).
"""

from deploykit.inspection.dispatch import inspect_source, inspect_source_file
from deploykit.inspection.model import LAYER_TYPE_TITLES, LAYER_TYPES, Inspection, Layer

__all__ = ["Inspection", "Layer", "LAYER_TYPES", "LAYER_TYPE_TITLES", "inspect_source", "inspect_source_file"]
