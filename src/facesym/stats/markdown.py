"""The statistics' tables as Markdown, for ``stats/summary.md`` and
``stats/manipulation_check.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facesym.stats.family import DEFAULT_EQUIVALENCE_MARGIN, DEFAULT_FLOOR
from facesym.stats.tables import headline_counts
from facesym.stats.verdict import (
    LATERALITY_CAUSES,
    NO_EFFECT,
    UNDECIDED,
    classifier_lines,
    laterality_cause,
    rules_markdown,
)
from facesym.vocab import CONTROL, HEMIFACES, is_contrast, is_laterality

#: columns of the per-test table in summary.md
SUMMARY_COLUMNS = ("classifier", "emotion", "comparison", "n", "mean_p_ref", "mean_diff",
                   "ci_low", "ci_high", "hl_shift", "hl_low", "hl_high", "frac_zero", "p",
                   "p_adj", "significant", "p_maxT", "d_z", "rbc", "floor")
P_COLUMNS = ("p", "p_adj", "p_maxT")  # small values in scientific notation
PRIMARY = "significant_maxT"  # max-T on t at α: the primary method


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


def _with_primary(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``table`` with the primary method's decision (tables from before it had a column)."""
    if PRIMARY in table:
        return table
    return table.assign(**{PRIMARY: table["p_maxT"] < alpha})


def _both_ways(cells: pd.DataFrame, by: str) -> str:
    """'k lower, j higher of N' among the tested ``cells`` by the boolean column ``by``."""
    tested = cells.dropna(subset=["p"])
    significant = tested[by].astype(bool)
    lower = int((significant & (tested["mean_diff"] < 0)).sum())
    higher = int((significant & (tested["mean_diff"] > 0)).sum())
    return f"{lower} lower, {higher} higher of {len(tested)}"


def _count_lines(table: pd.DataFrame, correction: str) -> list[str]:
    """Per comparison and per classifier: significant cells in both directions, by both
    methods, with the control beside the one-sided loss."""
    primary = headline_counts(table, by=PRIMARY).set_index("comparison")
    secondary = headline_counts(table, by="significant").set_index("comparison")
    one_sided = table[table["comparison"].isin(HEMIFACES)]
    control = table[table["comparison"] == CONTROL]
    lines = []
    if len(one_sided.dropna(subset=["p"])):
        lines += [f"Per-emotion tests, max-T (primary): one-sided (left/right) "
                  f"{_both_ways(one_sided, PRIMARY)}"
                  + (f"; symmetric control {_both_ways(control, PRIMARY)}"
                     if len(control) else "")
                  + ". A one-sided drop says something about symmetry only beyond the "
                  "control's drop: that is what the side − control contrasts test.", ""]
    lines += [f"| comparison | max-T: lower | max-T: higher | {correction} Wilcoxon: lower "
              "| higher | tested | at floor | mean d |",
              "|---|---|---|---|---|---|---|---|"]
    for row in primary.itertuples():
        lines.append(f"| {row.Index} | {row.lower} | {row.higher} "
                     f"| {int(secondary.loc[row.Index, 'lower'])} "
                     f"| {int(secondary.loc[row.Index, 'higher'])} | {row.tested} "
                     f"| {row.floor} | {row.mean_diff:+.3f} |")
    groups = [("one-sided", one_sided), ("control", control),
              ("side − control", table[table["comparison"].map(is_contrast)]),
              ("left − right", table[table["comparison"].map(is_laterality)])]
    groups = [(label, cells) for label, cells in groups if len(cells)]
    lines += ["", "Per classifier (max-T):", "",
              "| classifier | " + " | ".join(label for label, _ in groups) + " |",
              "|---|" + "---|" * len(groups)]
    for name in dict.fromkeys(table["classifier"]):
        lines.append(f"| {name} | " + " | ".join(
            _both_ways(cells[cells["classifier"] == name], PRIMARY) for _, cells in groups)
            + " |")
    return [*lines, ""]


