"""Find the first layer where source and artifact diverge, from the intermediate tensors both expose.

1. Both runners trace one sample (the failing output's worst one): every intermediate tensor of the
   source (Keras layers, PyTorch graph nodes, ONNX node outputs) and of the artifact (TFLite's
   preserved tensors, the Core ML evaluator's op results).
2. Each source tensor is paired with an artifact tensor: by name where the artifact keeps the
   source's names (Keras layer names in TFLite / Core ML tensor names, PyTorch module paths in
   litert-torch names), otherwise by shape (allowing NCHW <-> NHWC and dropped unit axes) and value:
   the candidate with the smallest error, ties to the nearest graph position. A source tensor
   with no candidate of a compatible shape is not observable and is skipped.
3. A source tensor agrees when its error is within the profile's ``localize_rel_error`` of its peak.
   Converters fuse layers (conv + batch norm + activation become one op), so a tensor can
   disagree only because the artifact never materializes it. The culprit is therefore the first
   disagreeing tensor, in execution order, none of whose observable descendants agree again:
   where the error starts and never goes away.
"""

from __future__ import annotations

import re

import numpy as np

from deploykit.parity import metrics as M
from deploykit.parity.compare import Localization
from deploykit.parity.layout import channel_orders

PROBE = 4096  # elements compared first, to reject a candidate without touching the whole tensor


def localize(source_trace, artifact_trace, tolerance: float, sample: int = 0) -> Localization:
    if not source_trace or not artifact_trace:
        side = "source" if not source_trace else "artifact"
        return Localization("unavailable", f"the {side} exposed no intermediate tensors", sample=sample)
    by_size: dict[int, list[int]] = {}
    for j, rec in enumerate(artifact_trace):
        by_size.setdefault(rec.value.size, []).append(j)
    texts = [_artifact_text(r) for r in artifact_trace]
    matches = []  # per source record: (error, artifact index) or None if unobservable
    for i, rec in enumerate(source_trace):
        position = i / max(1, len(source_trace) - 1)
        candidates = [j for j in by_size.get(rec.value.size, []) if _compatible(rec.value.shape, artifact_trace[j].value.shape)]
        if not candidates:
            matches.append(None)
            continue
        key = _source_key(rec)
        named = [j for j in candidates if _named(key, texts[j])]
        best = _best(rec.value, named, artifact_trace, position, tolerance) if named else None
        if best is None or best[0] > tolerance:  # a name can mislead (fused ops): fall back to values
            other = _best(rec.value, candidates, artifact_trace, position, tolerance)
            best = other if best is None or other[0] < best[0] else best
        matches.append(best[:2])
    agrees = [m is not None and m[0] <= tolerance for m in matches]
    descendants = _descendants(source_trace)
    observable = [m is not None for m in matches]
    compared = sum(observable)
    # "fused": it disagrees, but a tensor computed from it agrees again, so the artifact never materialized it
    layers = tuple({"index": i, "source": rec.scope, "max_rel_error": float(m[0]),
                    "fused": not agrees[i] and any(agrees[d] for d in descendants[i] if observable[d])}
                   for i, (rec, m) in enumerate(zip(source_trace, matches)) if m is not None)
    for i, rec in enumerate(source_trace):
        if not observable[i] or agrees[i]:
            continue
        if any(agrees[d] for d in descendants[i] if observable[d]):
            continue  # fused away in the artifact, not a divergence
        last = _last_agreeing(i, source_trace, artifact_trace, matches, agrees)
        culprit = _culprit(rec, artifact_trace, matches[i])
        culprit.update(_artifact_op_after(last, artifact_trace))
        return Localization("found", _message(rec, matches[i][0], last, culprit), culprit=culprit, last_agreeing=last,
                            compared=compared, sample=sample, tolerance=tolerance, layers=layers, culprit_index=i)
    return Localization("not-found", "every intermediate tensor both sides expose agrees within "
                        f"{tolerance:g} of its peak; the divergence is in the final ops or in tensors only one "
                        "side exposes", compared=compared, sample=sample, tolerance=tolerance, layers=layers)


def _best(value, candidates, artifact_trace, position, tolerance):
    """(error, index, distance) of the candidate closest in value, ties to the nearest graph position."""
    best = None
    last = max(1, len(artifact_trace) - 1)
    for j in candidates:
        error = _rel_error(value, artifact_trace[j].value, tolerance if best is None else min(best[0], tolerance))
        distance = abs(j / last - position)
        if best is None or (error, distance) < (best[0], best[2]):
            best = (error, j, distance)
    return best


def _compatible(a: tuple, b: tuple) -> bool:
    if a == b:
        return True
    squeeze_a, squeeze_b = tuple(d for d in a if d != 1), tuple(d for d in b if d != 1)
    if squeeze_a == squeeze_b:
        return True
    return any(tuple(a[k] for k in order) == b for order in channel_orders(len(a))) if len(a) == len(b) else False


def _views(a: np.ndarray, b: np.ndarray):
    """``b`` arranged like ``a`` in every way the shapes allow."""
    if a.shape == b.shape:
        yield b
    if a.ndim == b.ndim:
        for order in channel_orders(a.ndim):
            if tuple(a.shape[k] for k in order) == b.shape:
                yield b.transpose(np.argsort(order))
    if tuple(d for d in a.shape if d != 1) == tuple(d for d in b.shape if d != 1):
        yield b.reshape(a.shape)


