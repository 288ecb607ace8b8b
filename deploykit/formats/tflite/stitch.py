"""Append one .tflite graph after another: the second one's inputs fed by tensors of the first, its outputs
becoming the model's.

Both are ``ModelT`` objects (``flatbuffer.read_model``); the first is edited in place. Its inputs, signature
inputs, metadata entries and weights stay what they were: the tail's tensors, buffers and operator codes are
appended (codes shared when identical), the tail's operators run after the model's, and the signature's outputs
become the tail's. Operators that no longer lead to an output are dropped, with the tensors and weights only
they used, so a raw output the tail does not read costs nothing at run time.
"""

from __future__ import annotations

from deploykit.formats import litert_facade

RUNTIME_VERSION = "min_runtime_version"  # the converter's metadata entry: a NUL-padded version string


def append_graph(model, tail, feeds: dict[int, int], outputs: list[tuple[str, int]], subgraph: int = 0) -> None:
    """Run ``tail``'s only subgraph after ``model``'s subgraph ``subgraph``.

    ``feeds``: tail input tensor -> the model tensor that feeds it (same shape and type). ``outputs``:
    (name, tail tensor) of the model's new outputs, in order; the name becomes the tensor's and the signature's."""
    graph = model.subgraphs[subgraph]
    if len(tail.subgraphs) != 1:
        raise ValueError(f"the appended graph has {len(tail.subgraphs)} subgraphs; one was expected")
    part = tail.subgraphs[0]
    if sorted(feeds) != sorted(_ints(part.inputs)):
        raise ValueError("every input of the appended graph must be fed, and only those")
    for inner, outer in feeds.items():
        mine, theirs = part.tensors[inner], graph.tensors[outer]
        if list(mine.shape) != list(theirs.shape) or mine.type != theirs.type:
            raise ValueError(f"tensor {_name(theirs)} {list(theirs.shape)} cannot feed {_name(mine)} {list(mine.shape)}")
    buffers = _append_buffers(model, tail)
    tensors = dict(feeds)
    for index, tensor in enumerate(part.tensors):
        if index not in tensors:
            tensor.buffer = buffers.get(tensor.buffer, 0)
            tensors[index] = len(graph.tensors)
            graph.tensors.append(tensor)
    codes = _append_codes(model, tail)
    for op in part.operators or []:
        op.opcodeIndex = codes[op.opcodeIndex]
        op.inputs = [tensors[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [tensors[i] for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [tensors[i] for i in op.intermediates]
        graph.operators.append(op)
    graph.outputs = [tensors[index] for _, index in outputs]
    for name, index in outputs:
        graph.tensors[tensors[index]].name = name
    _prune(model, subgraph)
    _set_signature_outputs(model, subgraph, [(name, graph.outputs[k]) for k, (name, _) in enumerate(outputs)])
    _merge_runtime_version(model, tail)


def _ints(vector) -> list[int]:
    """An index vector of the object API (a numpy array, a list or None) as a list: ``vector or []`` would be
    wrong, a one-element array of 0 being false."""
    return [] if vector is None else [int(i) for i in vector]


def _name(tensor) -> str:
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _append_buffers(model, tail) -> dict[int, int]:
    """Tail buffer -> model buffer. Empty ones all map to 0, the schema's "no data" buffer."""
    mapping = {}
    for index, buffer in enumerate(tail.buffers or []):
        if buffer.data is not None and len(buffer.data):
            mapping[index] = len(model.buffers)
            model.buffers.append(buffer)
    return mapping


def _append_codes(model, tail) -> list[int]:
    def key(code):
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return code.builtinCode, code.deprecatedBuiltinCode, custom, code.version

    known = {key(code): index for index, code in enumerate(model.operatorCodes)}
    mapping = []
    for code in tail.operatorCodes or []:
        if key(code) not in known:
            known[key(code)] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        mapping.append(known[key(code)])
    return mapping


def _prune(model, subgraph: int) -> None:
    """Drop the operators of ``subgraph`` whose results reach no output, then the tensors nothing refers to and
    the weights of those tensors (the buffer entries stay, emptied, so other indices do not move)."""
    graph = model.subgraphs[subgraph]
    needed = set(graph.outputs)
    kept = []
    for op in reversed(graph.operators):
        if needed.intersection(op.outputs):
            kept.append(op)
            needed.update(i for i in _ints(op.inputs) + _ints(op.intermediates) if i >= 0)
    graph.operators = kept[::-1]
    used = sorted(needed | set(graph.inputs) | {i for op in graph.operators for i in op.outputs})
    renumber = {old: new for new, old in enumerate(used)}
    dropped = [t for index, t in enumerate(graph.tensors) if index not in renumber]
    graph.tensors = [graph.tensors[index] for index in used]
    graph.inputs = [renumber[i] for i in graph.inputs]
    graph.outputs = [renumber[i] for i in graph.outputs]
    for op in graph.operators:
        op.inputs = [renumber[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [renumber[i] for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [renumber[i] for i in op.intermediates]
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == subgraph:
            signature.inputs = [_moved(entry, renumber) for entry in signature.inputs or []]
    live = {t.buffer for g in model.subgraphs for t in g.tensors}
    live.update(entry.buffer for entry in model.metadata or [])
    live.update(_ints(model.metadataBuffer))
    for tensor in dropped:
        if tensor.buffer not in live and 0 < tensor.buffer < len(model.buffers):
            model.buffers[tensor.buffer].data = None


def _moved(entry, renumber: dict[int, int]):
    entry.tensorIndex = renumber[entry.tensorIndex]
    return entry


def _set_signature_outputs(model, subgraph: int, outputs: list[tuple[str, int]]) -> None:
    """The signature's outputs become ``outputs`` (name, tensor); a model without a signature gets one, its
    inputs named after their tensors, since apps call a model by signature names."""
    schema = litert_facade.schema()

    def entry(name: str, index: int):
        mapped = schema.TensorMapT()
        mapped.name, mapped.tensorIndex = name, index
        return mapped

    signatures = [s for s in model.signatureDefs or [] if s.subgraphIndex == subgraph]
    if not signatures:
        from deploykit.core.names import feature_names

        graph = model.subgraphs[subgraph]
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = "serving_default", subgraph
        names = feature_names([_name(graph.tensors[i]) for i in graph.inputs])
        signature.inputs = [entry(name, i) for name, i in zip(names, graph.inputs)]
        model.signatureDefs = list(model.signatureDefs or []) + [signature]
        signatures = [signature]
    for signature in signatures:
        signature.outputs = [entry(name, index) for name, index in outputs]


def _merge_runtime_version(model, tail) -> None:
    """The model's ``min_runtime_version`` raised to the tail's when the tail's ops need a newer runtime."""
    mine, theirs = _runtime_entry(model), _runtime_entry(tail)
    if mine is None or theirs is None:
        return
    buffer, version = mine
    if _version_key(theirs[1]) > _version_key(version):
        width = max(len(bytes(buffer.data)), len(theirs[1]) + 1)
        buffer.data = theirs[1].encode("ascii").ljust(width, b"\0")


def _runtime_entry(model):
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == RUNTIME_VERSION and model.buffers[entry.buffer].data is not None:
            buffer = model.buffers[entry.buffer]
            return buffer, bytes(buffer.data).split(b"\0", 1)[0].decode("ascii", "replace")
    return None


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
