"""scaled_dot_product_attention (iOS18), PyTorch's definition as quoted by the MIL reference:

    softmax(Q @ K^T / sqrt(E) + mask) @ V

A boolean mask keeps the positions where it is True (the others get -inf); a float mask is added.
A query whose every key is masked out gives NaN, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from .registry import register


@register("scaled_dot_product_attention")
def scaled_dot_product_attention(args):
    q, k, v = args.tensor("query"), args.tensor("key"), args.tensor("value")
    mask = args.optional("attn_mask")
    if q.ndim < 3 or k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise args.unsupported("key", k.shape, f"query {q.shape}, key [.., S, E] and value [.., S, EV] {v.shape}")
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / q.dtype.type(np.sqrt(q.shape[-1]))
    if mask is not None:
        if mask.dtype == np.bool_:
            scores = np.where(mask, scores, q.dtype.type(-np.inf))
        else:
            scores = scores + mask.astype(q.dtype, copy=False)
    with np.errstate(invalid="ignore"):
        peak = np.max(scores, axis=-1, keepdims=True)
        weights = np.exp(scores - peak)
        weights /= np.sum(weights, axis=-1, keepdims=True)
    return np.matmul(weights, v)
