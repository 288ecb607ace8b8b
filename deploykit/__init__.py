"""deploykit: one command from a Keras, PyTorch or ONNX model to verified, quantized, signed mobile bundles.

The public Python API mirrors the CLI:

    import deploykit
    report = deploykit.convert(deploykit.ConvertRequest("model.keras", targets=("tflite",)))
    report = deploykit.convert("model.keras", to="tflite,coreml", quantize="fp16")   # the CLI's flags as keywords
    parity = deploykit.verify("model.keras", "dist/model.fp32.tflite", samples=16)

Heavy frameworks are imported only when a function needs them, so ``import deploykit`` is cheap.
"""

from __future__ import annotations

from deploykit.core.version import __version__

__all__ = ["__version__", "ConvertRequest", "VerifyOptions", "convert", "verify", "load_source", "inspect_model"]


def convert(request, progress=None, **flags):
    """Run one convert job: ``request`` is a ``ConvertRequest``, or a source path with ``deploykit convert``'s
    flags as keywords (``to``, ``out``, ``quantize``, ``verify_options`` ... : ``pipeline.request.request``)."""
    from deploykit.pipeline.convert import convert as run
    from deploykit.pipeline.request import ConvertRequest
    from deploykit.pipeline.request import request as from_flags

    if isinstance(request, ConvertRequest):
        if flags:
            raise TypeError(f"convert() takes a ConvertRequest or keywords, not both ({', '.join(flags)})")
        return run(request, progress)
    return run(from_flags(request, **flags), progress)


def __getattr__(name: str):
    if name in ("ConvertRequest", "VerifyOptions"):
        from deploykit.pipeline import request

        return getattr(request, name)
    if name == "verify":
        from deploykit.pipeline.verify import verify

        return verify
    if name == "load_source":
        from deploykit.loaders import load_source

        return load_source
    if name == "inspect_model":
        from deploykit.pipeline.inspect import inspect_model

        return inspect_model
    raise AttributeError(f"module 'deploykit' has no attribute {name!r}")
