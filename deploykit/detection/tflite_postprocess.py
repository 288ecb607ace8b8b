"""TFLite: the head's decode and non-maximum suppression appended to a finished artifact.

The post-process is a ``tf.function`` (``tf_decode``) taking the raw head outputs as the artifact writes them,
converted with TFLiteConverter to builtin ops only (no Select-TF ops, so stock LiteRT runs it), then stitched
after the artifact's graph (``formats.tflite.stitch``): the raw outputs feed it, and the artifact's outputs
become the four that Task Library, ML Kit and MediaPipe read (``outputs.TFLITE_OUTPUTS``), in the signature too.

Why NON_MAX_SUPPRESSION_V5 and not TFLite_Detection_PostProcess: the latter is a custom op that decodes SSD
anchors only, and its suppression is either class-agnostic ("fast") or keeps a box once per class ("regular"),
neither of which is the reference's one detection per box of its best class with class-aware suppression.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError, UsageError
from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import TFLITE_OUTPUTS
from deploykit.detection.presets import Head

DESCRIPTIONS = {
    "yolov8": "centre/size to corners (elementwise)",
    "yolox": "grid offsets and exp sizes times strides (elementwise, constant grids), objectness x class scores",
    "picodet": "softmax over distance bins, expected distances (MUL + SUM), times strides from constant centres",
    "boxes-scores": "box format to corners (elementwise)",
    "ssd": "yxyx to corners, scaled to pixels (elementwise)",
}
TRANSPOSED = (0, 2, 1)  # a 3-D output the converter wrote the other way round (channels-first <-> last)
TENSOR_FLOAT32 = 0  # the schema's TensorType


def append_postprocess(path: Path, head: Head, options: DetectorOptions) -> str:
    """Rewrite the .tflite at ``path`` in place with the detections as its outputs; returns the ops used (the
    record's ``postprocess``)."""
    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.formats.tflite.flatbuffer import read_model, write_model
    from deploykit.formats.tflite.stitch import append_graph

    path = Path(path)
    data = path.read_bytes()
    model = read_model(data)
    subgraph, raw = find_head(model, head)
    tail = read_model(_postprocess_model(head, options, [model.subgraphs[subgraph].tensors[i].shape for i, _ in raw],
                                         [order for _, order in raw]))
    inputs, outputs = _signature(tail)
    feeds = {inputs[f"head_{k}"]: index for k, (index, _) in enumerate(raw)}
    append_graph(model, tail, feeds, [(name, outputs[name]) for name in TFLITE_OUTPUTS], subgraph)
    _drop_stale_descriptions(model)
    write_bytes_atomic(path, write_model(model, len(data) + 4096))
    moved = [name for name, (_, order) in zip(head.outputs, raw) if order]
    return (f"{DESCRIPTIONS[head.preset]}; best class REDUCE_MAX + ARG_MAX; "
            + ("NON_MAX_SUPPRESSION_V5 (TFLite builtin)" if options.class_agnostic else
               "class-aware NON_MAX_SUPPRESSION_V5 (TFLite builtin; boxes offset per class)")
            + "; GATHER of the kept boxes, normalized to the input, padded to max_detections"
            + (f"; {', '.join(moved)} transposed back to the source's layout" if moved else ""))


def source_shapes(head: Head) -> list[tuple[int, ...]]:
    """The shape of each of ``head.outputs`` in the source (batch of 1), as ``presets.fit`` accepted it."""
    n, c = head.candidates, head.classes
    if head.preset == "yolov8":
        return [(1, 4 + c, n) if head.channels_first else (1, n, 4 + c)]
    if head.preset == "yolox":
        return [(1, n, 5 + c)]
    if head.preset == "picodet":
        cells = [rows * cols for rows, cols in head.level_sizes()]
        return [(1, k, c) for k in cells] + [(1, k, 4 * (head.reg_max + 1)) for k in cells]
    return [(1, n, 4), (1, n, c)]


def find_head(model, head: Head) -> tuple[int, list[tuple[int, tuple | None]]]:
    """(the subgraph, and per head output (its tensor, the permutation back to the source's layout or None)).

    An output is found by its signature or tensor name (the source's, or the identifier-safe form every TFLite
    path gives it, ``core.names``), else as the only unclaimed output of its shape, else of its transposed shape:
    onnx2tf may write a 3-D output channels-last."""
    from deploykit.core.names import feature_name

    subgraph, named = _outputs(model)
    if set(TFLITE_OUTPUTS) <= set(named):
        raise UsageError("--detector: the artifact's outputs are detections already (its post-process is appended)")
    graph = model.subgraphs[subgraph]
    shapes = {index: tuple(int(d) for d in graph.tensors[index].shape) for index in named.values()}
    claimed: set[int] = set()
    found = []
    for name, shape in zip(head.outputs, source_shapes(head)):
        index = named.get(name, named.get(feature_name(name)))
        if index is not None and index not in claimed:
            order = _order(shape, shapes[index])
            if order is False:
                raise ConversionError(f"--detector: the artifact's output {name!r} is {list(shapes[index])}, the "
                                      f"source's {list(shape)}", hint="the converter reshaped the head; report it")
        else:
            index, order = _by_shape(shape, shapes, claimed, name)
        claimed.add(index)
        found.append((index, order))
    for (index, _), name in zip(found, head.outputs):
        tensor = graph.tensors[index]
        if tensor.type != TENSOR_FLOAT32:
            raise UsageError(f"--detector: the artifact's output {name!r} is not float32 (an --int8-io variant?); "
                             "the post-process takes float outputs",
                             hint="convert the detector without --int8-io (int8 with float outputs works)")
    return subgraph, found


def _outputs(model) -> tuple[int, dict[str, int]]:
    """(the subgraph apps call, its outputs by signature name and by tensor name)."""
    signatures = model.signatureDefs or []
    signature = next((s for s in signatures if _text(s.signatureKey) == "serving_default"), None)
    signature = signature or (signatures[0] if signatures else None)
    subgraph = signature.subgraphIndex if signature is not None else 0
    graph = model.subgraphs[subgraph]
    named = {_text(graph.tensors[i].name): int(i) for i in graph.outputs}
    if signature is not None:
        named.update({_text(entry.name): int(entry.tensorIndex) for entry in signature.outputs or []})
    return subgraph, named


def _order(source: tuple, artifact: tuple):
    if source == artifact:
        return None
    if len(source) == 3 and tuple(source[i] for i in TRANSPOSED) == artifact:
        return TRANSPOSED
    return False


def _by_shape(shape: tuple, shapes: dict[int, tuple], claimed: set[int], name: str):
    for order in (None, TRANSPOSED):
        fits = [i for i, s in shapes.items() if i not in claimed and _order(shape, s) == order]
        if len(fits) == 1:
            return fits[0], order
        if len(fits) > 1:
            break
    listed = ", ".join(f"{list(s)}" for s in shapes.values())
    raise ConversionError(f"--detector: cannot tell which output of the artifact is the source's {name!r} "
                          f"{list(shape)}; its outputs are {listed}",
                          hint="the converter renamed or reshaped the head's outputs; report it")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _postprocess_model(head: Head, options: DetectorOptions, shapes, orders) -> bytes:
    """The post-process as a .tflite of its own: inputs ``head_0``.. in the artifact's layout, the four outputs."""
    from deploykit.core.noise import capture_output

    failure = None
    with capture_output() as captured:  # TensorFlow's import and converter log to fds 1 and 2
        try:
            converted = _convert(head, options, shapes, orders)
        except Exception as exc:  # noqa: BLE001  (TFLiteConverter raises ConverterError, ValueError ...)
            failure = exc
    if failure is not None:
        first = (str(failure).strip().splitlines() or [type(failure).__name__])[0][:300]
        raise ConversionError(f"--detector {head.preset}: the post-process did not convert to TFLite builtins: {first}",
                              hint=captured.text.strip()[-500:] or None) from failure
    return converted


def _convert(head: Head, options: DetectorOptions, shapes, orders) -> bytes:
    import tensorflow as tf

    from deploykit.detection.tf_decode import detections

    specs = [tf.TensorSpec([int(d) for d in shape], tf.float32, name=f"head_{k}") for k, shape in enumerate(shapes)]

    def postprocess(*raw):
        return detections(head, options, [tf.transpose(x, order) if order else x for x, order in zip(raw, orders)])

    function = tf.function(postprocess, input_signature=specs)
    holder = tf.Module()  # with a trackable object the converter writes a signature: inputs and outputs by name
    holder.postprocess = function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Select-TF ops: stock LiteRT
    return converter.convert()


def _signature(model) -> tuple[dict[str, int], dict[str, int]]:
    signature = model.signatureDefs[0]
    return ({_text(e.name): int(e.tensorIndex) for e in signature.inputs},
            {_text(e.name): int(e.tensorIndex) for e in signature.outputs})


def _drop_stale_descriptions(model) -> None:
    """Metadata that describes the raw outputs (TFLite Support's ``TFLITE_METADATA``, deploykit's io entry) would
    now be wrong: MetadataExtractor refuses a model whose output count differs from its metadata's. They are
    removed; ``targets.tflite`` writes them again for the four outputs (with the labels)."""
    from deploykit.formats.tflite.metadata import DEPLOYKIT_NAME, METADATA_NAME

    stale = {METADATA_NAME.decode(), DEPLOYKIT_NAME.decode()}
    for entry in model.metadata or []:
        if _text(entry.name) in stale:
            model.buffers[entry.buffer].data = None
    model.metadata = [entry for entry in model.metadata or [] if _text(entry.name) not in stale] or None
