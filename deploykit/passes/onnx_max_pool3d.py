"""``max_pool3d_as_2d``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import split_pool3d
from deploykit.passes.registry import register_pass


@register_pass("max_pool3d_as_2d", stage="onnx")
def max_pool3d_as_2d(model) -> int:
    """A MaxPool over depth, height and width, rewritten as a 2-D MaxPool over (H, W) of every depth slice and a
    2-D MaxPool over (D, 1) of the result.

    Given:  %y = MaxPool(%x, kernel_shape=[2, 2, 2], strides=[2, 2, 2], pads=[1, 1, 1, 1, 1, 1])   %x: [2, 3, 5, 5, 5]
    Result: %s = Reshape(%x, [2, 15, 5, 5])
            %p = MaxPool(%s, kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])           [2, 15, 3, 3]
            %c = Reshape(%p, [2, 3, 5, 9])
            %q = MaxPool(%c, kernel_shape=[2, 1], strides=[2, 1], pads=[1, 0, 1, 0])           [2, 3, 3, 9]
            %y = Reshape(%q, [2, 3, 3, 3, 3])

    onnx2tf writes a 3-D MaxPool as TensorFlow's MaxPool3D, which has no TFLite builtin: the artifact needs
    Select-TF (``FlexMaxPool3D``), which stock LiteRT refuses (PyTorch's MaxPool3d in the onnx wheel's
    ``pytorch-converted`` tests). TFLite has MAX_POOL_2D and RESHAPE. Bit-exact: a window is a box, so its
    maximum is the maximum over its depth rows of their (H, W) maxima, and padded cells take part in neither
    (dilations and ceil_mode apply per axis the same way). A MaxPool that also writes Indices is left alone, as
    is one whose shapes are not static (the prepared graph's are).
    """
    return split_pool3d(model, "MaxPool")
