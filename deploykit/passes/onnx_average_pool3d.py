"""``average_pool3d_as_2d``: an ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import split_pool3d
from deploykit.passes.registry import register_pass


@register_pass("average_pool3d_as_2d", stage="onnx")
def average_pool3d_as_2d(model) -> int:
    """An AveragePool over depth, height and width, rewritten as a 2-D AveragePool over (H, W) of every depth
    slice and a 2-D AveragePool over (D, 1) of the result; pads the pool excludes become a constant correction.

    Given:  %y = AveragePool(%x, kernel_shape=[3, 3, 3], pads=[1, 1, 1, 1, 1, 1])       %x: [1, 2, 4, 6, 6]
    Result: %s = Reshape(%x, [1, 8, 6, 6])
            %p = AveragePool(%s, kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
            %c = Reshape(%p, [1, 2, 4, 36])
            %q = AveragePool(%c, kernel_shape=[3, 1], pads=[1, 0, 1, 0], count_include_pad=1)
            %v = Reshape(%q, [1, 2, 4, 6, 6])
            %y = Mul(%v, C)     C[d, i, j] = 27 / real (unpadded) cells under window (d, i, j)

    onnx2tf writes a 3-D AveragePool as TensorFlow's AvgPool3D, which has no TFLite builtin (``FlexAvgPool3D``,
    refused by stock LiteRT). The mean over a box is the mean over its depth rows of their (H, W) means, pads
    included as zeros (the divisor kd * kh * kw is the product of the two pools' divisors); a pool that leaves
    pads out (count_include_pad=0, ONNX's default) divides by the real cells, whose count is a product of
    per-axis counts too, hence the correction (the same map ``average_pool_pads`` uses; onnx2tf's 2-D pools
    then only ever include pads, which it converts right). Not bit-exact: the sums are added in another order,
    within an ulp or two of ONNX's. ceil_mode (whose divisor at a clipped edge differs between runtimes) and
    dilations are left alone, as are pools whose shapes are not static.
    """
    return split_pool3d(model, "AveragePool")
