"""Where an NCNN model's two files sit: deploykit writes a folder ``NAME.VARIANT.ncnn/`` holding
``model.ncnn.param`` and ``model.ncnn.bin`` (a directory artifact, hashed and moved like an ``.mlpackage``);
a bare ``something.param`` with its ``something.bin`` beside it is read too."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError

PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"


def files(path: str | Path) -> tuple[Path, Path]:
    """(the .param, the .bin) of an NCNN artifact given as its folder or its .param file."""
    path = Path(path)
    if path.is_dir():
        params = [path / PARAM] if (path / PARAM).is_file() else sorted(path.glob("*.param"))
        if len(params) != 1:
            raise InputError(f"{path} holds {len(params)} .param files; an NCNN artifact folder holds one",
                             hint=f"deploykit writes {PARAM} and {BIN}")
        param = params[0]
    else:
        param = path
    if param.suffix != ".param":
        raise InputError(f"{path} is not an NCNN .param file or artifact folder")
    weights = param.with_suffix(".bin")
    for needed in (param, weights):
        if not needed.is_file():
            raise InputError(f"NCNN artifact incomplete: {needed} not found", hint="an NCNN model is a .param and a .bin of the same name")
    return param, weights
