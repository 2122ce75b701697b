"""Fornberg finite-difference weights, derivative tests and clustered OLS on known effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from facesym.dose_response import (
    SLOPE_FORMULA,
    cluster_ols,
    derivative_tests,
    fornberg_weights,
    local_derivative,
    stencil_nodes,
)

GRID = np.array([0.0, 0.1, 0.25, 0.5, 1.0])  # non-uniform, contains 0


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0.1, 1.0), min_size=1, max_size=5),
    start=st.floats(-2.0, 2.0),
    coefs=st.lists(st.floats(-3.0, 3.0), min_size=6, max_size=6),
    frac=st.floats(0.0, 1.0),
    order_seed=st.integers(0, 100),
)
def test_fornberg_exact_for_polynomials(gaps, start, coefs, frac, order_seed):
    nodes = start + np.concatenate([[0.0], np.cumsum(gaps)])
    k = len(nodes)
    order = order_seed % k  # 0 … k−1 (0 = interpolation)
    x0 = nodes[0] + frac * (nodes[-1] - nodes[0])
    poly = np.polynomial.Polynomial(coefs[:k])  # degree k − 1
    w = fornberg_weights(x0, nodes, order)
    f = poly(nodes)
    exact = poly.deriv(order)(x0) if order else poly(x0)
    tol = 1e-8 * (1 + np.abs(w).sum() * np.abs(f).max())
    assert abs(w @ f - exact) <= tol


def test_fornberg_classic_stencils():
    h = 0.2
    np.testing.assert_allclose(fornberg_weights(1.0, [1 - h, 1.0, 1 + h], 1),
                               np.array([-0.5, 0.0, 0.5]) / h, atol=1e-12)
    np.testing.assert_allclose(fornberg_weights(0.0, [-h, 0.0, h], 2),
                               np.array([1.0, -2.0, 1.0]) / h**2, atol=1e-9)
    np.testing.assert_allclose(fornberg_weights(0.0, [0.0, 1.0, 2.0], 1), [-1.5, 2.0, -0.5])
    # unsorted nodes give the same weights, permuted
    np.testing.assert_allclose(fornberg_weights(0.0, [2.0, 0.0, 1.0], 1), [-0.5, -1.5, 2.0])
    with pytest.raises(ValueError):
        fornberg_weights(0.0, [0.0, 1.0], 2)
    with pytest.raises(ValueError):
        fornberg_weights(0.0, [0.0, 0.0, 1.0], 1)


def test_stencil_choice_and_local_derivative():
    assert GRID[stencil_nodes(GRID, 0.0)].tolist() == [0.0, 0.1, 0.25]  # one-sided at a = 0
    assert GRID[stencil_nodes(GRID, 1.0)].tolist() == [0.25, 0.5, 1.0]  # one-sided at the end
    assert GRID[stencil_nodes(GRID, 0.1)].tolist() == [0.0, 0.1, 0.25]  # central
    uniform = np.linspace(0, 1, 5)
    assert uniform[stencil_nodes(uniform, 0.5)].tolist() == [0.25, 0.5, 0.75]
    with pytest.raises(ValueError):
        stencil_nodes(GRID, 1.5)
    # exact for quadratics on the non-uniform grid, vectorised over leading axes
    values = np.stack([2 - 3 * GRID + GRID**2, np.sin(GRID)])
    for x0 in (0.0, 0.3, 0.5, 1.0):
        d = local_derivative(values, GRID, x0)
        assert d[0] == pytest.approx(-3 + 2 * x0, abs=1e-10)
        assert d[1] == pytest.approx(math.cos(x0), abs=0.05)
    assert local_derivative(values, GRID, 0.5, order=2)[0] == pytest.approx(2.0)


def make_p(rng, slope: dict[str, float], n_faces: int = 40, curvature: float = 0.0,
           side_shift: dict[str, float] | None = None, sd_face: float = 0.1,
           sd_noise: float = 0.01) -> xr.DataArray:
    """p[face, side, strength] = 0.7 + u_face + shift_side + slope_side·a + curvature·a² + ε."""
    sides = list(slope)
    shift = side_shift or dict.fromkeys(sides, 0.0)
    u = rng.normal(0, sd_face, n_faces)
    vals = np.empty((n_faces, len(sides), len(GRID)))
    for s, side in enumerate(sides):
        for a, x in enumerate(GRID):
            vals[:, s, a] = (0.7 + u + shift[side] + slope[side] * x + curvature * x * x
                             + rng.normal(0, sd_noise, n_faces))
    return xr.DataArray(vals, dims=("face", "side", "strength"),
                        coords={"face": np.arange(n_faces), "side": sides, "strength": GRID})


def test_derivative_tests_detect_linear_drop(rng):
    p = make_p(rng, {"left": -0.3, "right": 0.0, "control": -0.1}, sd_noise=0.005)
    emotion = xr.DataArray(np.array(["happiness", "fear", "neutral", "sadness"] * 10),
                           dims="face", coords={"face": p["face"].values})
    table = derivative_tests(p, emotion, [0.0, 0.5, 1.0])
    assert len(table) == 3 * 3 * (4 + 1)
    row = table.set_index(["side", "emotion", "point"])
    for x0 in (0.0, 0.5, 1.0):
        left = row.loc[("left", "all", x0)]
        # finite differences on close nodes amplify noise: judge by the SE
        assert abs(left["mean"] + 0.3) < 4 * left["se"] and left["se"] < 0.03
        assert left["p_ttest"] < 1e-6 and left["p_wilcoxon"] < 1e-4
        assert left["n"] == 30  # neutral faces are left out of the pooled row
        assert row.loc[("right", "all", x0), "p_ttest"] > 1e-3
    assert row.loc[("left", "happiness", 0.0), "n"] == 10
    assert row.loc[("left", "all", 0.0), "nodes"] == "0,0.1,0.25"


def test_derivative_tests_degenerate_cells_are_nan():
    vals = np.tile(np.array([0.8, 0.8, 0.8, 0.8, 0.8]), (6, 1, 1))  # nothing changes
    p = xr.DataArray(vals, dims=("face", "side", "strength"),
                     coords={"face": np.arange(6), "side": ["left"], "strength": GRID})
    table = derivative_tests(p, ["neutral"] * 6, [0.5], pooled=None)
    assert len(table) == 1
    assert table.loc[0, "mean"] == 0 and table.loc[0, "frac_zero"] == 1.0
    assert np.isnan(table.loc[0, "p_ttest"]) and np.isnan(table.loc[0, "p_wilcoxon"])


def test_cluster_ols_recovers_coefficients_and_clusters(rng):
    p = make_p(rng, {"left": -0.2, "right": -0.2, "control": -0.2}, curvature=0.05,
               side_shift={"left": -0.05, "right": -0.02, "control": 0.0})
    table = cluster_ols(p).set_index("term")
    assert list(table.index) == ["Intercept", "side[left]", "side[right]", "a", "a^2"]
    expected = {"Intercept": 0.7, "side[left]": -0.05, "side[right]": -0.02, "a": -0.2,
                "a^2": 0.05}
    for term, value in expected.items():
        assert table.loc[term, "coef"] == pytest.approx(value, abs=0.05 if term == "Intercept"
                                                        else 0.01)
        assert table.loc[term, "ci_low"] <= table.loc[term, "coef"] <= table.loc[term, "ci_high"]
    assert table.loc["side[left]", "p"] < 1e-6
    assert (table["n_obs"] == 40 * 3 * 5).all() and (table["n_clusters"] == 40).all()
    # random face intercepts: the clustered SE of the intercept is much larger than the naive
    # one, and for within-face terms (side, a) it is smaller (the face effect is removed)
    assert table.loc["Intercept", "se"] > 1.3 * table.loc["Intercept", "se_naive"]
    assert table.loc["side[left]", "se"] < 0.5 * table.loc["side[left]", "se_naive"]


def test_cluster_ols_slope_formula_and_nan(rng):
    p = make_p(rng, {"left": -0.3, "right": -0.1, "control": -0.1})
    p[0, 0, 2] = np.nan
    table = cluster_ols(p, SLOPE_FORMULA).set_index("term")
    assert table.loc["a:side[left]", "coef"] == pytest.approx(-0.2, abs=0.01)
    assert table.loc["a:side[right]", "coef"] == pytest.approx(0.0, abs=0.01)
    assert (table["n_obs"] == 40 * 3 * 5 - 1).all()
