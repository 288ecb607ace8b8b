"""Keras sources: ``.keras`` (always ``safe_mode=True``), SavedModel directories, and legacy ``.h5`` on opt-in.

Decision: there is no way to turn safe mode off. A ``.keras`` file that needs it (Lambda layers with
Python bytecode) must be rebuilt without them; an ``.h5`` file ignores safe mode entirely, so it is
refused unless the user says, with ``--allow-h5``, that they trust it.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError, UnsafeInputError
from deploykit.core.hashing import sha256_path
from deploykit.core.types import SourceModel, TensorSpec
from deploykit.loaders.shapes import resolve_inputs


def load(path: str, fmt: str, given: dict, *, allow_h5: bool = False) -> SourceModel:
    if fmt == "savedmodel":
        return _load_saved_model(path, given)
    model = load_keras_model(path, fmt, allow_h5=allow_h5)
    declared = [TensorSpec(_tensor_name(t), tuple(t.shape), _dtype(t)) for t in model.inputs]
    inputs = resolve_inputs(declared, given, framework="keras")
    names = _output_names(model)
    outputs = tuple(
        TensorSpec(n, tuple(t.shape), _dtype(t), "NHWC" if len(t.shape) == 4 else None) for n, t in zip(names, model.outputs)
    )
    return SourceModel("keras", fmt, path, sha256_path(path), _stem(path), inputs, outputs, handle=model)


def load_keras_model(path: str, fmt: str, *, allow_h5: bool = False):
    """The keras.Model in a .keras or .h5 file, with the same safety rules as ``load``."""
    if fmt == "h5" and not allow_h5:
        raise UnsafeInputError(
            f"{path} is a legacy HDF5 (.h5) Keras file; Keras ignores safe_mode for it, so loading it can run code",
            hint="re-save it as .keras with model.save('model.keras'), or pass --allow-h5 if you trust the file",
        )
    return _load_keras_model(path, fmt)


def _load_keras_model(path: str, fmt: str):
    import keras

    try:
        if fmt == "h5":
            return keras.saving.load_model(path, compile=False)
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "arbitrary code" in text:
            raise UnsafeInputError(
                f"{path} contains a layer that can run arbitrary Python (e.g. a Lambda layer); deploykit loads "
                "Keras files with safe_mode=True",
                hint="replace Lambda layers with built-in or registered custom layers and save again",
            ) from exc
        raise InputError(f"cannot load Keras model {path}: {_first_line(text)}") from exc
    except TypeError as exc:
        raise InputError(
            f"cannot load Keras model {path}: {_first_line(str(exc))}",
            hint="custom layers must be registered with @keras.saving.register_keras_serializable in an importable module",
        ) from exc
    except (OSError, KeyError, AttributeError) as exc:
        raise InputError(f"cannot read Keras model {path}: {_first_line(str(exc))}") from exc
    except Exception as exc:  # a damaged file fails anywhere in Keras' deserializer (IndexError, zipfile, h5py, ...)
        raise InputError(f"cannot read Keras model {path}: {type(exc).__name__}: {_first_line(str(exc))}") from exc


def _load_saved_model(path: str, given: dict) -> SourceModel:
    """SavedModels hold TensorFlow graphs, not Python code; the ``serving_default`` signature defines the I/O."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:
        raise InputError(f"cannot load SavedModel {path}: {_first_line(str(exc))}") from exc
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise InputError(f"SavedModel {path} has no 'serving_default' signature",
                         hint="export it with model.export(path) (Keras 3) or tf.saved_model.save(..., signatures=...)")
    _, kwargs = signature.structured_input_signature
    declared = [TensorSpec(name, tuple(spec.shape.as_list()), spec.dtype.name) for name, spec in sorted(kwargs.items())]
    inputs = resolve_inputs(declared, given, framework="keras")
    outputs = tuple(
        TensorSpec(name, tuple(spec.shape.as_list()), spec.dtype.name, "NHWC" if spec.shape.rank == 4 else None)
        for name, spec in sorted(signature.structured_outputs.items())
    )
    handle = {"path": path, "loaded": loaded, "signature": signature}
    return SourceModel("keras", "savedmodel", path, sha256_path(path), _stem(path), inputs, outputs, handle=handle)


def _tensor_name(tensor) -> str:
    return getattr(tensor, "name", None) or "input"


def _dtype(tensor) -> str:
    dtype = getattr(tensor, "dtype", "float32")
    return getattr(dtype, "name", None) or str(dtype)


def _output_names(model) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return names


def _stem(path: str) -> str:
    name = Path(path.rstrip("/")).name
    return name.split(".")[0] or "model"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0][:300]
