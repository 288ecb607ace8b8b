"""LRN (local response normalization across channels, AlexNet / GoogLeNet / ZFNet).

ONNX: ``y = x / (bias + alpha / size * sum(x^2 over size channels centred on c)) ^ beta``; MIL's
``local_response_norm`` has the same definition (``k`` is ONNX's ``bias``), on rank >= 3 inputs with
channels on axis -3, which is axis 1 for the NCHW tensors ONNX LRN takes."""

from __future__ import annotations

from deploykit.converters.onnx_lowerings._args import attribute, inputs
from deploykit.formats import coremltools_facade


def _lrn(ctx, node):
    mb = coremltools_facade.mil_builder()
    (x,) = inputs(ctx, node)[:1]
    if x.rank != 4:
        raise NotImplementedError(f"LRN on a rank-{x.rank} tensor (deploykit lowers rank 4, NCHW)")
    return mb.local_response_norm(x=x, size=int(attribute(node, "size")), alpha=float(attribute(node, "alpha", 1e-4)),
                                  beta=float(attribute(node, "beta", 0.75)), k=float(attribute(node, "bias", 1.0)),
                                  name=node.output[0])


LOWERINGS = {"LRN": _lrn}
