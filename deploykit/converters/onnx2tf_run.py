"""Run onnx2tf once per workspace, offline, and keep its SavedModel and TFLite file for the ONNX paths.

Two traps handled here (see the stack notes): onnx2tf downloads a sample image file unless
``calibration_image_sample_data_20x128x128x3_float32.npy`` is in the working directory, so a
generated one is put there; and it shells out to ``onnxsim``, which must be on PATH.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from deploykit.errors import ConversionError, UnsupportedOperatorError

CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def private_copy(source, workspace) -> Path:
    """The source ONNX model written into the workspace: onnx2tf runs onnxsim, which rewrites the file
    it is given in place, and a user's model must never be modified."""
    import onnx

    key = ("onnx-copy", source.path)
    if key not in workspace.products:
        # One folder per source model: a graph pass (fold_batchnorm) can hand the paths a second model.
        copies = sum(1 for k in workspace.products if isinstance(k, tuple) and k[0] == "onnx-copy")
        path = workspace.root / ("source" if not copies else f"source-{copies}") / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        large = source.handle.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit
        onnx.save_model(source.handle, str(path), save_as_external_data=large, location="model.onnx.data")
        workspace.products[key] = path
    return workspace.products[key]


def onnx2tf_output(onnx_path: str, inputs, workspace) -> Path:
    """The onnx2tf output folder (SavedModel + ``<stem>_float32.tflite``) for ``onnx_path``, made once."""
    key = ("onnx2tf", str(onnx_path))
    if key not in workspace.products:
        workspace.products[key] = _run(onnx_path, inputs, workspace.root / f"onnx2tf-{len(workspace.products)}")
    return workspace.products[key]


def _run(onnx_path: str, inputs, folder: Path) -> Path:
    import numpy as np

    onnx_path = Path(onnx_path).resolve()  # before the working directory changes
    folder = folder.resolve()
    folder.mkdir(parents=True)
    np.save(folder / CALIBRATION_FILE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    shapes = [f"{t.name}:{','.join(map(str, t.shape))}" for t in inputs]
    with _working_directory(folder), _venv_on_path():
        legacy = os.environ.get("TF_USE_LEGACY_KERAS")
        import onnx2tf

        # Importing onnx2tf sets TF_USE_LEGACY_KERAS=1 for the whole process, and every child process
        # (deploykit bench, a test's CLI run) inherits it: there tf.keras is tf_keras, and coremltools
        # then refuses Keras 3 models. Put the variable back once onnx2tf has it loaded.
        if legacy is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = legacy

        try:
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(folder / "out"),
                overwrite_input_shape=shapes,
                output_signaturedefs=True,
                non_verbose=True,
            )
        except SystemExit as exc:  # onnx2tf calls sys.exit on some unsupported graphs
            raise UnsupportedOperatorError(
                f"onnx2tf stopped on this graph (exit {exc.code})", hint="rerun with --verbose to see which operator"
            ) from exc
        except NotImplementedError as exc:
            raise UnsupportedOperatorError(f"onnx2tf: {str(exc).splitlines()[0][:300]}") from exc
        except Exception as exc:
            raise ConversionError(f"onnx2tf failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}",
                                  hint="rerun with --verbose to see onnx2tf's log") from exc
    out = folder / "out"
    if not (out / "saved_model.pb").is_file():
        raise ConversionError("onnx2tf finished without writing a SavedModel", hint="rerun with --verbose to see its log")
    return out


def float32_tflite(folder: Path) -> Path:
    found = sorted(folder.glob("*_float32.tflite"))
    if not found:
        raise ConversionError("onnx2tf wrote no float32 .tflite file", hint="rerun with --verbose to see its log")
    return found[0]


@contextlib.contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _venv_on_path():
    bin_dir = str(Path(sys.executable).parent)
    previous = os.environ.get("PATH", "")
    os.environ["PATH"] = bin_dir + os.pathsep + previous
    try:
        yield
    finally:
        os.environ["PATH"] = previous


def named_tflite(folder: Path, source) -> bytes:
    """onnx2tf's float32 .tflite with a signature carrying the ONNX input and output names.

    onnx2tf names outputs ``Identity``/``Identity_1`` and may reorder them; each TFLite tensor is
    paired with the source tensor of the same name, else the one whose shape matches (allowing the
    NCHW -> NHWC change), else by position.
    """
    from deploykit.converters.tflite_inspect import open_interpreter
    from deploykit.tflite_flatbuffer import set_signature

    path = float32_tflite(folder)
    interpreter = open_interpreter(str(path))
    inputs = [d["name"] for d in interpreter.get_input_details()]
    outputs = [(d["name"], tuple(int(x) for x in d["shape"])) for d in interpreter.get_output_details()]
    input_names = _pair_names([(n, None) for n in inputs], source.inputs)
    output_names = _pair_names(outputs, source.outputs)
    return set_signature(path.read_bytes(), input_names, output_names)


def _pair_names(tensors, specs) -> list[str]:
    from deploykit.layouts import NCHW_TO_NHWC, permute

    remaining = list(specs)
    names = []
    for position, (name, shape) in enumerate(tensors):
        match = next((s for s in remaining if s.name == name.split(":")[0]), None)
        if match is None and shape is not None:
            fits = [s for s in remaining
                    if tuple(s.shape) == shape or (len(s.shape) == 4 and permute(s.shape, NCHW_TO_NHWC) == shape)]
            match = fits[0] if len(fits) == 1 else None
        if match is None:
            match = remaining[0] if remaining else None
        names.append(match.name if match else name)
        if match in remaining:
            remaining.remove(match)
    return names
