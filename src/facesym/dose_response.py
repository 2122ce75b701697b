"""Dose-response of the intended-class probability p(a) along the intervention strength a.

Two views:
- per face, the local derivative dp/da at chosen strengths from finite-difference weights on
  the actual (possibly non-uniform) grid — Fornberg's algorithm — then one-sample tests of the
  derivatives across faces (:func:`derivative_tests`);
- pooled OLS of p on a + a² + side with standard errors clustered by face
  (:func:`cluster_ols`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import xarray as xr
from scipy import stats as sps

from facesym.vocab import CONTROL, EMOTION, FACE, NEUTRAL, SIDE, STRENGTH

#: p ~ a + a² + side, side treatment-coded with the symmetric control as reference: the side
#: coefficients are left − control and right − control (as the *_vs_control comparisons).
DEFAULT_FORMULA = "p ~ a + I(a ** 2) + C(side, Treatment('control'))"
#: Alternative that respects p_left(0) = p_right(0) = p_control(0): side changes the slope.
SLOPE_FORMULA = "p ~ a + I(a ** 2) + a:C(side, Treatment('control'))"
#: columns of :func:`cluster_ols`'s table
OLS_COLUMNS = ("term", "coef", "se", "t", "p", "ci_low", "ci_high", "se_naive", "n_obs",
               "n_clusters")


def slope_formula(sides: Sequence[str], quadratic: bool = True) -> str:
    """:data:`SLOPE_FORMULA` for the sides a study rendered: the reference level is the control
    when present, else the first side; one side gets no side term, and ``quadratic=False``
    drops a² (not identifiable on a two-point grid).

    >>> slope_formula(["left", "right", "control"]) == SLOPE_FORMULA
    True
    >>> slope_formula(["left", "right"], quadratic=False)
    "p ~ a + a:C(side, Treatment('left'))"
    >>> slope_formula(["left"])
    'p ~ a + I(a ** 2)'
    """
    formula = "p ~ a + I(a ** 2)" if quadratic else "p ~ a"
    if len(sides) < 2:
        return formula
    reference = CONTROL if CONTROL in sides else sides[0]
    return f"{formula} + a:C(side, Treatment('{reference}'))"


def fornberg_weights(x0: float, grid: np.ndarray, order: int) -> np.ndarray:
    """Weights w with f^(order)(x0) ≈ Σ w_i f(grid_i), exact for polynomials of degree
    < len(grid), on arbitrary distinct nodes (Fornberg 1988, Math. Comp. 51:699)."""
    x = np.asarray(grid, dtype=np.float64).ravel()
    n = len(x)
    if order < 0 or order >= n:
        raise ValueError(f"derivative order {order} needs at least {order + 1} nodes, got {n}")
    if len(np.unique(x)) != n:
        raise ValueError("grid nodes must be distinct")
    c = np.zeros((n, order + 1))
    c[0, 0] = 1.0
    c1, c4 = 1.0, x[0] - x0
    for i in range(1, n):
        mn = min(i, order)
        c2, c5, c4 = 1.0, c4, x[i] - x0
        for j in range(i):
            c3 = x[i] - x[j]
            c2 *= c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[i, k] = c1 * (k * c[i - 1, k - 1] - c5 * c[i - 1, k]) / c2
                c[i, 0] = -c1 * c5 * c[i - 1, 0] / c2
            for k in range(mn, 0, -1):
                c[j, k] = (c4 * c[j, k] - k * c[j, k - 1]) / c3
            c[j, 0] = c4 * c[j, 0] / c3
        c1 = c2
    return c[:, order]


def stencil_nodes(grid: np.ndarray, x0: float, stencil: int = 3) -> np.ndarray:
    """Indices (into ``grid``) of the ``stencil`` contiguous sorted nodes used at x0: among the
    windows whose span contains x0, the one with the smallest largest distance to x0 (ties: the
    smaller total distance, then the lower window). Central in the interior of a uniform grid,
    one-sided at the ends."""
    g = np.asarray(grid, dtype=np.float64).ravel()
    if not 1 <= stencil <= len(g):
        raise ValueError(f"stencil {stencil} needs 1 ≤ stencil ≤ {len(g)} grid nodes")
    if not g.min() <= x0 <= g.max():
        raise ValueError(f"x0={x0} lies outside the grid [{g.min()}, {g.max()}]")
    srt = np.argsort(g, kind="stable")
    gs = g[srt]
    best, best_key = 0, (np.inf, np.inf)
    for lo in range(len(gs) - stencil + 1):
        w = gs[lo:lo + stencil]
        if stencil > 1 and not w[0] <= x0 <= w[-1]:
            continue
        dist = np.abs(w - x0)
        key = (float(dist.max()), float(dist.sum()))
        if key < best_key:
            best, best_key = lo, key
    return srt[best:best + stencil]


def local_derivative(values: np.ndarray, grid: np.ndarray, x0: float, order: int = 1,
                     stencil: int = 3) -> np.ndarray:
    """Derivative of ``order`` at x0 of ``values[..., grid]`` from Fornberg weights on the
    ``stencil`` grid nodes nearest x0 (see :func:`stencil_nodes`; exact for polynomials of
    degree < stencil). NaN values propagate."""
    values = np.asarray(values, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64).ravel()
    if values.shape[-1] != len(grid):
        raise ValueError(f"last axis of values ({values.shape[-1]}) ≠ grid size ({len(grid)})")
    idx = stencil_nodes(grid, x0, stencil)
    w = fornberg_weights(x0, grid[idx], order)
    sub = values[..., idx]
    if order >= 1:  # Σw = 0: differences to one node make constant data give exactly 0
        sub = sub - sub[..., :1]
    return sub @ w


def _one_sample(d: np.ndarray, confidence: float) -> dict[str, float]:
    """Mean, SE, t-CI, t-test and Wilcoxon (pratt) of one vector of per-face derivatives."""
    d = d[np.isfinite(d)]
    n = len(d)
    row = {"n": n, "mean": np.nan, "sd": np.nan, "se": np.nan, "ci_low": np.nan,
           "ci_high": np.nan, "t": np.nan, "p_ttest": np.nan, "W": np.nan,
           "p_wilcoxon": np.nan, "frac_zero": np.nan}
    if n == 0:
        return row
    row.update(mean=float(d.mean()), frac_zero=float(np.mean(d == 0)))
    if n < 2:
        return row
    sd = float(d.std(ddof=1))
    se = sd / np.sqrt(n)
    q = sps.t.ppf(0.5 + confidence / 2, n - 1)
    row.update(sd=sd, se=se, ci_low=row["mean"] - q * se, ci_high=row["mean"] + q * se)
    if sd > 1e-12 * max(1.0, float(np.abs(d).max())):
        t = sps.ttest_1samp(d, 0.0)
        row.update(t=float(t.statistic), p_ttest=float(t.pvalue))
    if np.any(d != 0):
        w = sps.wilcoxon(d, zero_method="pratt")
        row.update(W=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return row


def derivative_tests(p: xr.DataArray, emotion: xr.DataArray | Sequence[str] | np.ndarray,
                     points: Sequence[float], *, order: int = 1, stencil: int = 3,
                     confidence: float = 0.95, pooled: str | None = "all",
                     exclude_from_pooled: Sequence[str] = (NEUTRAL,)) -> pd.DataFrame:
    """Per side × emotion × point: the per-face derivative d^order p / da^order at the point
    (Fornberg weights, :func:`local_derivative`), its mean across faces with SE and t-based
    CI, a one-sample t-test and a Wilcoxon signed-rank test (zero_method="pratt") against 0.

    ``p`` is p(intended)[face, side, strength]; ``emotion`` gives each face's emotion (a
    DataArray over ``face`` is aligned by coordinate). With ``pooled`` set, an extra emotion
    row of that name pools the faces of all emotions not in ``exclude_from_pooled``. Columns:
    side, emotion, point, nodes (the strengths used), n, mean, sd, se, ci_low, ci_high, t,
    p_ttest, W, p_wilcoxon, frac_zero. Degenerate cells (no variation) get NaN p-values.
    """
    p = p.transpose(FACE, SIDE, STRENGTH)
    if isinstance(emotion, xr.DataArray) and FACE in emotion.dims and FACE in p.coords:
        emotion = emotion.sel({FACE: p[FACE].values})
    emo = np.asarray([str(e) for e in np.asarray(emotion).ravel()])
    if len(emo) != p.sizes[FACE]:
        raise ValueError("emotion must have one entry per face")
    grid = p[STRENGTH].values.astype(np.float64)
    values = p.values.astype(np.float64)
    groups = [(e, emo == e) for e in dict.fromkeys(emo)]
    if pooled is not None:
        groups.append((pooled, ~np.isin(emo, list(exclude_from_pooled))))
    rows = []
    for x0 in points:
        idx = stencil_nodes(grid, float(x0), stencil)
        deriv = local_derivative(values, grid, float(x0), order=order, stencil=stencil)
        nodes = ",".join(f"{v:g}" for v in grid[idx])
        for side_index, side in enumerate(p[SIDE].values):
            for name, faces in groups:
                rows.append({SIDE: str(side), EMOTION: name, "point": float(x0),
                             "nodes": nodes,
                             **_one_sample(deriv[faces, side_index], confidence)})
    return pd.DataFrame(rows)


def _clean_term(term: str) -> str:
    term = re.sub(r"C\(side(, Treatment\('?\w+'?\))?\)\[T\.(\w+)\]", r"side[\2]", term)
    return term.replace("I(a ** 2)", "a^2")


def cluster_ols(p: xr.DataArray, formula: str = DEFAULT_FORMULA,
                use_t: bool = True) -> pd.DataFrame:
    """OLS of p on a + a² + side (side categorical, **control** = reference level, so
    side[left]/side[right] are differences to the symmetric control) with standard errors
    clustered by face (statsmodels ``cov_type="cluster"``, small-sample corrected; with
    ``use_t`` p-values and CIs use t with G − 1 df, G = number of faces).

    ``p`` is p(intended)[face, side, strength]; every finite cell is one observation. Pass the
    faces to model (e.g. without neutral ones) by selecting them first. Returns one row per
    term: term, coef, se, t, p, ci_low, ci_high, se_naive (the ordinary OLS SE), n_obs,
    n_clusters. ``formula`` may use columns p, a, side, face (e.g. :data:`SLOPE_FORMULA`, or
    :func:`slope_formula` for other sides). No finite observation: a table without rows.

    >>> faces, sides, strengths = 6, ["left", "control"], [0.0, 0.5, 1.0]
    >>> a = np.array(strengths)
    >>> noise = np.random.default_rng(0).normal(0, 0.01, (faces, 2, 3))
    >>> p = xr.DataArray(0.8 - np.stack([0.3 * a, 0.1 * a])[None] + noise,
    ...                  dims=("face", "side", "strength"),
    ...                  coords={"face": range(faces), "side": sides, "strength": strengths})
    >>> fit = cluster_ols(p, formula=slope_formula(sides, quadratic=False)).set_index("term")
    >>> round(float(fit.loc["a:side[left]", "coef"]), 2), int(fit["n_clusters"].iloc[0])
    (-0.2, 6)
    """
    p = p.transpose(FACE, SIDE, STRENGTH)
    df = p.to_dataframe(name="p").reset_index()
    df = df.rename(columns={STRENGTH: "a"})
    df[SIDE] = df[SIDE].astype(str)
    df = df[np.isfinite(df["p"].to_numpy(dtype=np.float64))].reset_index(drop=True)
    if df.empty:  # e.g. a study of neutral faces only: nothing to fit
        return pd.DataFrame(columns=list(OLS_COLUMNS))
    groups = pd.factorize(df[FACE])[0]
    model = smf.ols(formula, data=df)
    naive = model.fit()
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=use_t)
    ci = fit.conf_int()
    out = pd.DataFrame({
        "term": [_clean_term(t) for t in fit.params.index],
        "coef": fit.params.to_numpy(),
        "se": fit.bse.to_numpy(),
        "t": fit.tvalues.to_numpy(),
        "p": fit.pvalues.to_numpy(),
        "ci_low": ci.iloc[:, 0].to_numpy(),
        "ci_high": ci.iloc[:, 1].to_numpy(),
        "se_naive": naive.bse.to_numpy(),
    })
    out["n_obs"] = int(fit.nobs)
    out["n_clusters"] = int(groups.max() + 1) if len(groups) else 0
    return out
