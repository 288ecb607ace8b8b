"""The one seam to onnx2tf: run it offline and deterministically, in this process or in a bounded child,
and turn its output folder into a .tflite with the ONNX names in the signature.

Traps handled here (see the stack notes and docs/conversion.md): onnx2tf downloads a sample image file
unless ``calibration_image_sample_data_20x128x128x3_float32.npy`` is in the working directory, so a
generated one is put there; it shells out to ``onnxsim``, which must be on PATH; TensorFlow refuses
some exporters' node names as scope names (PaddlePaddle's ``Softmax@0``), so they are rewritten; and
without a parameter-replacement file it answers any conversion error with a search that ran 5 minutes
on a YOLOv8n head, so an empty one is passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from deploykit.core.errors import ConversionError, UnsupportedOperatorError

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
        workspace.products[key] = run_onnx2tf(onnx_path, inputs, workspace.root / f"onnx2tf-{len(workspace.products)}")
    return workspace.products[key]


def run_onnx2tf(onnx_path: str | Path, inputs, folder: Path, params: dict | None = None) -> Path:
    """One offline, deterministic ``onnx2tf.convert`` of ``onnx_path`` into ``folder/out``, in this
    process, with extra keyword arguments ``params`` (see ``deploykit.converters.onnx2tf_remedies``).

    onnx2tf rewrites the file it is given (its onnxsim step): pass a private copy. It decides layouts
    from dummy inferences; its random generators are reseeded and the Keras session cleared before each
    run, so a second run in the same process makes the same decisions as the first.

    Unless ``params`` names a ``param_replacement_file``, an empty one is passed: without one, onnx2tf
    answers a conversion error with its own exhaustive replacement-JSON search, which tried
    combinations of up to 5 of 80 candidate fixes for 5 minutes on a YOLOv8n head before failing
    anyway (deploykit's ladder has its own, bounded, remedies).

    Errors carry ``detail`` (onnx2tf's full exception text) and ``onnx_op_name`` (the ONNX node it
    stopped at, or None) for the remedies that read them.
    """
    import random

    import numpy as np

    onnx_path = Path(onnx_path).resolve()  # before the working directory changes
    folder = Path(folder).resolve()
    folder.mkdir(parents=True)
    sanitize_node_names(onnx_path)
    np.save(folder / CALIBRATION_FILE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    params = dict(params or {})
    if not params.get("param_replacement_file"):
        (folder / NO_REPLACEMENTS).write_text(json.dumps({"format_version": 1, "operations": []}))
        params["param_replacement_file"] = str(folder / NO_REPLACEMENTS)
    shapes = [f"{t.name}:{','.join(map(str, t.shape))}" for t in inputs]
    with _working_directory(folder), _venv_on_path():
        onnx2tf = _import_onnx2tf()
        import tf_keras

        tf_keras.backend.clear_session()
        random.seed(0)
        np.random.seed(0)
        try:
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(folder / "out"),
                overwrite_input_shape=shapes,
                output_signaturedefs=True,
                non_verbose=True,
                **params,
            )
        except SystemExit as exc:  # onnx2tf calls sys.exit on some unsupported graphs
            raise _with_detail(UnsupportedOperatorError(
                f"onnx2tf stopped on this graph (exit {exc.code})", hint="rerun with --verbose to see which operator"
            ), exc) from exc
        except NotImplementedError as exc:
            raise _with_detail(UnsupportedOperatorError(f"onnx2tf: {_first_line(exc)}"), exc) from exc
        except Exception as exc:
            raise _with_detail(ConversionError(f"onnx2tf failed: {_summary(exc)}",
                                               hint="rerun with --verbose to see onnx2tf's log"), exc) from exc
    out = folder / "out"
    if not (out / "saved_model.pb").is_file():
        raise ConversionError("onnx2tf finished without writing a SavedModel", hint="rerun with --verbose to see its log")
    return out


NO_REPLACEMENTS = "no-replacements.json"


def run_onnx2tf_isolated(onnx_path: str | Path, inputs, folder: Path, params: dict | None = None,
                         timeout: float = 900.0) -> Path:
    """:func:`run_onnx2tf` in a child process, stopped after ``timeout`` seconds.

    The conversion ladder tries several onnx2tf runs on one model: a child per run bounds each one
    (onnx2tf has no time limit of its own and some remedies search), returns its memory (TensorFlow
    keeps graphs alive in a process), and survives onnx2tf's ``sys.exit`` and crashes. The child's
    output goes to this process's stdout/stderr, which the pipeline captures unless --verbose.
    """
    folder = Path(folder).resolve()
    request = folder.with_name(folder.name + ".request.json")
    result = folder.with_name(folder.name + ".result.json")
    request.write_text(json.dumps({
        "onnx_path": str(Path(onnx_path).resolve()), "folder": str(folder), "params": params or {},
        "inputs": [[t.name, list(t.shape)] for t in inputs], "result": str(result),
    }))
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    child = subprocess.Popen([sys.executable, "-m", "deploykit.converters.onnx2tf_facade", str(request)],
                             env=env, start_new_session=True)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise ConversionError(f"onnx2tf did not finish within {timeout:.0f} s (stopped)",
                              hint="rerun with --verbose to see how far it got") from None
    except BaseException:
        _kill_group(child)
        raise
    if not result.is_file():
        raise ConversionError(f"onnx2tf's process ended without a result (exit code {code})",
                              hint="rerun with --verbose to see its log")
    answer = json.loads(result.read_text())
    if answer["ok"]:
        return Path(answer["out"])
    kind = UnsupportedOperatorError if answer["kind"] == "UnsupportedOperatorError" else ConversionError
    error = kind(answer["message"], hint=answer.get("hint"))
    error.detail, error.onnx_op_name = answer.get("detail", ""), answer.get("onnx_op_name")
    raise error


def _child(request_path: str) -> int:
    """The child side of :func:`run_onnx2tf_isolated`: one run, its outcome written as JSON."""
    from types import SimpleNamespace

    from deploykit.core.errors import DeployKitError

    request = json.loads(Path(request_path).read_text())
    inputs = [SimpleNamespace(name=name, shape=tuple(shape)) for name, shape in request["inputs"]]
    try:
        out = run_onnx2tf(request["onnx_path"], inputs, Path(request["folder"]), request["params"])
        answer = {"ok": True, "out": str(out)}
    except DeployKitError as exc:
        answer = {"ok": False, "kind": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                  "detail": getattr(exc, "detail", ""), "onnx_op_name": getattr(exc, "onnx_op_name", None)}
    Path(request["result"]).write_text(json.dumps(answer))
    return 0


def _kill_group(child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _with_detail(error, exc: BaseException):
    import traceback

    error.detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    error.onnx_op_name = getattr(exc, "onnx_op_name", None)
    return error


def _summary(exc: BaseException) -> str:
    """The line of onnx2tf's exception that says what went wrong: Keras wraps the TF error as
    'Exception encountered when calling layer "tf.concat_21"', with the reason a few lines later."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    reason = next((line for line in lines[1:] if not line.startswith(("Call arguments", "•"))), None)
    text = lines[0] if reason is None else f"{lines[0].rstrip('.')}: {reason}"
    return text[:400]


def sanitize_node_names(onnx_path: Path) -> int:
    """Rewrite, in place, node names that TensorFlow refuses as scope names; returns how many changed.

    onnx2tf names TF ops after ONNX nodes, and TF allows only ``[A-Za-z0-9_.\\/>-]`` in a scope name:
    PaddlePaddle's exporter names nodes ``Conv@0``, ``Softmax@0``, and onnx2tf then fails with
    "'Softmax@0' is not a valid scope name" (``@`` becomes ``_``; onnx2tf itself handles ``:`` and a
    leading ``/``). Node names carry no meaning in ONNX (tensors connect by value names), so renaming
    them changes nothing the model computes.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    taken = {node.name for node in _all_nodes(model.graph)}
    changed = 0
    for node in _all_nodes(model.graph):
        if not _SCOPE_CHAR.search(node.name):
            continue
        base = _SCOPE_CHAR.sub("_", node.name)
        name, suffix = base, 1
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        node.name = name
        changed += 1
    if changed:
        onnx.save_model(model, str(onnx_path))
    return changed


# TF's scope-name characters, plus ':' and '/', which onnx2tf itself replaces
_SCOPE_CHAR = re.compile(r"[^A-Za-z0-9_.\\/>:-]")


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _all_nodes(sub)


def _import_onnx2tf():
    legacy = os.environ.get("TF_USE_LEGACY_KERAS")
    import onnx2tf

    # Importing onnx2tf sets TF_USE_LEGACY_KERAS=1 for the whole process, and every child process
    # (deploykit bench, a test's CLI run) inherits it: there tf.keras is tf_keras, and coremltools
    # then refuses Keras 3 models. Put the variable back once onnx2tf has it loaded.
    if legacy is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = legacy
    return onnx2tf


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines or [type(exc).__name__])[0][:300]


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
    from deploykit.formats.tflite.flatbuffer import set_signature
    from deploykit.formats.tflite.signature import open_interpreter

    path = float32_tflite(folder)
    interpreter = open_interpreter(str(path))
    inputs = [d["name"] for d in interpreter.get_input_details()]
    outputs = [(d["name"], tuple(int(x) for x in d["shape"])) for d in interpreter.get_output_details()]
    input_names = _pair_names([(n, None) for n in inputs], source.inputs)
    output_names = _pair_names(outputs, source.outputs)
    return set_signature(path.read_bytes(), input_names, output_names)


def _pair_names(tensors, specs) -> list[str]:
    from deploykit.core.layouts import NCHW_TO_NHWC, permute

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


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1]))
