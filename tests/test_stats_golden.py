"""The test family against values captured from the pre-refactor ``facesym.stats``.

``tests/fixtures/stats_golden.npz`` was written by running this file as a script
(``python tests/test_stats_golden.py``) on the code of commit 7f70ad3, before the statistics
became a package. Everything but the BCa interval must still match: the bootstrap seeds now
derive from the test's names (classifier, emotion, comparison) instead of its position, so
``ci_low``/``ci_high`` change numerically and are only checked for bracketing the mean.

Since then the family gained the ``left_vs_right`` comparison (which enlarges the max-T
family and so changes every ``p_maxT``) and new columns (Hodges–Lehmann interval, floor flags,
the omnibus CI). :func:`compute` therefore asks for the comparisons of that time
(:data:`LEGACY_COMPARISONS`) and keeps the columns of the tables of that time; the golden cubes
have no cell at floor. The new columns are checked to exist here and for their values in
``tests/test_stats_honest.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

FIXTURE = Path(__file__).parent / "fixtures" / "stats_golden.npz"
LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# (alpha, correction, n_flips, seed): the default flip count (20·m/α) and an explicit one
CASES = {"holm_default_flips": (0.05, "holm", None, 0), "by_500_flips": (0.1, "fdr_by", 500, 7)}
SEEDED = ("ci_low", "ci_high")  # bootstrap intervals: their seeds changed on purpose
LEGACY_COMPARISONS = ("left", "right", "control", "left_vs_control", "right_vs_control")
LEGACY_OMNIBUS = ["classifier", "comparison", "mean_diff", "p_perm", "p_maxT",
                  "significantly_lower"]
LEGACY_COUNTS = ["comparison", "lower", "higher", "tested", "mean_diff"]
#: variables of the test Dataset added since the capture
NEW_VARIABLES = ("hl_shift", "hl_low", "hl_high", "significant_maxT", "mean_p0", "floor",
                 "omnibus_ci_low", "omnibus_ci_high", "omnibus_n_emotions")
METRICS_CHECKED = ("n", "mean_p_ref", "mean_p_int", "mean_diff", "median_diff", "frac_zero", "W",
                   "p", "p_adj", "significant", "t", "p_ttest", "d_z", "rbc", "p_perm", "p_maxT")


def golden_cubes() -> dict[str, xr.Dataset]:
    """Two classifiers × 24 faces (happiness, sadness, neutral) × 3 sides × 3 strengths,
    with ties, exact zero differences and a null side, from one fixed seed."""
    rng = np.random.default_rng(20240611)
    emotions = ["happiness", "sadness", "neutral"]
    n = 24
    emo = np.array([emotions[i % 3] for i in range(n)])
    sides, strengths = ["left", "right", "control"], [0.0, 0.25, 1.0]
    drops = {"alpha_net": {"left": 0.3, "right": 0.05, "control": 0.1},
             "beta_net": {"left": 0.0, "right": 0.2, "control": 0.02}}
    cubes = {}
    for name, drop in drops.items():
        base = rng.uniform(0.4, 0.9, size=n)
        prob = np.zeros((n, 3, 3, len(LABELS)), dtype=np.float32)
        for s, side in enumerate(sides):
            for a, strength in enumerate(strengths):
                p = base - drop[side] * strength + rng.normal(0, 0.03, n) * strength
                p = np.round(p, 2)  # ties among the differences
                p[emo == "neutral"] = base[emo == "neutral"]
                if name == "beta_net" and side == "control":
                    p[:6] = base[:6]  # exact zeros inside a tested cell
                prob[:, s, a, :] = ((1 - p) / 6)[:, None]
                for i, e in enumerate(emo):
                    prob[i, s, a, LABELS.index(e)] = p[i]
        cubes[name] = xr.Dataset(
            {"prob": (("face", "side", "strength", "label"), prob), "emotion": ("face", emo)},
            coords={"face": np.arange(n), "side": sides, "strength": strengths,
                    "label": list(LABELS)})
    return cubes


def compute(stats) -> dict[str, np.ndarray]:
    """Every array and table the golden file holds, from a statistics module ``stats``."""
    cubes = golden_cubes()
    out: dict[str, np.ndarray] = {}
    for case, (alpha, correction, n_flips, seed) in CASES.items():
        tests = stats.effect_tests(cubes, alpha=alpha, correction=correction, n_flips=n_flips,
                                   seed=seed, comparisons=LEGACY_COMPARISONS, n_resamples=500)
        for var in tests.data_vars:
            if tests[var].dtype.kind in "UOT":  # untested_reason: new, checked elsewhere
                continue
            out[f"{case}/{var}"] = tests[var].transpose(
                "classifier", *[d for d in ("emotion", "comparison") if d in tests[var].dims]
            ).values.astype(np.float64)
        out[f"{case}/n_flips"] = np.array(tests.attrs["n_flips"])
        out[f"{case}/family_size"] = np.array(tests.attrs["family_size"])
        out[f"{case}/coords"] = np.array([",".join(map(str, tests[d].values))
                                          for d in ("classifier", "emotion", "comparison")])
        table = stats.summary_table(tests)
        out[f"{case}/omnibus_csv"] = np.array(
            stats.omnibus_table(tests)[LEGACY_OMNIBUS].to_csv(index=False))
        out[f"{case}/counts_csv"] = np.array(
            stats.headline_counts(table)[LEGACY_COUNTS].to_csv(index=False))
    deriv, ols = stats.dose_response_tables(cubes, [0.0, 0.5, 1.0], 0.05)
    out["derivatives_csv"] = np.array(deriv.to_csv(index=False, float_format="%.12g"))
    out["ols_csv"] = np.array(ols.to_csv(index=False, float_format="%.12g"))
    out["manipulation_csv"] = np.array(stats.manipulation_check(cubes).to_csv(index=False))
    out["confusion"] = stats.confusion_matrices(cubes).values
    return out


def old_manipulation_markdown(table: pd.DataFrame, line: str) -> str:
    """What scripts/manipulation_check.py (commit 7f70ad3) wrote inline, write for write."""
    parts = []
    wide = table.pivot(index="emotion", columns="classifier", values="recognition_rate")
    parts.append("# Manipulation check (a = 0): recognition rate per emotion\n\n")
    parts.append(wide.to_markdown(floatfmt=".2f") + "\n\n")
    parts.append("## Mean intended-class probability\n\n")
    parts.append(table.pivot(index="emotion", columns="classifier", values="mean_p_intended")
                 .to_markdown(floatfmt=".3f") + "\n")
    parts.append(f"\nProvenance: {line}\n")
    return "".join(parts)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def current() -> dict[str, np.ndarray]:
    from facesym import stats

    return compute(stats)


def test_same_keys(golden, current):
    assert set(golden) <= set(current)
    assert set(current) - set(golden) == {f"{case}/{name}" for case in CASES
                                          for name in NEW_VARIABLES}


@pytest.mark.parametrize("case", list(CASES))
def test_tests_match_pre_refactor_values(golden, current, case):
    assert str(current[f"{case}/coords"]) == str(golden[f"{case}/coords"])
    assert int(current[f"{case}/n_flips"]) == int(golden[f"{case}/n_flips"])
    assert int(current[f"{case}/family_size"]) == int(golden[f"{case}/family_size"])
    compared = 0
    for key, want in golden.items():
        if not key.startswith(f"{case}/") or want.dtype.kind in "UO" or want.ndim < 2:
            continue
        if key.removeprefix(f"{case}/") in SEEDED:
            continue
        np.testing.assert_allclose(current[key], want, rtol=1e-12, atol=0, equal_nan=True,
                                   err_msg=key)
        compared += 1
    assert compared == len(METRICS_CHECKED) + 3  # every metric but the CI, and the omnibus
    for table in ("omnibus_csv", "counts_csv"):
        assert str(current[f"{case}/{table}"]) == str(golden[f"{case}/{table}"])


@pytest.mark.parametrize("case", list(CASES))
def test_bca_intervals_changed_only_by_their_seeds(golden, current, case):
    low, high = current[f"{case}/ci_low"], current[f"{case}/ci_high"]
    mean = current[f"{case}/mean_diff"]
    tested = np.isfinite(current[f"{case}/p"])
    assert (low[tested] <= mean[tested]).all() and (mean[tested] <= high[tested]).all()
    # both captures resample 4999 times: same intervals up to Monte Carlo error
    np.testing.assert_allclose(low, golden[f"{case}/ci_low"], atol=0.02, equal_nan=True)
    np.testing.assert_allclose(high, golden[f"{case}/ci_high"], atol=0.02, equal_nan=True)


def _same_table(got: str, want: str, rtol: float = 1e-9) -> None:
    """Equal columns and labels; numbers equal to ``rtol`` (the 12th significant digit of a
    least-squares fit moves with the BLAS kernels of the machine, measured 1e-10)."""
    from io import StringIO

    a, b = pd.read_csv(StringIO(got)), pd.read_csv(StringIO(want))
    assert list(a.columns) == list(b.columns) and a.shape == b.shape
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(b[col]):
            np.testing.assert_allclose(a[col], b[col], rtol=rtol, atol=1e-12, equal_nan=True,
                                       err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col


def test_dose_response_and_manipulation_tables_unchanged(golden, current):
    for key in ("derivatives_csv", "manipulation_csv"):
        assert str(current[key]) == str(golden[key]), key
    _same_table(str(current["ols_csv"]), str(golden["ols_csv"]))
    np.testing.assert_array_equal(current["confusion"], golden["confusion"])


def test_manipulation_markdown_is_what_the_script_wrote():
    from facesym.stats import manipulation_check, manipulation_markdown

    table = manipulation_check(golden_cubes())
    line = "facesym 0.1 · commit abc123 · 2024-06-11"
    assert manipulation_markdown(table, line) == old_manipulation_markdown(table, line)


if __name__ == "__main__":  # capture the golden file from the code checked out now
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    from facesym import stats as _stats

    np.savez(FIXTURE, **compute(_stats))
    print(f"wrote {FIXTURE}")
