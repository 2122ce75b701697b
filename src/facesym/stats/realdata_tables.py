"""The real-data check over a photo cube: group differences, GCM, composites; tables, Markdown.

A photo cube (:func:`facesym.photos.manifest.photo_cube`) holds ``prob[image, classifier,
label]``, ``composite_prob[image, classifier, side, strength, label]`` and the asymmetry scores
``asym_2d[image]`` / ``asym_mirror[image]``, with per-image coordinates subject, group, emotion
(the expression label) and optionally grade. Each function here returns one CSV-able table;
:func:`realdata_markdown` puts them together with what each test answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from facesym.stats.paired import METRICS, bootstrap_seed, intended_probability, paired_test
from facesym.stats.realdata import (
    GROUP_COLUMNS,
    POOLED,
    SUBJECT,
    choose_groups,
    group_difference,
    image_coords,
)
from facesym.stats.realdata_gcm import GCM_COLUMNS, gcm_test, residual_correlations
from facesym.vocab import CLASSIFIER, EMOTION, SIDE, STRENGTH

#: the image scores the branch measures, and the one the GCM conditions by default
ASYMMETRY_SCORES = ("asym_2d", "asym_mirror")
#: what the group-difference table calls a classifier's intended-class probability
P_INTENDED = "p_intended"


def intended(ds: xr.Dataset, classifier: str, var: str = "prob") -> xr.DataArray:
    """p(intended class)[image, …] of one classifier, from ``ds[var]`` and ``ds.emotion``."""
    prob = ds[var].sel({CLASSIFIER: classifier}, drop=True)
    prob = prob.transpose(*[d for d in prob.dims if d != "label"], "label")
    return intended_probability(prob, ds[EMOTION])


def group_table(ds: xr.Dataset, *, reference: str | None = None, n_permutations: int = 9999,
                n_resamples: int = 4999, seed: int = 0) -> pd.DataFrame:
    """Group differences within each label (and pooled) of every classifier's intended-class
    probability and of each asymmetry score (:func:`~facesym.stats.realdata.group_difference`).

    Columns: response (``p_intended`` or a score name), classifier ("" for a score), then
    :data:`~facesym.stats.realdata.GROUP_COLUMNS`, reference and other group.
    """
    c = image_coords(ds)
    ref, oth = choose_groups(c["group"], reference)
    jobs = [(P_INTENDED, str(k), intended(ds, str(k)).values) for k in ds[CLASSIFIER].values]
    jobs += [(s, "", ds[s].values) for s in ASYMMETRY_SCORES if s in ds]
    frames = []
    for response, clf, y in jobs:
        t = group_difference(y, c[SUBJECT], c["group"], c[EMOTION], reference=ref,
                             n_permutations=n_permutations, n_resamples=n_resamples,
                             seed=seed, names=(response, clf))
        t.insert(0, "classifier", clf)
        t.insert(0, "response", response)
        frames.append(t.assign(reference=ref, other=oth))
    cols = ["response", "classifier", *GROUP_COLUMNS, "reference", "other"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def gcm_table(ds: xr.Dataset, *, scores: Sequence[str] = ASYMMETRY_SCORES,
              use_grade: bool = False, n_resamples: int = 9999, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GCM test of p(intended) ⫫ score | label (and grade with ``use_grade``) per classifier ×
    score, and the per-label residual correlations (long table: classifier, score, emotion)."""
    c = image_coords(ds)
    grade = c.get("grade") if use_grade else None
    if use_grade and grade is None:
        raise ValueError("use_grade needs a 'grade' coordinate in the photo cube")
    tests, corrs = [], []
    for clf in (str(k) for k in ds[CLASSIFIER].values):
        y = intended(ds, clf).values
        for score in (s for s in scores if s in ds):
            x = ds[score].values
            res = gcm_test(y, x, c[EMOTION], c[SUBJECT], grade=grade, n_resamples=n_resamples,
                           seed=seed, names=(clf, score))
            tests.append({"classifier": clf, "score": score, **res})
            rc = residual_correlations(y, x, c[EMOTION], c[SUBJECT], grade)
            corrs.append(rc.assign(classifier=clf, score=score))
    test_cols = ["classifier", "score", *GCM_COLUMNS]
    corr_cols = ["classifier", "score", "emotion", "n_images", "n_subjects", "residual_r"]
    return (pd.DataFrame(tests, columns=test_cols),
            pd.concat(corrs, ignore_index=True)[corr_cols] if corrs
            else pd.DataFrame(columns=corr_cols))


