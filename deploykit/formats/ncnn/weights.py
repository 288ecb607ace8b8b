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
        computed = _COMPUTED.get(layer.type)
        reads = _BLOBS.get(layer.type) if computed is None else computed(layer)
        if reads is None:
            return None
        for kind, key, flag in reads:
            if flag is not None and (layer.param(flag) or "0") == "0":
                continue
            count = key if computed is not None else _volume(layer) if key == "volume" else _int(layer, key)
            if kind == "raw":
                offset += 4 * count
                continue
            if offset + 4 > len(data) or int.from_bytes(data[offset:offset + 4], "little") != 0:
                return None  # not a float32 tagged blob
            if kind == "tagged":  # "tagged-float32": a bias ncnn reads tagged, left float32 like the raw ones
                spans.setdefault(layer.name, []).append((offset, count))
            offset += 4 + 4 * count
    return spans if offset == len(data) else None


def blob_spans(graph, data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every blob of the .bin, walking it as ncnn's ``ModelBin`` reads it: a tagged blob is its
    4-byte tag and its data (float32, fp16 or int8, padded to 4 bytes), a raw one float32. [] when a layer type's
    reads or a tag are not known here, or the walk does not end exactly at the file's end. The bundle cuts its
    delta-update chunks at these ranges."""
    offset, spans = 0, []
    for layer in graph.layers:
        if layer.type in _WEIGHTLESS or (layer.type in _BLOBS and layer.param(19) == "1"):
            continue
        computed = _COMPUTED.get(layer.type)
        reads = _BLOBS.get(layer.type) if computed is None else computed(layer)
        if reads is None:
            return []
        for kind, key, flag in reads:
            if flag is not None and (layer.param(flag) or "0") == "0":
                continue
            count = key if computed is not None else _volume(layer) if key == "volume" else _int(layer, key)
            if kind == "raw":
                length = 4 * count
            elif offset + 4 > len(data):
                return []
            else:
                tag = int.from_bytes(data[offset:offset + 4], "little")
                body = {0: 4 * count, FP16_TAG: -(-2 * count // 4) * 4, INT8_TAG: -(-count // 4) * 4}.get(tag)
                if body is None:
                    return []
                length = 4 + body
            if length:
                spans.append((offset, length))
            offset += length
    return spans if offset == len(data) else []


def _int(layer, key: int, default: int = 0) -> int:
    value = layer.param(key)
    return default if value is None else int(float(value))


def _gemm(layer):
    """ncnn's ``Gemm::load_model``: constant A (K x M) and B (K x N), tagged; constant C (the bias, as many values
    as its broadcast type says), tagged too but left float32 like every bias. Params: 4/5/6 constant A/B/C, 7/8/9
    M/N/K, 10 C's broadcast type, 18 quantized (not walked)."""
    if _int(layer, 18):
        return None
    m, n, k = _int(layer, 7), _int(layer, 8), _int(layer, 9)
    reads = []
    if _int(layer, 4):
        reads.append(("tagged", k * m, None))
    if _int(layer, 5):
        reads.append(("tagged", k * n, None))
    broadcast = _int(layer, 10)
    if _int(layer, 6) and broadcast != -1:
        count = {0: 1, 1: m, 2: m, 3: n * m, 4: n}.get(broadcast)
        if count is None:
            return None
        reads.append(("tagged-float32", count, None))
    return tuple(reads)


def _multi_head_attention(layer):
    """ncnn's ``MultiHeadAttention::load_model``: the q, k, v and out projections, each a tagged weight and a raw bias.
    Params: 0 embed_dim, 2 weight_data_size (embed_dim x qdim), 3 kdim, 4 vdim (both embed_dim by default), 18
    quantized (not walked)."""
    embed, size = _int(layer, 0), _int(layer, 2)
    if _int(layer, 18) or embed <= 0 or size % embed:
        return None
    qdim, kdim, vdim = size // embed, _int(layer, 3, embed), _int(layer, 4, embed)
    return (("tagged", embed * qdim, None), ("raw", embed, None), ("tagged", embed * kdim, None), ("raw", embed, None),
            ("tagged", embed * vdim, None), ("raw", embed, None), ("tagged", qdim * embed, None), ("raw", qdim, None))


# Layer types whose reads are computed from several parameters: layer -> ((kind, count, None), ...) or None.
_COMPUTED = {"Gemm": _gemm, "MultiHeadAttention": _multi_head_attention}


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
