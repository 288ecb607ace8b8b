"""LiteRT's model analyzer (``tf.lite.experimental.Analyzer``): its text, read back op by op.

The analyzer lists every op of every subgraph (``  Op#3 CAST(T#4) -> [T#5]``). Asked for GPU compatibility,
older versions printed the GPU delegate's verdict under each op it refuses (``GPU COMPATIBILITY WARNING: Not
supported op TOPK_V2``), one summary line per subgraph, and "Your model looks compatible with GPU delegate"
when no op was refused. The analyzer of ai-edge-litert 2.3.0 (and of TensorFlow 2.21, which loads the same
code) no longer runs the per-op check: it prints the "looks compatible" line for every model. ``checks_gpu_ops``
finds out which kind is installed by analysing a one-op model no GPU delegate can take (a custom op): an
analyzer that passes it did not check anything, and its verdict on a real model says nothing.

When the installed analyzer does not check, ``gpu_analyze`` asks the last one found that does: TensorFlow
2.16.2's ``_pywrap_analyzer_wrapper.so`` (a self-contained pybind module, the GPU delegate's compatibility rules of
that release), which ``setup.sh`` takes out of the ``tensorflow-cpu==2.16.2`` wheel into
``.venv/share/litert-gpu-analyzer/``. It runs in a child process, so it never meets the TensorFlow 2.21 and LiteRT
2.3 symbols loaded here, and a native crash costs only the figure. Nothing is downloaded at run time: without the
file the GPU entry says it was not checked.

``parse`` is pure (text in, ``Analysis`` out), so it is tested on the analyzer's own output.
"""

from __future__ import annotations

import functools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

CANARY_OP = "DeployKitNoSuchOp"  # the custom op of the probe model: no delegate has a kernel for it

_SUBGRAPH = re.compile(r"^Subgraph#(\d+)\b")
_OP = re.compile(r"^\s+Op#(\d+) ([^(\s]+)\(")
_WARNING = re.compile(r"^GPU COMPATIBILITY WARNING: (.*)$")
_SUMMARY = re.compile(r"^Subgraph#\d+ has GPU delegate compatibility issues at nodes (.*?)"
                      r" (?:with|on) TFLite runtime version (\S+?)\.?$")
_COMPATIBLE = re.compile(r"^Your model looks compatib\w* with GPU delegate (?:with|on) TFLite runtime version (\S+?)\.?$")


@dataclass(frozen=True)
class AnalyzedOp:
    subgraph: int
    index: int
    op: str  # the builtin name (CONV_2D) or a custom op's code
    gpu_warning: str | None = None  # the analyzer's words when it says the GPU delegate refuses this op


@dataclass(frozen=True)
class Analysis:
    ops: tuple[AnalyzedOp, ...]
    gpu_verdict: str | None  # "compatible" / "incompatible", None when the analyzer gave none
    runtime_version: str | None  # the TFLite runtime version the analyzer names

    @property
    def refused(self) -> tuple[AnalyzedOp, ...]:
        return tuple(op for op in self.ops if op.gpu_warning is not None)


def parse(text: str) -> Analysis:
    """The ops the analyzer listed, each with the GPU warning printed under it, and its overall verdict."""
    ops: list[AnalyzedOp] = []
    subgraph, verdict, version = 0, None, None
    for line in text.splitlines():
        summary = _WARNING.match(line)
        if summary and _SUMMARY.match(summary.group(1)):
            verdict, version = "incompatible", _SUMMARY.match(summary.group(1)).group(2)
            continue
        if summary:
            if ops:  # a warning belongs to the op listed just above it
                last = ops[-1]
                ops[-1] = AnalyzedOp(last.subgraph, last.index, last.op, _joined(last.gpu_warning, summary.group(1)))
            continue
        if header := _SUBGRAPH.match(line):
            subgraph = int(header.group(1))
        elif op := _OP.match(line):
            ops.append(AnalyzedOp(subgraph, int(op.group(1)), op.group(2)))
        elif compatible := _COMPATIBLE.match(line.strip()):
            verdict, version = verdict or "compatible", compatible.group(1)
    return Analysis(tuple(ops), verdict, version)


def _joined(first: str | None, second: str) -> str:
    second = second.strip()
    return second if not first else f"{first}; {second}"


def analyze(path) -> Analysis:
    """The analyzer on ``path``, asked for GPU compatibility, parsed."""
    from deploykit.core.noise import capture_output
    from deploykit.formats import litert_facade

    with capture_output():  # the flatbuffer reader may log to fd 2
        text = litert_facade.analyze(path, gpu_compatibility=True)
    return parse(text)


FALLBACK_RELEASE = "2.16.2"  # the TensorFlow release whose analyzer setup.sh extracts (tensorflow-cpu wheel)
_CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_pywrap_analyzer_wrapper", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.stdout.write(module.ModelAnalyzer(sys.argv[2], True, True))
"""


def fallback_analyzer() -> Path | None:
    """TensorFlow 2.16.2's analyzer module as setup.sh placed it, or None."""
    import sys

    path = Path(sys.prefix) / "share" / "litert-gpu-analyzer" / f"tf-{FALLBACK_RELEASE}" / "_pywrap_analyzer_wrapper.so"
    return path if path.is_file() else None


def analyze_with(module: Path, path) -> Analysis:
    """The analyzer module at ``module`` on ``path``, in a child process, parsed."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CHILD, str(module), str(path)], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"the analyzer {module.name} failed: {lines[-1] if lines else done.returncode}")
    return parse(done.stdout)


@functools.cache
def gpu_analyzer() -> tuple[str, Path | None] | None:
    """Which analyzer checks GPU compatibility here: ("installed", None), ("tensorflow 2.16.2", module) or None.
    Each is asked about the canary model first: one that passes it checks nothing."""
    if checks_gpu_ops():
        return "installed", None
    module = fallback_analyzer()
    if module is None:
        return None
    with tempfile.TemporaryDirectory(prefix="deploykit-canary-") as folder:
        probe = Path(folder) / "canary.tflite"
        probe.write_bytes(canary_model())
        try:
            found = analyze_with(module, probe)
        except (RuntimeError, OSError, ValueError):
            return None
    if found.gpu_verdict == "incompatible" or found.refused:
        return f"TensorFlow {FALLBACK_RELEASE}'s model analyzer", module
    return None


@functools.cache
def checks_gpu_ops() -> bool:
    """Whether the installed analyzer checks ops for the GPU delegate at all: it must refuse a model whose one op
    is a custom op no delegate knows. Asked once per process (a one-op model, milliseconds)."""
    with tempfile.TemporaryDirectory(prefix="deploykit-canary-") as folder:
        probe = Path(folder) / "canary.tflite"
        probe.write_bytes(canary_model())
        found = analyze(probe)
    return found.gpu_verdict == "incompatible" or bool(found.refused)


def canary_model() -> bytes:
    """A .tflite of one float32 [1, 4] input, one custom op ``CANARY_OP`` and its output: valid for the analyzer,
    which reads the graph without resolving kernels."""
    from deploykit.formats import litert_facade
    from deploykit.formats.tflite.flatbuffer import write_model

    schema = litert_facade.schema()
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = CANARY_OP
    code.version = 1
    model.operatorCodes = [code]
    tensors = []
    for name in ("input", "output"):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, [1, 4], schema.TensorType.FLOAT32, 0
        tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [0], [1], [op], "main"
    model.subgraphs = [graph]
    return write_model(model)