def _agreement_lines(table: pd.DataFrame, alpha: float) -> list[str]:
    """How often each interval agrees with the uncorrected Wilcoxon test about 0."""
    tested = table.dropna(subset=["p"])
    if not len(tested) or "hl_low" not in tested:
        return []
    rejects = tested["p"] < alpha

    def disagree(low: str, high: str) -> int:
        excludes = (tested[low] > 0) | (tested[high] < 0)
        return int((excludes != rejects).sum())

    return [f"Interval and uncorrected Wilcoxon test (p < {alpha}) disagree about 0 in "
            f"{disagree('ci_low', 'ci_high')} of {len(tested)} tests for the BCa CI of the "
            f"mean (another quantity), in {disagree('hl_low', 'hl_high')} for the "
            "Hodges–Lehmann CI (ties, zeros and the discreteness of the exact test only).", ""]


def _omnibus_lines(omnibus: pd.DataFrame) -> list[str]:
    """Per comparison: classifiers by direction, and every classifier's omnibus with its CI."""
    n_classifiers = omnibus["classifier"].nunique()
    lines = ["Omnibus per classifier (mean over the non-neutral emotions above the floor; "
             "max-T over classifiers × comparisons; 95 % CI: cluster bootstrap over faces, "
             "stratified by emotion).", "",
             "| comparison | classifiers lower | higher | no effect | undecided "
             "| mean d [95 % CI] per classifier |",
             "|---|---|---|---|---|---|"]
    for comparison, cells in omnibus.groupby("comparison", sort=False):
        means = ", ".join(f"{c.classifier} {c.mean_diff:+.3f} [{c.ci_low:+.3f}, "
                          f"{c.ci_high:+.3f}]" for c in cells.itertuples())
        lines.append(f"| {comparison} | {int(cells['significantly_lower'].sum())} of "
                     f"{n_classifiers} | {int(cells['significantly_higher'].sum())} of "
                     f"{n_classifiers} | {int((cells['direction'] == NO_EFFECT).sum())} "
                     f"| {int((cells['direction'] == UNDECIDED).sum())} | {means} |")
    return [*lines, ""]


def laterality_lines(report: pd.DataFrame) -> list[str]:
    """The summary's laterality section from :func:`facesym.laterality.study_laterality`:
    per classifier left − right, left flipped − right and the classifier part, each with its
    CI, and what the laterality is due to; or, without the flip control, how to run it."""
    lines = ["## Laterality: stimulus or classifier?", ""]
    ran = report[report["flip_control"].astype(bool)]
    if not len(ran):
        return [*lines,
                "The image-flip control was not run: the classify cubes hold no `prob_flipped` "
                "(`classify.flip: none`), so a left − right difference cannot be split into a "
                "classifier part and a stimulus part. Set `classify: {flip: laterality}` (the "
                "default) and re-run: every classifier job re-runs, scoring the untouched and "
                "the largest-strength left and right images also mirrored (about a fifth more "
                "classify time), then the statistics.", ""]
    margin = float(ran["margin"].iloc[0])
    lines += [
        "Each left-intervened image was also scored mirrored left-right (face box mirrored "
        "with it). Per face at a = max, L = p_left − p_right splits exactly into the "
        "**classifier** part C = p_left − p_left,flipped (how much mirroring the same image "
        "changes the output; 0 for a flip-invariant classifier) and the **stimulus** part "
        "S = p_left,flipped − p_right (two images that would be identical if the rendered "
        "faces were mirror-symmetric: S = L when the classifier is flip-invariant). Omnibus "
        "over the non-neutral emotions above the floor, 95 % percentile CI of a bootstrap of "
        "faces within emotions (`stats/laterality.csv`). Attribution: *none* when L's CI "
        f"lies inside ±{margin:g}, *undecided* when it contains 0; else a part counts when "
        "its CI excludes 0 with L's sign, and one part carrying ≥ 2/3 of L names the cause "
        "(*classifier* or *stimulus*), both counting → *both*. |g0| is the mean absolute "
        "flip gap on the untouched (a = 0) left image.", "",
        "| classifier | left − right L | left flipped − right S | classifier part C "
        "| mean abs(g0) | due to |",
        "|---|---|---|---|---|---|"]
    for _, r in report.iterrows():
        if not r["flip_control"]:
            lines.append(f"| {r['classifier']} | – | – | – | – | {laterality_cause(r)} |")
            continue
        cells = [f"{r[k]:+.3f} [{r[f'{k}_low']:+.3f}, {r[f'{k}_high']:+.3f}]"
                 if np.isfinite(r[k]) else "n/a"
                 for k in ("lateral", "stimulus_part", "classifier_part")]
        gap = f"{r['abs_flip_gap_a0']:.3f}" if np.isfinite(r["abs_flip_gap_a0"]) else "n/a"
        cause = LATERALITY_CAUSES.get(str(r["attribution"]), str(r["attribution"]))
        lines.append(f"| {r['classifier']} | {' | '.join(cells)} | {gap} | {cause} |")
    return [*lines, ""]


