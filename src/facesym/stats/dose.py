"""Dose-response tables of every classifier: derivative tests and the clustered OLS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from facesym.dose_response import cluster_ols, derivative_tests, slope_formula
from facesym.stats.paired import correct, intended_probability
from facesym.vocab import CLASSIFIER, EMOTION, FACE, NEUTRAL, SIDE, STRENGTH


def _classifier_first(table: pd.DataFrame) -> pd.DataFrame:
    return table[[CLASSIFIER] + [c for c in table.columns if c != CLASSIFIER]]


def dose_response_tables(cubes: Mapping[str, xr.Dataset], points: Sequence[float],
                         alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Derivative tests at ``points`` (Holm within them) and cluster-robust OLS, per classifier.

    The OLS fits p ~ a + a² + a:side (errors clustered by face) on the non-neutral faces: at
    a = 0 every side is the same render, so sides differ in slope. The reference side is the
    control when it was rendered, else the first side (:func:`facesym.dose_response.
    slope_formula`); with one side there is no side term, on a two-point grid no a² term, and
    without non-neutral faces the OLS table has no rows.

    >>> from facesym.stats import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.1}, seed=1)
    >>> derivatives, ols = dose_response_tables({"clf": cube}, [0.0, 1.0], 0.05)
    >>> ols["term"].tolist()
    ['Intercept', 'a', 'a:side[left]', 'a:side[right]', 'a^2']
    >>> round(float(ols.set_index("term").loc["a:side[left]", "coef"]), 1)  # −0.3 − (−0.1)
    -0.2
    """
    derivatives, ols = [], []
    for name, cube in cubes.items():
        p = intended_probability(cube["prob"].load(), cube[EMOTION].load())
        stencil = min(3, p.sizes[STRENGTH])  # 2-point grids: a plain difference quotient
        derivatives.append(derivative_tests(p, cube[EMOTION], list(points), stencil=stencil)
                           .assign(classifier=name))
        expressive = np.flatnonzero([str(e) != NEUTRAL for e in cube[EMOTION].values])
        formula = slope_formula([str(s) for s in p[SIDE].values],
                                quadratic=p.sizes[STRENGTH] >= 3)  # a² needs 3 strengths
        ols.append(cluster_ols(p.isel({FACE: expressive}), formula=formula)
                   .assign(classifier=name))
    derivative_table = pd.concat(derivatives, ignore_index=True)
    reject, p_adj = correct(derivative_table["p_wilcoxon"].to_numpy(dtype=float), alpha, "holm")
    derivative_table["p_wilcoxon_holm"], derivative_table["significant"] = p_adj, reject
    return (_classifier_first(derivative_table),
            _classifier_first(pd.concat(ols, ignore_index=True)))