def composite_table(ds: xr.Dataset, *, seed: int = 0) -> pd.DataFrame:
    """Paired tests of each photo against its 2D mirror composites: d = p(composite) −
    p(original) of the intended class, per classifier × side × strength (> 0), with the
    statistics of :func:`~facesym.stats.paired.paired_test` twice: over images (``unit`` =
    image; images of one subject are not independent, so its p-values are optimistic when
    subjects have several photos) and over subject means of d (``unit`` = subject: the honest
    one)."""
    rows = []
    subject = np.asarray([str(s) for s in ds[SUBJECT].values])  # also a Zarr StringDType
    if "composite_prob" not in ds:
        return pd.DataFrame(columns=["classifier", SIDE, STRENGTH, "unit", *METRICS])
    for clf in (str(k) for k in ds[CLASSIFIER].values):
        p0 = intended(ds, clf).values
        pc = intended(ds, clf, "composite_prob")
        for side in (str(s) for s in pc[SIDE].values):
            for a in (float(a) for a in pc[STRENGTH].values if a > 0):
                d_img = pc.sel({SIDE: side, STRENGTH: a}).values - p0
                ok = np.isfinite(d_img)
                frame = pd.DataFrame({"s": subject[ok], "d": d_img[ok], "r": p0[ok]})
                per_subject = frame.groupby("s")[["d", "r"]].mean()
                for unit, d, ref in (("image", frame["d"].to_numpy(), frame["r"].to_numpy()),
                                     ("subject", per_subject["d"].to_numpy(),
                                      per_subject["r"].to_numpy())):
                    row = paired_test(d, ref, seed=bootstrap_seed(
                        seed, "realdata", "composite", clf, side, f"{a:g}", unit))
                    rows.append({"classifier": clf, SIDE: side, STRENGTH: a, "unit": unit,
                                 **row})
    return pd.DataFrame(rows, columns=["classifier", SIDE, STRENGTH, "unit", *METRICS])


def _fmt(v: object) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.3g}"
    return str(v)


def _md(table: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |"
              for row in table[cols].itertuples(index=False)]
    return "\n".join(lines)


def realdata_markdown(groups: pd.DataFrame, gcm: pd.DataFrame, correlations: pd.DataFrame,
                      composites: pd.DataFrame, bad_rows: pd.DataFrame | None = None,
                      provenance: str = "") -> str:
    """The real-data check as Markdown: each table led by the question its test answers.

    >>> md = realdata_markdown(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    >>> md.splitlines()[0]
    '# Real-photo check'
    """
    ref = groups["reference"].iloc[0] if len(groups) else "reference"
    oth = groups["other"].iloc[0] if len(groups) else "other"
    out = ["# Real-photo check", ""]
    if provenance:
        out += [provenance, ""]
    out += [
        "## Group differences within each expression label", "",
        f"*Do outputs (and asymmetry scores) differ between {oth} and {ref} subjects showing "
        "the same expression?* `mean_diff` = mean over "
        f"{oth} subjects − mean over {ref} subjects of each subject's mean within the label; "
        "`pooled` weights the labels by n_ref·n_oth/(n_ref+n_oth). `p_perm`: permutation test "
        "that permutes group labels between subjects (a subject's images move together) within "
        "strata of subjects with the same labels; `p_holm` corrects over labels. CI: cluster "
        "bootstrap over subjects within group.", "",
        _md(groups, ["response", "classifier", "emotion", "n_subjects_ref",
                     "n_subjects_other", "mean_ref", "mean_other", "mean_diff", "ci_low",
                     "ci_high", "p_perm", "p_holm", "reason"]), "",
        "## Does the output depend on measured asymmetry, given the expression?", "",
        "*Is the intended-class probability conditionally independent of the image's "
        "asymmetry score given the expression label?* Generalised covariance measure (Shah & "
        "Peters 2020): mean product of the residuals of both on the label, with a "
        "subject-cluster-robust variance (`p_asymptotic`, t with G−1 df) and a wild cluster "
        "bootstrap (`p_wild`, Rademacher signs per subject). `naive_r` ignores the label and "
        "is shown only for contrast: it is non-zero whenever both depend on the label.", "",
        _md(gcm, ["classifier", "score", "n_images", "n_subjects", "statistic",
                  "p_asymptotic", "p_wild", "residual_r", "naive_r"]), "",
        "Residual correlations per label:", "",
        _md(correlations, ["classifier", "score", "emotion", "n_images", "n_subjects",
                           "residual_r"]), "",
        "## Photos against their 2D mirror composites", "",
        "*Does making a photo's face symmetric (both hemifaces from one side) change the "
        "intended-class output?* d = p(composite) − p(original), paired per photo; Wilcoxon "
        "signed-rank (pratt) and t-test. Rows with `unit` = image treat photos as independent "
        "(optimistic when subjects have several); `unit` = subject tests subject means.", "",
        _md(composites, ["classifier", SIDE, STRENGTH, "unit", "n", "mean_p_ref",
                         "mean_diff", "ci_low", "ci_high", "p", "p_ttest", "d_z"]), "",
    ]
    if bad_rows is not None:
        out += ["## Manifest rows skipped", "",
                f"{len(bad_rows)} row(s) skipped, each with its reason:" if len(bad_rows)
                else "None.", ""]
        if len(bad_rows):
            out += [_md(bad_rows, list(bad_rows.columns)), ""]
    return "\n".join(out)


def realdata_tables(ds: xr.Dataset, *, reference: str | None = None,
                    n_permutations: int = 9999, n_resamples: int = 4999,
                    use_grade: bool = False, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every table of the real-data check: groups, gcm, gcm_correlations, composites."""
    gcm, corr = gcm_table(ds, use_grade=use_grade, n_resamples=n_permutations, seed=seed)
    return {"groups": group_table(ds, reference=reference, n_permutations=n_permutations,
                                  n_resamples=n_resamples, seed=seed),
            "gcm": gcm, "gcm_correlations": corr, "composites": composite_table(ds, seed=seed)}


__all__ = ["ASYMMETRY_SCORES", "P_INTENDED", "POOLED", "composite_table", "gcm_table",
           "group_table", "intended", "realdata_markdown", "realdata_tables"]
