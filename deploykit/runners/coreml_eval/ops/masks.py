"""band_part (zero everything outside a diagonal band) and non_zero (positions of set entries)."""

from __future__ import annotations

import numpy as np

from .registry import register


@register("band_part")
def band_part(args):
    # keep x[..., m, n] where (lower < 0 or m - n <= lower) and (upper < 0 or n - m <= upper)
    x = args.tensor("x")
    if x.ndim < 2:
        raise args.unsupported("x", x.shape, "band_part works on the last two dims of a rank >= 2 tensor")
    lower, upper = int(args.scalar("lower", -1)), int(args.scalar("upper", -1))
    m = np.arange(x.shape[-2])[:, None]
    n = np.arange(x.shape[-1])[None, :]
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@register("non_zero")
def non_zero(args):
    # [N, rank]: one row per non-zero element, in row-major order (numpy's argwhere)
    return np.argwhere(args.tensor("x")).astype(np.int32)
