"""Select-TF (Flex) ops in a .tflite file: find them, and refuse an artifact that needs them.

A TFLite converter falls back to a TensorFlow kernel when no builtin op expresses a TF op (onnx2tf's
Erf, some Transposes of rank > 6, ...). The flatbuffer then holds a custom operator code named
``Flex<TF op>``, which only runs when the app links the Select-TF ops library (about 6 MB on
Android, ``org.tensorflow:tensorflow-lite-select-tf-ops``); stock LiteRT refuses the model at
``allocate_tensors``. Every TFLite path checks its candidate with :func:`refuse_flex`, so the user
learns it at conversion time, not in the app.

The operator codes are read straight from the flatbuffer (no interpreter, no TensorFlow).
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import UnsupportedOperatorError
from deploykit.formats import litert_facade

FLEX_PREFIX = b"Flex"
SELECT_TF_LIBRARY = "the Select-TF ops library (Android: org.tensorflow:tensorflow-lite-select-tf-ops)"


def flex_ops(path: str | Path) -> list[str]:
    """The sorted names of the Flex (Select-TF) custom ops the model at ``path`` uses, e.g. ``["FlexErf"]``."""
    return flex_ops_in(Path(path).read_bytes())


def flex_ops_in(data: bytes) -> list[str]:
    schema = litert_facade.schema()

    model = schema.Model.GetRootAs(bytearray(data), 0)
    found = set()
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        custom = code.CustomCode()
        if builtin == schema.BuiltinOperator.CUSTOM and custom and custom.startswith(FLEX_PREFIX):
            found.add(custom.decode("utf-8", "replace"))
    return sorted(found)


def refuse_flex(path: str | Path, allow: bool, label: str, tried: str = "") -> list[str]:
    """Raise UnsupportedOperatorError when the model at ``path`` needs Flex ops, unless ``allow``
    (``--allow-flex``). Returns the Flex ops found (empty for a builtin-only model).

    ``label`` names the converter that wrote the file; ``tried`` says what deploykit already did to
    avoid them (one phrase, e.g. "onnx2tf's pseudo-op replacement of Erf and GeLU")."""
    ops = flex_ops(path)
    if ops and not allow:
        raise flex_error(ops, label, tried)
    return ops


def flex_error(ops: list[str], label: str, tried: str = "") -> UnsupportedOperatorError:
    tried_text = f"; deploykit tried {tried}" if tried else ""
    return UnsupportedOperatorError(
        f"{label} wrote Select-TF op(s) {', '.join(ops)}: stock LiteRT cannot run {_them(ops)}{tried_text}; "
        f"pass --allow-flex to write it anyway (the app then needs {SELECT_TF_LIBRARY})",
        hint="or replace the operator in the source model, or convert to coreml only",
    )


def _them(ops: list[str]) -> str:
    return ops[0] if len(ops) == 1 else "them"
