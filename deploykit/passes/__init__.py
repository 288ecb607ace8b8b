"""Named graph passes and the artifact checker behind ``--strict-graph``; ``deploykit.passes.registry`` says how
passes are selected.

This is the catalogue: importing the package registers every pass below (each module registers itself on
import and imports only the registry, so there is no circle). A new pass is one module plus one line here.
The order is the order ``--passes auto`` runs passes of the same stage in (so these imports are never sorted).
"""
# isort: skip_file

from deploykit.passes import fold_batchnorm  # noqa: F401  (source: every framework)
from deploykit.passes import coreml_fuse_activation, coreml_names  # noqa: F401  (coreml: MIL passes)
from deploykit.passes import coreml_exact_reciprocal  # noqa: F401
from deploykit.passes import tflite_fuse_activation, tflite_names  # noqa: F401  (tflite: flatbuffer passes)
from deploykit.passes import tflite_gather_as_slice, tflite_int64_as_int32  # noqa: F401  (tflite: for the GPU delegate)
from deploykit.passes import tflite_slices_for_gpu, tflite_split_relu_0_to_1  # noqa: F401
from deploykit.passes import tflite_fold_constant_broadcast  # noqa: F401
from deploykit.passes import decompose_prelu, drop_alias  # noqa: F401  (source: PyTorch)
from deploykit.passes import onnx_constant_lhs, onnx_single_axis_slices  # noqa: F401  (onnx: ladder rewrites)
from deploykit.passes import onnx_subgraph_constants, onnx_average_pool_pads  # noqa: F401
from deploykit.passes import onnx_scalar_division  # noqa: F401
from deploykit.passes import onnx_max_pool3d, onnx_average_pool3d, onnx_tile_as_concat  # noqa: F401
from deploykit.passes import onnx_dilated_max_pool, onnx_float64_as_float32  # noqa: F401
from deploykit.passes import onnx_dilated_conv  # noqa: F401
from deploykit.passes import silu_as_sigmoid_mul  # noqa: F401  (aten: ExecuTorch fp16)
from deploykit.passes.registry import PassResult, PassSelection, all_passes, names, parse_passes, register_pass

__all__ = ["PassResult", "PassSelection", "all_passes", "names", "parse_passes", "register_pass"]
