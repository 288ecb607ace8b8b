"""A .tflite artifact's accelerator compatibility: LiteRT's GPU delegate and XNNPACK.

GPU: LiteRT's model analyzer asked for GPU compatibility (``formats.tflite.analyzer``), its per-op warnings as
the refused ops' reasons. The installed analyzer is first checked to check anything at all (a custom op no
delegate knows must be refused); when it does not (ai-edge-litert 2.3.0), TensorFlow 2.16.2's analyzer, which
setup.sh extracts, gives the verdicts; without it the GPU entry says it was not checked and counts nothing as
supported, rather than repeat a "looks compatible" the installed one prints for every model.

XNNPACK: the interpreter with LiteRT's default delegate applied (``formats.tflite.delegation``): the model's
nodes that no XNNPACK partition took run on LiteRT's builtin kernels. XNNPACK gives no reason per node; the
reason recorded is what was observed, and, for a float op that reads integer weights, why.

The block's shape (``Artifact.compatibility``) is documented in docs/compatibility.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

GPU_TITLE = "LiteRT GPU delegate"
XNNPACK_TITLE = "XNNPACK"
_NOT_TAKEN = "not taken by the XNNPACK delegate (ai-edge-litert {version}): runs on LiteRT's builtin kernels"
_HYBRID = ("integer weights with float activations (a hybrid op), which XNNPACK does not take: runs on LiteRT's "
           "builtin hybrid kernels")
# Ops whose second input is their weights: only these can be hybrid (delegation's test reads any op's second
# input, so a RESIZE or CUMSUM with an int32 size or axis would otherwise be called hybrid too).
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "CONV_3D")


def compatibility(path: Path) -> dict:
    """The record's ``compatibility`` block of a .tflite file (``Artifact.compatibility``)."""
    from deploykit.formats import litert_facade
    from deploykit.formats.tflite import analyzer

    version = litert_facade.version()
    analysis = analyzer.analyze(path)
    checker = analyzer.gpu_analyzer()
    checks = checker is not None
    notes = []
    if checker is not None and checker[1] is not None:  # the installed analyzer checks nothing: an older one does
        analysis = analyzer.analyze_with(checker[1], path)
        notes.append(f"GPU verdicts from {checker[0]} (the GPU delegate's rules of that release), since the "
                     f"analyzer of ai-edge-litert {version} checks no op")
    gpu = gpu_entry(analysis, checks)
    if not checks:
        notes.append(gpu["unavailable"])
    xnnpack = xnnpack_entry(path, version)
    notes.append(f"XNNPACK runs the graph in {xnnpack.pop('partitions')} piece(s); every op outside them runs on "
                 "LiteRT's builtin CPU kernels, with a copy at each border")
    asked = [f"TFLite runtime {analysis.runtime_version}"] if analysis.runtime_version else []
    asked.append("gpu_compatibility" if checks else "gpu_compatibility, which this version does not check per op")
    who = f"LiteRT {version} model analyzer" if checker is None or checker[1] is None else checker[0]
    return {
        "static": False,
        "checked_with": f"{who} ({'; '.join(asked)}) + XNNPACK delegate in ai-edge-litert {version}",
        "accelerators": [gpu, xnnpack],
        "notes": notes,
    }


def gpu_entry(analysis, checks: bool) -> dict:
    """The GPU accelerator's entry from the analyzer's ``Analysis``; ``checks``: whether the analyzer checks ops."""
    ops = len(analysis.ops)
    if not checks:
        return {"name": "gpu", "title": GPU_TITLE, "ops": ops, "supported": None, "refused": [],
                "unavailable": f"not checked: this LiteRT's model analyzer (TFLite runtime "
                               f"{analysis.runtime_version or '?'}) checks no op for the GPU delegate (it passes even "
                               "a custom op no delegate has), so its \"looks compatible\" says nothing here; the "
                               "delegate itself needs a GPU to ask"}
    reasons: Counter = Counter((op.op, op.gpu_warning) for op in analysis.refused)
    refused = [{"op": op, "count": n, "reason": reason} for (op, reason), n in sorted(reasons.items())]
    return {"name": "gpu", "title": GPU_TITLE, "ops": ops, "supported": ops - len(analysis.refused), "refused": refused}


def xnnpack_entry(path: Path, version: str) -> dict:
    """The XNNPACK entry (with ``partitions``, which the caller moves to a note)."""
    from deploykit.core.noise import capture_output
    from deploykit.formats.tflite.delegation import delegation

    with capture_output():  # LiteRT announces its delegate on stderr
        found = delegation(path)
    refused = []
    for op, count in found.outside.items():
        hybrid = min(found.hybrid.get(op, 0), count) if op in _WEIGHTED else 0
        if hybrid:
            refused.append({"op": op, "count": hybrid, "reason": _HYBRID})
        if count - hybrid:
            refused.append({"op": op, "count": count - hybrid, "reason": _NOT_TAKEN.format(version=version)})
    return {"name": "xnnpack", "title": XNNPACK_TITLE, "ops": found.ops, "supported": found.delegated,
            "refused": refused, "partitions": found.partitions}

