"""The one place deploykit runs ``pnnx`` (Tencent's PyTorch / ONNX -> NCNN converter), as its own process.

The ``pnnx`` wheel ships the converter as a native executable beside its Python package; importing that package
imports torch, so deploykit finds the executable without importing it. pnnx writes seven files (its own pnnx
graph, a Python re-creation, an ONNX copy, the NCNN pair and an NCNN test script) and folded-constant files in
its working directory: everything is written in a scratch folder and only the NCNN pair leaves it.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploykit.core.errors import ConversionError

# pnnx's names for element types in ``inputshape=[1,3,224,224]f32``.
DTYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64", "int32": "i32", "int16": "i16",
          "int8": "i8", "uint8": "u8", "bool": "b"}
TIMEOUT = 1800


@dataclass(frozen=True)
class PnnxOutput:
    param_text: str
    weights: bytes
    log: str


def executable() -> Path:
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("pnnx is not installed", hint="run ./setup.sh (pnnx is pinned in constraints.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pnnx"
    if not path.is_file():
        raise ConversionError(f"the pnnx executable is missing from its package ({path})", hint="reinstall pnnx")
    return path


def input_shapes(specs) -> str:
    """``[1,3,224,224]f32,[1,16]i64`` for pnnx's ``inputshape=``."""
    parts = []
    for spec in specs:
        kind = DTYPES.get(spec.dtype)
        if kind is None:
            raise ConversionError(f"pnnx takes no {spec.dtype} input ({spec.name!r})")
        parts.append(f"[{','.join(str(int(d)) for d in spec.shape)}]{kind}")
    return ",".join(parts)


def convert(model_file: Path, specs, *, fp16: bool, label: str) -> PnnxOutput:
    """Run pnnx on a TorchScript (.pt) or ONNX file; the NCNN pair it writes, read back."""
    with tempfile.TemporaryDirectory(prefix="deploykit-pnnx-") as scratch:
        work = Path(scratch)
        names = {key: work / name for key, name in (
            ("pnnxparam", "model.pnnx.param"), ("pnnxbin", "model.pnnx.bin"), ("pnnxpy", "model_pnnx.py"),
            ("pnnxonnx", "model.pnnx.onnx"), ("ncnnparam", "model.ncnn.param"), ("ncnnbin", "model.ncnn.bin"),
            ("ncnnpy", "model_ncnn.py"))}
        args = [str(executable()), str(Path(model_file).resolve()), f"inputshape={input_shapes(specs)}",
                f"fp16={1 if fp16 else 0}", "device=cpu", *(f"{key}={path}" for key, path in names.items())]
        try:
            done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{label}: pnnx did not finish in {TIMEOUT} s") from None
        log = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0 or not names["ncnnparam"].is_file() or not names["ncnnbin"].is_file():
            raise ConversionError(f"{label}: pnnx failed ({_reason(log, done.returncode)})",
                                  hint="rerun with --verbose to see pnnx's log")
        return PnnxOutput(names["ncnnparam"].read_text(encoding="ascii", errors="replace"),
                          names["ncnnbin"].read_bytes(), log)


def _reason(log: str, code: int) -> str:
    """The last lines of pnnx's log that say something (it prints its passes as '#### pass_...'), one line: terminal
    colour codes and onnxruntime's own warnings (which pnnx runs to fold constants) left out; a crash says so."""
    text = _ANSI.sub("", log)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("####") and not _ORT_LOG.search(line)]
    meaningful = [line for line in lines if any(w in line.lower() for w in ("error", "unsupported", "not supported", "failed",
                                                                            "ignore", "unknown"))]
    reason = "; ".join((meaningful or lines)[-3:])[:400]
    if code < 0:  # killed by a signal: pnnx crashed
        crash = f"pnnx crashed ({_signal_name(-code)})"
        return f"{crash}: {reason}" if reason else crash
    return reason or f"exit code {code}"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ORT_LOG = re.compile(r"\[[WIEV]:onnxruntime:")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
