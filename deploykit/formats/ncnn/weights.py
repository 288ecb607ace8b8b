"""What an NCNN ``.bin`` stores its weights as, read from the file itself.

ncnn's ``ModelBin`` prefixes each tagged weight blob with a 4-byte flag, 4-byte aligned: ``0x01306B47`` for
fp16 data, ``0x000D4B38`` for int8, 0 for raw float32. An fp16-storage model (``pnnx fp16=1``) has the fp16 tag
on every tagged blob; in a float32 file that bit pattern would be a weight of 3.2e-38, which trained or
random weights do not hold. The runner uses this to run an fp16 artifact with fp16 arithmetic, as an app would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FP16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38


def storage(path: str | Path) -> str:
    """"float16", "int8" or "float32": the storage of the .bin's tagged weights (float32 when none is tagged)."""
    return storage_of(Path(path).read_bytes())


def storage_of(data: bytes) -> str:
    words = np.frombuffer(data[: len(data) // 4 * 4], dtype="<u4")
    if np.any(words == FP16_TAG):
        return "float16"
    if np.any(words == INT8_TAG):
        return "int8"
    return "float32"


# What each layer type's ``load_model`` reads from the .bin, in order: ("tagged" | "raw", count key, flag key or
# None). A tagged blob is ncnn's ``ModelBin::load(n, 0)``: a 4-byte tag then the data (fp32, fp16 or int8); a raw
# one is ``load(n, 1)``: float32 without a tag. Counts are the layer's own parameters (ncnn's layer sources).
_BLOBS: dict[str, tuple[tuple[str, object, int | None], ...]] = {
    **{kind: (("tagged", 6, None), ("raw", 0, 5)) for kind in (
        "Convolution", "ConvolutionDepthWise", "Convolution1D", "Convolution3D", "ConvolutionDepthWise1D",
        "ConvolutionDepthWise3D", "Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "Deconvolution3D",
        "DeconvolutionDepthWise1D", "DeconvolutionDepthWise3D")},
    "InnerProduct": (("tagged", 2, None), ("raw", 0, 1)),
    "Embed": (("tagged", 3, None), ("raw", 0, 2)),
    "BatchNorm": (("raw", 0, None),) * 4,
    "PReLU": (("raw", 0, None),),
    "LayerNorm": (("raw", 0, 2), ("raw", 0, 2)),
    "InstanceNorm": (("raw", 0, 2), ("raw", 0, 2)),
    "GroupNorm": (("raw", 1, 3), ("raw", 1, 3)),
    "MemoryData": (("raw", "volume", None),),
}
# Layer types that read nothing from the .bin.
_WEIGHTLESS = frozenset((
    "Input", "ReLU", "Clip", "Pooling", "Pooling1D", "Pooling3D", "Eltwise", "BinaryOp", "UnaryOp", "Split", "Concat",
    "Reshape", "Permute", "Flatten", "Softmax", "Sigmoid", "Swish", "HardSwish", "HardSigmoid", "Interp", "Crop", "Slice",
    "Padding", "Reduction", "ShuffleChannel", "Dropout", "Noop", "TanH", "ELU", "GELU", "Mish", "Squeeze", "ExpandDims",
    "Cast", "Erf", "Tile", "CopyTo", "Fold", "Unfold", "MatMul", "Exp", "Log", "Power", "Threshold", "Flip", "AbsVal",
    "SELU", "Spectrogram", "InverseSpectrogram", "CumulativeSum", "Shrink", "Diag", "PixelShuffle", "Reorg",
    "DeepCopy", "Gemm_dynamic", "RMSNorm_noaffine", "Einsum", "GridSample", "Softplus", "BNLL", "LRN", "MVN",
    "Normalize_noaffine", "Bias_none", "StatisticsPooling", "Quantize_none", "ArgMax"))


def tagged_blobs(graph, data: bytes) -> dict[str, list[tuple[int, int]]] | None:
    """Layer name -> [(offset of the tag, element count)] of its float32 tagged blobs, walking the .bin as ncnn reads
    it; None when a layer type's reads are not known here, a blob is not float32, or the walk does not end exactly
    at the file's end (then nothing is rewritten: a wrong guess would corrupt weights)."""
    offset, spans = 0, {}
    for layer in graph.layers:
        if layer.type in _WEIGHTLESS or (layer.type in _BLOBS and layer.param(19) == "1"):  # 19: dynamic weight
            continue
        reads = _BLOBS.get(layer.type)
        if reads is None:
            return None
        for kind, key, flag in reads:
            if flag is not None and (layer.param(flag) or "0") == "0":
                continue
            count = _volume(layer) if key == "volume" else int(float(layer.param(key) or 0))
            if kind == "raw":
                offset += 4 * count
                continue
            if offset + 4 > len(data) or int.from_bytes(data[offset:offset + 4], "little") != 0:
                return None  # not a float32 tagged blob
            spans.setdefault(layer.name, []).append((offset, count))
            offset += 4 + 4 * count
    return spans if offset == len(data) else None


def _volume(layer) -> int:
    dims = [int(layer.param(k) or 0) for k in (0, 1, 11, 2)]
    volume = 1
    for d in dims:
        volume *= max(d, 1)
    return volume


def to_fp16(data: bytes, spans: dict[str, list[tuple[int, int]]], keep=frozenset()) -> bytes:
    """The .bin with every tagged blob of the layers not in ``keep`` stored as fp16 (tag, halves, padding to 4 bytes),
    as ``pnnx fp16=1`` writes them (it flushes subnormal halves to zero, numpy keeps them); raw blobs (biases,
    norms) stay float32, as ncnn reads them."""
    starts = sorted((offset, count, name) for name, items in spans.items() for offset, count in items)
    out, cursor = bytearray(), 0
    for offset, count, name in starts:
        if name in keep:
            continue
        out += data[cursor:offset]
        halves = np.frombuffer(data, dtype="<f4", count=count, offset=offset + 4).astype("<f2").tobytes()
        out += FP16_TAG.to_bytes(4, "little") + halves + b"\0" * (-len(halves) % 4)
        cursor = offset + 4 + 4 * count
    out += data[cursor:]
    return bytes(out)
