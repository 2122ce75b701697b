"""The statistics' tables as Markdown, for ``stats/summary.md`` and
``stats/manipulation_check.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facesym.stats.tables import headline_counts
from facesym.vocab import HEMIFACES

#: columns of the per-test table in summary.md
SUMMARY_COLUMNS = ("classifier", "emotion", "comparison", "n", "mean_p_ref", "mean_diff",
                   "ci_low", "ci_high", "frac_zero", "p", "p_adj", "significant", "p_maxT",
                   "d_z", "rbc")
P_COLUMNS = ("p", "p_adj", "p_maxT")  # small values in scientific notation


def _cell(column: str, value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if np.isnan(value):
        return "–"
    small = column in P_COLUMNS and value < 1e-3
    return f"{value:.2e}" if small else f"{value:.3f}"


def _untested_lines(table: pd.DataFrame) -> list[str]:
    """One line counting the tests without a p-value, by reason (none when all were tested)."""
    if "untested_reason" not in table:
        return []
    reasons = table.loc[table["p"].isna(), "untested_reason"].value_counts(sort=False)
    if not len(reasons):
        return []
    parts = ", ".join(f"{reason}: {count}" for reason, count in reasons.items())
    return [f"Not testable (NaN p-values): {int(reasons.sum())} tests ({parts}).", ""]


def summary_markdown(table: pd.DataFrame, alpha: float, correction: str,
                     omnibus: pd.DataFrame | None = None) -> str:
    """A compact Markdown summary of :func:`~facesym.stats.summary_table`: headline counts,
    significant drops per classifier, the omnibus (when given) and the per-test table.

    >>> from facesym.stats import effect_tests, summary_table, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> md = summary_markdown(summary_table(effect_tests({"clf": cube}, n_flips=1000)), 0.05,
    ...                       "holm")
    >>> print(md.splitlines()[0])
    # Symmetry intervention: effect on intended-class probability
    >>> "| clf | 2 of 4 |" in md
    True
    """
    one_sided = table[table["comparison"].isin(HEMIFACES)]
    tested = one_sided.dropna(subset=["p"])
    lower = tested[(tested["significant"]) & (tested["mean_diff"] < 0)]
    per_classifier = (lower.groupby("classifier").size()
                      .reindex(table["classifier"].unique(), fill_value=0))
    lines = [
        "# Symmetry intervention: effect on intended-class probability",
        "",
        f"Wilcoxon signed-rank (pratt), two-sided, {correction} over"
        f" {int(table['p'].notna().sum())} tests, α = {alpha}. d = p(a=max) − p(0) for a side;"
        " for *_vs_control, d = p_side(a=max) − p_control(a=max): one-sided vs symmetric loss of"
        " the same total expression (negative = asymmetry itself lowers the output).",
        "",
        f"One-sided tests (left/right) with a significant drop: {len(lower)} of {len(tested)}.",
        "",
        *_untested_lines(table),
        "| comparison | significantly lower | significantly higher | tested | mean d |",
        "|---|---|---|---|---|",
        *[f"| {c.comparison} | {c.lower} | {c.higher} | {c.tested} | {c.mean_diff:+.3f} |"
          for c in headline_counts(table).itertuples()],
        "",
        "| classifier | significant drops (left/right) |",
        "|---|---|",
        *[f"| {name} | {drops} of {int((tested['classifier'] == name).sum())} |"
          for name, drops in per_classifier.items()],
        "",
    ]
    if omnibus is not None and len(omnibus):
        n_classifiers = omnibus["classifier"].nunique()
        lines += [
            "Omnibus per classifier (mean over non-neutral emotions; Westfall–Young max-T over"
            " classifiers × comparisons): how many classifiers significantly lower their output.",
            "",
            "| comparison | classifiers significantly lower | mean d per classifier |",
            "|---|---|---|",
        ]
        for comparison, cells in omnibus.groupby("comparison", sort=False):
            means = ", ".join(f"{c.classifier} {c.mean_diff:+.3f}" for c in cells.itertuples())
            lines.append(f"| {comparison} | {int(cells['significantly_lower'].sum())} of"
                         f" {n_classifiers} | {means} |")
        lines.append("")
    columns = list(SUMMARY_COLUMNS)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for _, test in table[columns].iterrows():
        lines.append("| " + " | ".join(_cell(c, test[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def manipulation_markdown(table: pd.DataFrame, provenance: str) -> str:
    """``stats/manipulation_check.md`` from :func:`~facesym.stats.manipulation_check`'s table:
    recognition rate and mean intended-class probability per emotion × classifier, then the
    provenance line.

    >>> from facesym.stats import manipulation_check, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.1}, n_per_emotion=4)
    >>> md = manipulation_markdown(manipulation_check({"clf": cube}), "facesym test")
    >>> print(md.splitlines()[0])
    # Manipulation check (a = 0): recognition rate per emotion
    >>> md.endswith("Provenance: facesym test\\n")
    True
    """
    def wide(values: str) -> pd.DataFrame:
        return table.pivot(index="emotion", columns="classifier", values=values)

    return ("# Manipulation check (a = 0): recognition rate per emotion\n\n"
            + wide("recognition_rate").to_markdown(floatfmt=".2f") + "\n\n"
            + "## Mean intended-class probability\n\n"
            + wide("mean_p_intended").to_markdown(floatfmt=".3f") + "\n"
            + f"\nProvenance: {provenance}\n")
