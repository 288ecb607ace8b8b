"""while_loop and cond: nested blocks that read values of their enclosing scopes, compared with the
same computation written as a Python loop. (PyTorch's nn.GRU, which the torch frontend turns into
a while_loop, is checked against torch in test_coreml_eval_recurrent.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP32_TOL, save_mil, seeded

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

X = seeded((2, 3), 1)


def _evaluate(build, path, x):
    from deploykit.runners.coreml_eval import evaluate

    save_mil(build, [x.shape], path)
    return list(evaluate(path, {"x": x}).values())


def test_while_loop_reads_outer_values(tmp_path):
    """The body reads x and a value computed before the loop; an op after the loop reads it too."""

    def build(x):
        scaled = mb.mul(x=x, y=3.0)

        def cond(i, acc):
            return mb.less(x=i, y=np.int32(5))

        def body(i, acc):
            return mb.add(x=i, y=np.int32(1)), mb.add(x=mb.mul(x=acc, y=0.5), y=mb.sub(x=scaled, y=x))

        i, acc = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))
        return i, mb.add(x=acc, y=scaled)

    steps, out = _evaluate(build, tmp_path / "loop.mlpackage", X)
    acc = X.copy()
    for _ in range(5):
        acc = acc * 0.5 + (X * 3 - X)
    assert steps == 5
    np.testing.assert_allclose(out, acc + 3 * X, **FP32_TOL)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_takes_the_branch_its_predicate_picks(sign, tmp_path):
    def build(x):
        return mb.cond(pred=mb.greater(x=mb.reduce_sum(x=x), y=0.0),
                       _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0))

    x = np.abs(X) * sign
    (out,) = _evaluate(build, tmp_path / "cond.mlpackage", x)
    np.testing.assert_allclose(out, x * 2 if sign > 0 else x - 1, **FP32_TOL)


def test_cond_nested_in_a_loop(tmp_path):
    """Odd steps add x, even steps double: a cond inside the body reads the loop counter."""

    def build(x):
        def body(i, acc):
            odd = mb.equal(x=mb.mod(x=i, y=np.int32(2)), y=np.int32(1))
            step = mb.cond(pred=odd, _true_fn=lambda: mb.add(x=acc, y=x), _false_fn=lambda: mb.mul(x=acc, y=2.0))
            return mb.add(x=i, y=np.int32(1)), step

        return mb.while_loop(_cond=lambda i, acc: mb.less(x=i, y=np.int32(6)), _body=body,
                             loop_vars=(np.int32(0), x))[1]

    (out,) = _evaluate(build, tmp_path / "nested.mlpackage", X)
    acc = X.copy()
    for i in range(6):
        acc = acc + X if i % 2 else acc * 2
    np.testing.assert_allclose(out, acc, **FP32_TOL)


def test_loop_that_never_runs(tmp_path):
    def build(x):
        return mb.while_loop(_cond=lambda acc: mb.less(x=mb.reduce_sum(x=acc), y=-100.0),
                             _body=lambda acc: mb.mul(x=acc, y=2.0), loop_vars=(x,))

    (out,) = _evaluate(build, tmp_path / "never.mlpackage", X)
    np.testing.assert_array_equal(out, X)
