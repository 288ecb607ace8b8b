"""The one seam between deploykit and ai-edge-litert (LiteRT's Python package, pinned in constraints.txt): every
import of it goes through here, so a version bump touches this file only.

Three things are used: the flatbuffer schema's object API (reading and editing ``.tflite`` files), the
interpreter (running them) and the model analyzer (``tf.lite.experimental.Analyzer``'s own C++ code, which
ai-edge-litert ships too). None needs TensorFlow; each is imported only when a function asks.
"""

from __future__ import annotations


def schema():
    """``ai_edge_litert.schema_py_generated``: the .tflite flatbuffer schema (``ModelT``, ``BuiltinOperator`` ...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def interpreter(path=None, content: bytes | None = None, *, threads: int | None = None, delegates: bool = True,
                preserve_all_tensors: bool = False):
    """A LiteRT ``Interpreter`` on a file or on bytes. ``delegates=False`` runs LiteRT's builtin kernels without
    its default delegate (XNNPACK): what reading a signature and tracing every tensor need."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=None if path is None else str(path), model_content=content, num_threads=threads,
                       experimental_op_resolver_type=resolver, experimental_preserve_all_tensors=preserve_all_tensors)


def preload() -> None:
    """Import the interpreter now (a benchmark's baseline memory then leaves the runtime out)."""
    from ai_edge_litert import interpreter  # noqa: F401


def analyze(path, *, gpu_compatibility: bool = True) -> str:
    """LiteRT's model analyzer on a file: the text ``tf.lite.experimental.Analyzer.analyze(model_path=...,
    gpu_compatibility=...)`` prints, returned instead (the same C++ ``ModelAnalyzer``, without importing
    TensorFlow). The wrapper is a private module of the package: a version bump that moves it changes only this."""
    from ai_edge_litert import _pywrap_analyzer_wrapper

    return _pywrap_analyzer_wrapper.ModelAnalyzer(str(path), True, gpu_compatibility)


def version() -> str:
    """The installed ai-edge-litert distribution's version, "2.3.0"."""
    from importlib import metadata

    return metadata.version("ai-edge-litert")