def _rel_error(a: np.ndarray, b: np.ndarray, cutoff: float) -> float:
    """max |a - b| / max |a| over the best arrangement of ``b``; a cheap probe rejects hopeless pairs."""
    scale = M.output_scale(a) or 1.0
    best = np.inf
    rng = np.random.default_rng(0)
    for view in _views(a, b.astype(np.float32, copy=False)):
        if a.size > PROBE:
            index = tuple(rng.integers(0, d, PROBE) for d in a.shape)
            probe = float(np.abs(a[index].astype(np.float64) - view[index]).max()) / scale
            if probe > cutoff:  # a lower bound of the full error is enough to rule the pair out
                best = min(best, probe)
                continue
        best = min(best, M.max_abs_error(a, view) / scale)
    return float(best)


def _descendants(trace) -> list[set[int]]:
    """Indices of every record reachable from each record, from the recorded edges or, when a backend
    gives none, execution order (everything after)."""
    n = len(trace)
    if all(r.inputs is None for r in trace):
        return [set(range(i + 1, n)) for i in range(n)]
    index = {r.name: i for i, r in enumerate(trace)}
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, rec in enumerate(trace):
        for name in rec.inputs or ():
            if name in index:
                consumers[index[name]].append(i)
    result: list[set[int]] = [set() for _ in range(n)]
    for i in range(n - 1, -1, -1):  # records are in execution order, so consumers come later
        for c in consumers[i]:
            result[i].add(c)
            result[i] |= result[c]
    return result


def _ancestors_in_order(i: int, trace) -> list[int]:
    index = {r.name: k for k, r in enumerate(trace)}
    if trace[i].inputs is None:
        return list(range(i))
    seen, stack = set(), [i]
    while stack:
        for name in trace[stack.pop()].inputs or ():
            k = index.get(name)
            if k is not None and k not in seen:
                seen.add(k)
                stack.append(k)
    return sorted(seen)


def _last_agreeing(i, source_trace, artifact_trace, matches, agrees):
    for k in reversed(_ancestors_in_order(i, source_trace)):
        if agrees[k]:
            art = artifact_trace[matches[k][1]]
            return {"source": source_trace[k].scope, "source_tensor": source_trace[k].name,
                    "artifact": art.scope, "artifact_tensor": art.name, "artifact_op": art.op, "max_rel_error": matches[k][0]}
    return None


def _artifact_op_after(last, artifact_trace) -> dict:
    """The artifact op that reads the last agreeing tensor (by the artifact's edges, else the next op run):
    the artifact-side place where the divergence starts."""
    if last is None:
        return {}
    index = next((j for j, r in enumerate(artifact_trace) if r.name == last["artifact_tensor"]), None)
    if index is None:
        return {}
    readers = [r for r in artifact_trace[index + 1:] if r.inputs and last["artifact_tensor"] in r.inputs]
    after = readers[0] if readers else (artifact_trace[index + 1] if index + 1 < len(artifact_trace) else None)
    return {} if after is None else {"artifact_op": after.op, "artifact_tensor": after.scope}


def _culprit(rec, artifact_trace, match) -> dict:
    art = artifact_trace[match[1]]
    scale = M.output_scale(rec.value) or 1.0
    b = min(_views(rec.value, art.value.astype(np.float32)), key=lambda v: M.max_abs_error(rec.value, v))
    return {
        "source": rec.scope, "source_tensor": rec.name, "op": rec.op, "shape": list(rec.value.shape),
        "closest_artifact_tensor": art.scope, "closest_artifact_op": art.op,
        "metrics": {"max_rel_error": M.max_abs_error(rec.value, b) / scale, "max_abs_error": M.max_abs_error(rec.value, b),
                    "cosine_similarity": M.cosine_similarity(rec.value, b), "snr_db": M.snr_db(rec.value, b)},
    }


def _message(rec, error: float, last, culprit) -> str:
    text = f"first divergence at {rec.scope}, max error {error:.0%} of the tensor's peak"
    if last:
        text += f"; its inputs still agree at {last['source']}"
    if "artifact_op" in culprit:
        text += f"; in the artifact: {culprit['artifact_op']} {culprit['artifact_tensor']!r}"
    return text


def _source_key(rec) -> str | None:
    """The layer / module name a source tensor belongs to: a Keras layer name, a PyTorch module path
    ("features.3.0"), the module path of an ONNX node ("/features/features.3.0/Conv" -> "features.3.0")."""
    head = rec.scope.split(" (")[0]
    parts = [p for p in head.split("/") if p]
    if len(parts) > 1:
        parts = parts[:-1]
    key = parts[-1].lower() if parts else ""
    return key if len(key) >= 3 else None


_TORCH_SEGMENT = re.compile(r"^[\w.]*\.([A-Za-z0-9]+)_(.+)$")


def _artifact_text(rec) -> str:
    """What an artifact tensor's name says, lowercased: the name of its last fused op (before ';'), plus
    the module path litert-torch spells as "torch.nn.modules.container.Sequential_features/..." ."""
    first = (rec.scope or rec.name).split(";")[0]
    path = [m.group(2) for m in map(_TORCH_SEGMENT.match, first.split("/")) if m]
    return (first + (" " + ".".join(path) if path else "")).lower()


def _named(key: str | None, text: str) -> bool:
    return bool(key) and re.search(rf"(?<![0-9a-z]){re.escape(key)}(?![0-9a-z])", text) is not None