def summary_markdown(table: pd.DataFrame, alpha: float, correction: str,
                     omnibus: pd.DataFrame | None = None, *, floor: float | None = None,
                     equivalence_margin: float | None = None,
                     laterality: pd.DataFrame | None = None) -> str:
    """The Markdown summary of :func:`~facesym.stats.summary_table`: one line per classifier
    with the verdict (when ``omnibus``, :func:`~facesym.stats.omnibus_table`, is given), how
    to read it, counts in both directions by both methods, the omnibus, the laterality
    section (when ``laterality``, :func:`facesym.laterality.study_laterality`, is given;
    the verdict lines then name what the laterality is due to) and every test.
    ``floor`` and ``equivalence_margin`` default to the values the tests were run with (the
    tables' ``attrs``), else to the package defaults.

    >>> from facesym.stats import effect_tests, omnibus_table, summary_table, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> tests = effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000)
    >>> md = summary_markdown(summary_table(tests), 0.05, "holm", omnibus_table(tests))
    >>> print(md.splitlines()[0])
    # Symmetry intervention: effect on intended-class probability
    >>> print(md.splitlines()[2][:70])
    - **clf**: lower output for reduced symmetry beyond the loss of expres
    >>> "sion: **mixed**." in md.splitlines()[2]  # left lower, right no effect
    True
    """
    attrs = {**table.attrs, **(omnibus.attrs if omnibus is not None else {})}
    floor = attrs.get("floor", DEFAULT_FLOOR) if floor is None else floor
    margin = (attrs.get("equivalence_margin", DEFAULT_EQUIVALENCE_MARGIN)
              if equivalence_margin is None else equivalence_margin)
    table = _with_primary(table, alpha)
    lines = ["# Symmetry intervention: effect on intended-class probability", ""]
    if omnibus is not None and len(omnibus):
        lines += [*classifier_lines(omnibus, table, laterality), ""]
    lines += [
        *rules_markdown(alpha, margin, floor),
        f"Tests: per classifier × emotion × comparison, {int(table['p'].notna().sum())} "
        f"tested; {correction} over the family for the Wilcoxon test. d = p(a=max) − p(0) "
        "for a side; for *_vs_control, d = p_side(a=max) − p_control(a=max): one-sided vs "
        "symmetric loss of the same total expression (negative = asymmetry itself lowers the "
        "output); for left_vs_right, d = p_left(a=max) − p_right(a=max) (laterality).",
        "",
        *_untested_lines(table),
        *_count_lines(table, correction),
        *_agreement_lines(table, alpha),
    ]
    if omnibus is not None and len(omnibus):
        lines += _omnibus_lines(omnibus)
    if laterality is not None:
        lines += laterality_lines(laterality)
    columns = [c for c in SUMMARY_COLUMNS if c in table]
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
