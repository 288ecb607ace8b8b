"""deploykit: one command from a Keras, PyTorch or ONNX model to verified, quantized, signed mobile bundles.

The public Python API mirrors the CLI. Heavy frameworks are imported only when a function needs them,
so ``import deploykit`` is cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "convert", "load_source"]


def __getattr__(name: str):
    if name == "convert":
        from deploykit.pipeline.convert import convert

        return convert
    if name == "load_source":
        from deploykit.loaders import load_source

        return load_source
    raise AttributeError(f"module 'deploykit' has no attribute {name!r}")
