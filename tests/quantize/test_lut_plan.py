"""deploykit's 1-D k-means and the per-layer table plan, on weights with known structure."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.quantize.lut_plan import FLOAT, LayerWeight, kmeans_1d, lut_function, palettized, plan_tables, relative_error


def test_kmeans_is_exact_when_values_fit_the_table():
    values = np.array([[0.5, -1.0, 0.5, 2.0, -1.0, 7.0]])
    table, index = kmeans_1d(values, 4)
    assert np.array_equal(np.take_along_axis(table, index, 1), values)
    assert np.all(np.diff(table[0]) >= 0)


def test_kmeans_reaches_the_gaussian_optimum():
    """Lloyd-Max's 16-level quantizer of a Gaussian has an SNR of 20.22 dB; equal-count starts stall at 19.6."""
    rows = np.random.default_rng(0).standard_normal((1, 200_000))
    snr = 10 * np.log10(1 / relative_error(rows, palettized(rows, 16, 1)))
    assert 20.1 <= snr <= 20.4


def test_rows_are_clustered_independently():
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((3, 50)) * np.array([[1e-3], [1.0], [1e3]])
    together = np.take_along_axis(*kmeans_1d(rows, 8), axis=1)
    for r in range(3):
        alone = np.take_along_axis(*kmeans_1d(rows[r:r + 1], 8), axis=1)
        assert np.allclose(together[r], alone[0])


def test_one_shared_table_fails_small_channels():
    """Channels whose scales differ (batch norm folded in) share a table badly: the small channels are
    rebuilt from entries fitted to the large ones, and their relative error can exceed 100 %."""
    weights = np.random.default_rng(2).standard_normal((64, 32)) * np.random.default_rng(3).lognormal(0, 1.5, (64, 1))
    shared, own = (relative_error(weights, palettized(weights, 16, g)) for g in (64, 1))
    assert shared > 1.0 and own < 0.01


def layers():
    rng = np.random.default_rng(4)
    # a depthwise-like layer: 9 weights per channel with channel scales spread over 3 decades (folded batch norm)
    depthwise = rng.standard_normal((32, 1, 3, 3)) * rng.lognormal(0, 2.0, (32, 1, 1, 1))
    pointwise = rng.standard_normal((128, 64, 1, 1))
    return [LayerWeight("dw", depthwise.astype(np.float16)), LayerWeight("pw", pointwise.astype(np.float16))]


def test_budget_goes_where_error_is_highest():
    plan = plan_tables(layers(), 4, budget=0.08, grouped=True, floor_bytes=0)
    assert plan.extra_bytes <= plan.budget_bytes == int(0.08 * (32 * 9 + 128 * 64) / 2)
    assert plan_tables(layers(), 4, budget=0.08, grouped=True).budget_bytes == 4096  # the floor for small models
    assert plan.groups["dw"] != 32  # the layer with spread-out channels gets the bytes
    dw = layers()[0].values
    chosen = 0.0 if plan.groups["dw"] == FLOAT else relative_error(dw, palettized(dw, 16, plan.groups["dw"]))
    assert chosen < 0.1 * relative_error(dw, palettized(dw, 16, 32))
    assert sum(plan.describe()["tables"].values()) == 2


@pytest.mark.parametrize("budget, grouped, allowed", [(0.0, True, {"per tensor"}), (0.08, False, {"per tensor", "fp16"})])
def test_no_budget_or_no_groups(budget, grouped, allowed):
    plan = plan_tables(layers(), 4, budget=budget, grouped=grouped)
    kinds = {"fp16" if g == FLOAT else "per tensor" if g == plan.channels[n] else "grouped" for n, g in plan.groups.items()}
    assert kinds <= allowed
    assert plan.extra_bytes <= plan.budget_bytes


def test_lut_function_has_the_shape_coremltools_expects():
    values = np.random.default_rng(5).standard_normal((8, 4, 3, 3)).astype(np.float16)
    table, index = lut_function(4)(values)
    assert table.shape == (16,) and table.dtype == np.float16
    assert index.shape == (values.size,) and index.dtype == np.uint8 and index.max() < 16
    assert relative_error(values.reshape(1, -1), table[index].reshape(1, -1)) < 0.02
