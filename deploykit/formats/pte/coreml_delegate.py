"""ExecuTorch's Core ML delegate: its payload is a flattened directory holding a ``model.mlpackage``."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError
from deploykit.formats.executorch_facade import unflatten_directory
from deploykit.formats.pte.program import payload, plan_of, read_pte, split


def extract_coreml_delegate(path: Path, folder: Path) -> Path:
    """Unpack the program's Core ML delegate into ``folder``; the path of its ``model.mlpackage``.

    Only a program that is exactly one Core ML delegate call (no kernel calls around it) gives a
    package that computes what the whole program computes; anything else raises InputError saying why.
    """
    path, folder = Path(path), Path(folder)
    pte = read_pte(path)
    plan = plan_of(pte)
    where = split(path, pte)
    coreml = [d for d in plan.delegates if d.id == "CoreMLBackend"]
    if not coreml:
        raise InputError(f"{path} has no Core ML delegate")
    if len(plan.delegates) != 1 or where.kernel_calls or sum(where.delegate_calls.values()) != 1:
        outside = ", ".join(f"{op} x{n}" for op, n in list(where.kernel_calls.items())[:5])
        around = f"; kernel calls outside it: {outside}" if outside else ""
        raise InputError(f"the Core ML delegate covers only part of {path.name} ({len(plan.delegates)} delegate(s)"
                         f"{around})")
    data = payload(pte, coreml[0])
    if data is None:
        raise InputError(f"{path}: the Core ML delegate's payload is not stored in the file")
    package = unflatten(data, folder)
    if package is None:
        raise InputError(f"{path}: the Core ML delegate's payload holds no model.mlpackage (a compiled .mlmodelc "
                         "cannot be evaluated on Linux)")
    return package


def unflatten(data: bytes, folder: Path) -> Path | None:
    """The ``model.mlpackage`` inside a Core ML delegate's payload, unpacked into ``folder`` (None: none inside)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not unflatten_directory(data, str(folder)):
        raise InputError("the Core ML delegate's payload could not be unpacked")
    found = sorted(folder.rglob("*.mlpackage"))
    return found[0] if found else None
