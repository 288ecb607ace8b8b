"""while_loop and cond (MIL control_flow.py). Their nested blocks are compiled and run by
``program`` (see ``Block``); these implementations only decide which block runs, and how often.

while_loop's blocks are [cond, body], both taking the loop variables; cond's are [true, false],
taking nothing. A loop that has not ended after ``MAX_ITERATIONS`` steps is refused rather than
left to run forever.
"""

from __future__ import annotations

import numpy as np

from .registry import register

MAX_ITERATIONS = 1_000_000


def _truth(args, value, what: str) -> bool:
    value = np.asarray(value)
    if value.size != 1:
        raise args.unsupported(what, value.shape, "a scalar predicate is expected")
    return bool(value.reshape(()))


@register("while_loop")
def while_loop(args):
    values = list(args.values("loop_vars"))
    for _ in range(MAX_ITERATIONS):
        (go,) = args.run_block(0, values)
        if not _truth(args, go, "cond block output"):
            return tuple(values)
        values = args.run_block(1, values)
    raise args.unsupported("loop_vars", f"{MAX_ITERATIONS} iterations", "the loop did not end")


@register("cond")
def cond(args):
    branch = 0 if _truth(args, args.tensor("pred"), "pred") else 1
    return tuple(args.run_block(branch, []))
