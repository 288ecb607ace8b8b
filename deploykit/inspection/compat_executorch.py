"""An ExecuTorch program's accelerator compatibility: what its delegate runs and what it leaves to the portable
kernels, read from the ``.pte`` itself (``executorch_graph.split``).

Supported: the nodes inside the delegates, counted after the backend's own fusions where the payload decodes
(XNNPACK node by node, a Core ML delegate's ML Program op by op). Refused: the program's kernel calls, which run
in ExecuTorch's portable CPU kernels. ``convert`` also has the export's own count of the Edge program's ATen ops
before lowering (``converters.executorch_record.PteRecord``); it is added as a note, since those ops are not what
the file runs.
"""

from __future__ import annotations

from pathlib import Path

# Backend ids as the program names its delegates -> what a reader calls them
TITLES = {"XnnpackBackend": "XNNPACK delegate", "CoreMLBackend": "Core ML delegate"}
PORTABLE = "not delegated: runs in ExecuTorch's portable CPU kernels"


def compatibility(path: Path, record=None) -> dict:
    """The record's ``compatibility`` block of a .pte; ``record``: the export's ``PteRecord`` when there is one."""
    from deploykit.formats.executorch_facade import version
    from deploykit.inspection.executorch_graph import split

    found = split(Path(path))
    backends = list(dict.fromkeys(d.backend for d in found.delegates))
    title = " + ".join(TITLES.get(b, f"{b} delegate") for b in backends) or "no delegate (portable kernels only)"
    delegated = found.delegated_nodes
    portable = found.portable_calls
    entry = {
        "name": "delegate",
        "title": title,
        "ops": delegated + portable if delegated is not None else None,
        "supported": delegated,
        "refused": [{"op": op, "count": n, "reason": PORTABLE} for op, n in sorted(found.kernel_calls.items())],
        "delegate_calls": dict(found.delegate_calls),
    }
    fused = ("the delegate's ops are its own nodes after its fusions (XNNPACK folds batch norms and fuses "
             "activations), so they are fewer than the PyTorch ops they replace")
    notes = [fused] if delegated else []
    if delegated is None:
        unread = ", ".join(d.backend for d in found.delegates if d.nodes is None)
        entry["unavailable"] = f"the payload of {unread} could not be decoded here, so its ops are not counted"
        notes.append(entry["unavailable"])
    if record is not None:
        notes.append(f"the export's partitioner delegated {record.ops_delegated} of {record.ops_total} Edge (ATen) ops "
                     f"and left {record.ops_portable} to the portable kernels")
    return {"static": False, "checked_with": f"the .pte's delegate calls and kernel calls (executorch {version()})",
            "accelerators": [entry], "notes": notes}
