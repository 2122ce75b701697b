"""The plain answer per classifier: does reduced symmetry lower its output beyond the loss of
expression?

The evidence is each classifier's omnibus symmetry contrasts ``<side>_vs_control`` (mean over
the non-neutral emotions above the floor of p_side(a_max) − p_control(a_max); both lose the same
total expression). Each contrast gets a direction (:func:`contrast_direction`):

- ``lower``: significantly negative by the primary method (max-T on t, p_maxT < α) and its
  cluster-bootstrap CI entirely below 0;
- ``higher``: the same with the opposite sign;
- ``no effect``: the CI inside ±equivalence margin (whatever the p-value);
- ``undecided``: anything else (the CI crosses 0 but is wider than the margin, or the test
  and the CI disagree).

The verdict of a classifier (:func:`verdict`) combines the directions of its contrasts: all
``lower`` → **yes**, all ``higher`` → **opposite**, all ``no effect`` → **no**; definite but
different directions (e.g. left lower, right higher) → **mixed** (a side-dependent answer: see
the laterality); any ``undecided`` otherwise → **undecided at this size**; no contrast (no
control rendered, or every emotion at floor) → **not assessable**.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from facesym.vocab import (
    CONTROL,
    HEMIFACES,
    LEFT,
    LEFT_VS_RIGHT,
    NEUTRAL,
    RIGHT,
    is_contrast,
    vs_control,
)

LOWER, HIGHER, NO_EFFECT, UNDECIDED, MISSING = "lower", "higher", "no effect", "undecided", "n/a"
YES, NO, OPPOSITE, MIXED = "yes", "no", "opposite", "mixed"
UNDECIDED_AT_SIZE, NOT_ASSESSABLE = "undecided at this size", "not assessable"
QUESTION = "lower output for reduced symmetry beyond the loss of expression"
_BY_DIRECTION = {LOWER: YES, HIGHER: OPPOSITE, NO_EFFECT: NO}


def contrast_direction(mean: float, low: float, high: float, p_maxt: float, alpha: float,
                       margin: float) -> str:
    """The direction of one omnibus contrast (module docstring).

    >>> contrast_direction(-0.06, -0.09, -0.03, 0.001, 0.05, 0.05)
    'lower'
    >>> contrast_direction(-0.06, -0.09, -0.03, 0.2, 0.05, 0.05)  # the test disagrees
    'undecided'
    >>> contrast_direction(0.004, -0.01, 0.02, 0.6, 0.05, 0.05)
    'no effect'
    """
    if not np.isfinite(mean):
        return MISSING
    significant = bool(np.isfinite(p_maxt) and p_maxt < alpha)
    if significant and mean < 0 and high < 0:
        return LOWER
    if significant and mean > 0 and low > 0:
        return HIGHER
    if -margin < low and high < margin:
        return NO_EFFECT
    return UNDECIDED


def verdict(directions: Mapping[str, str]) -> str:
    """The verdict from the directions of a classifier's symmetry contrasts (module docstring).

    >>> verdict({"left_vs_control": "lower", "right_vs_control": "lower"})
    'yes'
    >>> verdict({"left_vs_control": "lower", "right_vs_control": "higher"})
    'mixed'
    >>> verdict({"left_vs_control": "lower", "right_vs_control": "undecided"})
    'undecided at this size'
    """
    found = [d for d in directions.values() if d != MISSING]
    if not found:
        return NOT_ASSESSABLE
    definite = {d for d in found if d != UNDECIDED}
    if len(definite) > 1:
        return MIXED
    if len(definite) == 1 and UNDECIDED not in found:
        return _BY_DIRECTION[definite.pop()]
    return UNDECIDED_AT_SIZE


def verdicts(omnibus: pd.DataFrame) -> pd.DataFrame:
    """Per classifier of :func:`~facesym.stats.omnibus_table`: the verdict and the direction
    of each symmetry contrast (``<side>_vs_control`` columns).

    >>> omnibus = pd.DataFrame({"classifier": ["a", "a", "b", "b"],
    ...     "comparison": ["left_vs_control", "right_vs_control"] * 2,
    ...     "direction": ["higher", "higher", "lower", "no effect"]})
    >>> verdicts(omnibus)["verdict"].tolist()
    ['opposite', 'mixed']
    """
    rows = []
    for name, cells in omnibus.groupby("classifier", sort=False):
        contrasts = cells[cells["comparison"].map(is_contrast)]
        directions = dict(zip(contrasts["comparison"], contrasts["direction"], strict=True))
        rows.append({"classifier": name, "verdict": verdict(directions), **directions})
    return pd.DataFrame(rows)


def rules_markdown(alpha: float, margin: float, floor: float) -> list[str]:
    """The verdict rules, the primary method and what each interval estimates, as Markdown."""
    return [
        "**How to read this.** The primary method is the Westfall–Young max-T sign-flip test "
        f"on t (`p_maxT`, family-wise α = {alpha}; one random sign per face shared by every "
        "test, so the dependence between tests is kept); its estimate is the mean difference. "
        "Secondary: the Wilcoxon signed-rank test (pratt) with the configured correction "
        "(`p_adj`, `significant`); its estimate is the Hodges–Lehmann shift. Counts name "
        "both directions and both methods.",
        "",
        "Intervals (95 %): `ci_low`/`ci_high` is the BCa bootstrap CI of the **mean** of one "
        "test, not adjusted for the family; with skewed differences and few faces it covers "
        "less than 95 % (0.83–0.89 measured at n = 30 for lognormal-like data), and it can "
        "disagree with the Wilcoxon test, which is about another quantity. "
        "`hl_low`/`hl_high` is the CI of the **Hodges–Lehmann location shift** "
        "(median of the Walsh averages), obtained by inverting the Wilcoxon test (exact order "
        "statistics for n ≤ 50, normal approximation above): it excludes 0 exactly when the "
        "uncorrected Wilcoxon p is below α (up to ties and zeros). The omnibus CI is the "
        "percentile CI of a cluster bootstrap over faces stratified by emotion, of the mean "
        "over emotions of the per-emotion mean difference; like the BCa CI it is not adjusted "
        "for the family (its max-T p-value is).",
        "",
        f"**Floor.** A classifier × emotion whose mean intended-class probability at a = 0 is "
        f"below {floor:g} (`stats.floor`) has little left to lose; its cells are flagged "
        "`floor`, still tested and listed, and left out of the omnibus and so of the verdict.",
        "",
        f"**Verdict** ({QUESTION}), from the omnibus symmetry contrasts side − control: "
        "a contrast is *lower* when p_maxT < α with its CI below 0, *higher* when p_maxT < α "
        f"with its CI above 0, *no effect* when its CI lies inside ±{margin:g} "
        "(`stats.equivalence_margin`), *undecided* otherwise. **yes** = every contrast lower; "
        "**opposite** = every contrast higher; **no** = every contrast no effect; **mixed** = "
        "definite but different directions by side (see the laterality, left − right); "
        "**undecided at this size** = otherwise; **not assessable** = no control rendered or "
        "every emotion at floor.",
        "",
    ]


def _estimate(row: pd.Series | None) -> str:
    if row is None or not np.isfinite(row["mean_diff"]):
        return "n/a"
    ci = (f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
          if np.isfinite(row["ci_low"]) else " [CI n/a]")
    return f"{row['mean_diff']:+.3f}{ci}"


def _tested(row: pd.Series | None) -> str:
    if row is None or not np.isfinite(row["mean_diff"]):
        return "n/a"
    return f"{_estimate(row)} {row['direction']}, p_maxT {row['p_maxT']:.2g}"


def _floor_text(table: pd.DataFrame, name: str) -> str:
    """'k of E emotions (…)' at floor for classifier ``name``, from the per-test table."""
    if "floor" not in table:
        return "not computed"
    cells = table[(table["classifier"] == name) & (table["emotion"] != NEUTRAL)]
    emotions = list(dict.fromkeys(cells["emotion"]))
    low = list(dict.fromkeys(cells.loc[cells["floor"].astype(bool), "emotion"]))
    one_sided = cells[cells["comparison"].isin(HEMIFACES)]
    text = f"{len(low)} of {len(emotions)} emotions"
    if low:
        text += (f" ({', '.join(low)}; {int(one_sided['floor'].astype(bool).sum())} of "
                 f"{len(one_sided)} one-sided cells), left out")
    return text


#: plain words for :func:`facesym.laterality.study_laterality`'s attributions
LATERALITY_CAUSES = {
    "stimulus": "**stimulus** (the rendered faces differ left vs right)",
    "classifier": "**classifier** (it scores a mirrored image differently)",
    "both": "**both** stimulus and classifier",
    "none": "**none** (no laterality beyond the equivalence margin)",
    "undecided": "**undecided at this size**",
    "not run": "**unknown** (image-flip control not run: classify.flip is false)",
    "not assessable": "**not assessable** (no faces above floor, or no left and right renders)",
}


def _part(row: pd.Series, key: str) -> str:
    return f"{row[key]:+.3f} [{row[f'{key}_low']:+.3f}, {row[f'{key}_high']:+.3f}]"


def laterality_cause(row: pd.Series) -> str:
    """What one classifier's laterality is due to, from its row of
    :func:`facesym.laterality.study_laterality`: the attribution in words, with the
    classifier part C and the stimulus part S (omnibus, 95 % CI) when the flip control ran.

    >>> row = pd.Series({"attribution": "stimulus", "classifier_part": 0.001,
    ...     "classifier_part_low": -0.002, "classifier_part_high": 0.004,
    ...     "stimulus_part": 0.03, "stimulus_part_low": 0.02, "stimulus_part_high": 0.04})
    >>> text = laterality_cause(row)
    >>> text.split(": ")[0]
    'due to **stimulus** (the rendered faces differ left vs right)'
    >>> text.split(": ")[1]
    'classifier part +0.001 [-0.002, +0.004], stimulus part +0.030 [+0.020, +0.040]'
    """
    attribution = str(row["attribution"])
    text = f"due to {LATERALITY_CAUSES.get(attribution, attribution)}"
    if np.isfinite(row["classifier_part"]):
        text += (f": classifier part {_part(row, 'classifier_part')}, stimulus part "
                 f"{_part(row, 'stimulus_part')}")
    return text


def classifier_lines(omnibus: pd.DataFrame, table: pd.DataFrame,
                     laterality: pd.DataFrame | None = None) -> list[str]:
    """One Markdown line per classifier: verdict, one-sided and control effects, symmetry
    contrasts with CI and direction, laterality and floor cells (all omnibus values); with
    ``laterality`` (:func:`facesym.laterality.study_laterality`) what the laterality is due to.

    >>> from facesym.stats import effect_tests, omnibus_table, summary_table, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.1, "right": 0.1, "control": 0.2}, seed=1)
    >>> tests = effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000)
    >>> line = classifier_lines(omnibus_table(tests), summary_table(tests))[0]
    >>> line.split(". ")[0]
    '- **clf**: lower output for reduced symmetry beyond the loss of expression: **opposite**'
    """
    lines = []
    by_cell = {(r["classifier"], r["comparison"]): r for _, r in omnibus.iterrows()}
    answers = verdicts(omnibus).set_index("classifier")["verdict"]
    for name in dict.fromkeys(omnibus["classifier"]):
        def cell(comparison: str, name: str = name) -> pd.Series | None:
            return by_cell.get((name, comparison))

        parts = [f"- **{name}**: {QUESTION}: **{answers[name]}**."]
        effects = [f"{side} {_estimate(cell(side))}" for side in (LEFT, RIGHT)
                   if cell(side) is not None]
        if effects:
            parts.append("One-sided " + ", ".join(effects)
                         + (f"; control {_estimate(cell(CONTROL))}."
                            if cell(CONTROL) is not None else "."))
        contrasts = [f"{side} {_tested(cell(vs_control(side)))}" for side in HEMIFACES
                     if cell(vs_control(side)) is not None]
        if contrasts:
            parts.append("Side − control: " + "; ".join(contrasts) + ".")
        if cell(LEFT_VS_RIGHT) is not None:
            cause = ""
            if laterality is not None and name in set(laterality["classifier"]):
                row = laterality.set_index("classifier").loc[name]
                cause = f"; {laterality_cause(row)}"
            parts.append(f"Laterality left − right: {_tested(cell(LEFT_VS_RIGHT))}{cause}.")
        parts.append(f"Floor: {_floor_text(table, name)}.")
        lines.append(" ".join(parts))
    return lines
