"""The test family as tables: one row per test, the omnibus, and headline counts."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from facesym.stats.family import FAMILY_DIMS
from facesym.vocab import COMPARISON, COMPARISONS

OMNIBUS_PREFIX = "omnibus_"
HEADLINE_COLUMNS = ("comparison", "lower", "higher", "tested", "mean_diff")


def omnibus_table(tests: xr.Dataset) -> pd.DataFrame:
    """Per classifier × comparison: the omnibus mean difference and its max-T p-value, and
    whether the classifier's output is significantly lower.

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> table = omnibus_table(effect_tests({"clf": cube}, n_flips=1000))
    >>> table.set_index("comparison")["significantly_lower"].to_dict()["left"]
    True
    """
    names = [OMNIBUS_PREFIX + m for m in ("mean_diff", "p_perm", "p_maxT")]
    table = tests[names].to_dataframe().reset_index()
    table = table.rename(columns=lambda c: c.removeprefix(OMNIBUS_PREFIX))
    table["significantly_lower"] = ((table["p_maxT"] < tests.attrs["alpha"])
                                    & (table["mean_diff"] < 0))
    return table


def summary_table(tests: xr.Dataset) -> pd.DataFrame:
    """One row per classifier × emotion × comparison, sorted, for CSV/Markdown.

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> table = summary_table(effect_tests({"clf": cube}, n_flips=1000))
    >>> len(table), list(table.columns[:4])
    (15, ['classifier', 'emotion', 'comparison', 'n'])
    """
    per_test = [v for v in tests.data_vars if not str(v).startswith(OMNIBUS_PREFIX)]
    table = tests[per_test].to_dataframe().reset_index()
    table["n"] = table["n"].astype(int)
    return table.sort_values(list(FAMILY_DIMS)).reset_index(drop=True)


def headline_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per comparison: how many tested classifier × emotion cells are significantly lower or
    higher (the sign of the mean difference), how many were tested, and their mean difference.
    A comparison without any tested cell has no row.

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> counts = headline_counts(summary_table(effect_tests({"clf": cube}, n_flips=1000)))
    >>> counts.set_index("comparison").loc["left", ["lower", "higher", "tested"]].tolist()
    [2, 0, 2]
    """
    tested = table.dropna(subset=["p"])
    rows = []
    for comparison, cells in tested.groupby(COMPARISON, sort=False):
        significant = cells["significant"].astype(bool)
        rows.append({"comparison": comparison,
                     "lower": int((significant & (cells["mean_diff"] < 0)).sum()),
                     "higher": int((significant & (cells["mean_diff"] > 0)).sum()),
                     "tested": len(cells), "mean_diff": float(cells["mean_diff"].mean())})
    order = {c: i for i, c in enumerate(COMPARISONS)}
    return (pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
            .sort_values(COMPARISON, key=lambda c: c.map(order)))
