"""The Core ML protobuf classes, without importing all of coremltools.

``import coremltools`` pulls in TensorFlow and torch when they are installed (about 8 s here). The
generated ``*_pb2`` modules under ``coremltools/proto`` need only protobuf, so when coremltools has
not been imported yet we load them through a private package name that points at the same folder.
protobuf registers each .proto file once in its default pool, so a later real import of
``coremltools.proto`` gets the very same message classes (checked in the tests).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

_PRIVATE_PACKAGE = "_deploykit_coremltools_proto"


def model_pb2():
    """The ``Model_pb2`` module (``Model``, the root message of a .mlmodel file)."""
    return _load("Model_pb2")


def mil_pb2():
    """The ``MIL_pb2`` module (``Program``, ``Operation``, ``Value``, ``DataType``...)."""
    return _load("MIL_pb2")


def _load(module: str):
    real = sys.modules.get(f"coremltools.proto.{module}")
    if real is not None:
        return real
    if "coremltools" in sys.modules:
        return importlib.import_module(f"coremltools.proto.{module}")
    package = sys.modules.get(_PRIVATE_PACKAGE)
    if package is None:
        spec = importlib.util.find_spec("coremltools")
        if spec is None or spec.origin is None:
            raise ImportError("coremltools is not installed; it provides the Core ML protobuf schema")
        package = types.ModuleType(_PRIVATE_PACKAGE)
        package.__path__ = [str(Path(spec.origin).parent / "proto")]
        sys.modules[_PRIVATE_PACKAGE] = package
    return importlib.import_module(f"{_PRIVATE_PACKAGE}.{module}")
