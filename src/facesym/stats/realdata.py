"""The real-data check: group differences between subjects within each expression label.

Photos of healthy people and of people with unilateral facial palsy (or any two groups) are
labelled with the expression they show. Within each label ℓ the question is whether a
classifier's intended-class output (or an asymmetry score) differs between the groups. Images of
one subject are not independent, so the unit of every resampling is the **subject**:

- each subject's images of label ℓ are averaged first (every subject weighs the same);
- the effect of label ℓ is Δℓ = mean over ``other``-group subjects − mean over ``reference``-
  group subjects; the pooled effect is Σ wℓ Δℓ / Σ wℓ with wℓ = nℓ,ref · nℓ,oth / (nℓ,ref + nℓ,oth)
  (subject counts: the inverse-variance weight of a difference of means under equal variance);
- the permutation test permutes group labels between subjects (a subject's images move together)
  within strata of subjects photographed with the same set of labels, so every permutation keeps
  each label's group sizes; two-sided p = (1 + #{|Δ*| ≥ |Δ|}) / (B + 1);
- the CI is a percentile cluster bootstrap: subjects are resampled with replacement within their
  group.

Seeds come from names (:func:`~facesym.stats.paired.bootstrap_seed`), so a test keeps its stream
when other classifiers or responses are added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from facesym.stats.paired import bootstrap_seed, correct
from facesym.vocab import CANONICAL_LABELS, EMOTION

#: dimension of a photo cube and the per-image coordinates of the real-data branch
IMAGE = "image"
SUBJECT = "subject"
GROUP = "group"
GRADE = "grade"
#: the row of a group-difference table that pools the labels
POOLED = "pooled"
#: columns of :func:`group_difference`, in order
GROUP_COLUMNS = ("emotion", "n_subjects_ref", "n_subjects_other", "n_images", "mean_ref",
                 "mean_other", "mean_diff", "ci_low", "ci_high", "p_perm", "p_holm",
                 "n_strata", "n_permutations", "reason")


def label_order(labels: Sequence[str]) -> list[str]:
    """Distinct labels, canonical ones first in canonical order, then others sorted.

    >>> label_order(["neutral", "happiness", "smirk", "happiness"])
    ['happiness', 'neutral', 'smirk']
    """
    distinct = {str(x) for x in labels}
    canon = [c for c in CANONICAL_LABELS if c in distinct]
    return canon + sorted(distinct - set(canon))


def choose_groups(groups: Sequence[str], reference: str | None = None) -> tuple[str, str]:
    """(reference, other) of exactly two groups; the reference defaults to 'healthy' when
    present, else the first in sorted order.

    >>> choose_groups(["palsy", "healthy", "palsy"])
    ('healthy', 'palsy')
    >>> choose_groups(["b", "a"], reference="b")
    ('b', 'a')
    """
    distinct = sorted({str(g) for g in groups})
    if len(distinct) != 2:
        raise ValueError(f"the real-data check compares exactly two groups, got {distinct}")
    if reference is None:
        reference = "healthy" if "healthy" in distinct else distinct[0]
    if reference not in distinct:
        raise ValueError(f"reference group {reference!r} is not one of {distinct}")
    return reference, next(g for g in distinct if g != reference)


def subject_label_means(y: np.ndarray, subject: Sequence, group: Sequence, emotion: Sequence,
                        labels: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Per subject × label mean of ``y`` (NaN where a subject has no finite value of a label).

    Returns (means (S, L), image counts (S, L), group of each subject (S,), subjects, labels).
    A subject listed in two groups is an error.
    """
    y = np.asarray(y, dtype=np.float64)
    subject = np.asarray([str(s) for s in subject])
    group = np.asarray([str(g) for g in group])
    emotion = np.asarray([str(e) for e in emotion])
    subjects = sorted(set(subject))
    labels = list(labels) if labels is not None else label_order(emotion)
    s_idx = np.searchsorted(subjects, subject)
    l_pos = {lab: i for i, lab in enumerate(labels)}
    ok = np.isfinite(y) & np.array([e in l_pos for e in emotion], dtype=bool)
    l_idx = np.array([l_pos.get(e, 0) for e in emotion])
    sums = np.zeros((len(subjects), len(labels)))
    counts = np.zeros((len(subjects), len(labels)))
    np.add.at(sums, (s_idx[ok], l_idx[ok]), y[ok])
    np.add.at(counts, (s_idx[ok], l_idx[ok]), 1.0)
    sub_group = np.empty(len(subjects), dtype=object)
    for s, name in enumerate(subjects):
        gs = set(group[subject == name])
        if len(gs) != 1:
            raise ValueError(f"subject {name!r} is in more than one group: {sorted(gs)}")
        sub_group[s] = gs.pop()
    with np.errstate(invalid="ignore"):
        means = sums / counts
    return means, counts, sub_group.astype(str), subjects, labels


def _diff_and_pooled(w_oth: np.ndarray, w_ref: np.ndarray, mz: np.ndarray, present: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Δ per label (B, L) and pooled Δ (B,) for subject weight rows of the two groups."""
    n_o, n_r = w_oth @ present, w_ref @ present
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = (w_oth @ mz) / n_o - (w_ref @ mz) / n_r
        wl = np.where((n_o > 0) & (n_r > 0), n_o * n_r / (n_o + n_r), 0.0)
        pooled = np.nansum(np.where(wl > 0, diff, 0.0) * wl, axis=1) / wl.sum(axis=1)
    return diff, pooled


def _strata(present: np.ndarray) -> list[np.ndarray]:
    """Subjects grouped by the set of labels they were photographed with."""
    keys = [row.tobytes() for row in present.astype(np.uint8)]
    order = sorted(set(keys))
    return [np.flatnonzero(np.array([k == key for k in keys])) for key in order]


def _permuted_groups(is_oth: np.ndarray, strata: list[np.ndarray], n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n, S) 0/1 membership of the ``other`` group, permuted within each stratum."""
    out = np.empty((n, len(is_oth)))
    for idx in strata:
        perm = rng.random((n, len(idx))).argsort(axis=1)
        out[:, idx] = is_oth[idx][perm]
    return out


def _bootstrap_counts(members: np.ndarray, n_subjects: int, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(n, S) how often each subject of ``members`` is drawn when resampling them with
    replacement ``n`` times."""
    counts = np.zeros((n, n_subjects))
    draws = members[rng.integers(0, len(members), size=(n, len(members)))]
    np.add.at(counts, (np.repeat(np.arange(n), len(members)), draws.ravel()), 1.0)
    return counts


def group_difference(y: np.ndarray, subject: Sequence, group: Sequence, emotion: Sequence, *,
                     reference: str | None = None, n_permutations: int = 9999,
                     n_resamples: int = 4999, confidence: float = 0.95, seed: int = 0,
                     names: Sequence[str] = ()) -> pd.DataFrame:
    """Group difference of image values ``y`` within each expression label and pooled, with a
    subject-cluster permutation test stratified by label and a cluster-bootstrap CI (module
    docstring). ``names`` (e.g. response and classifier) seed the resampling. One row per label
    and a last ``pooled`` row; ``p_holm`` is Holm's correction over the labels' p-values.

    >>> rng = np.random.default_rng(0)
    >>> subj = np.repeat([f"s{i}" for i in range(12)], 2)
    >>> grp = np.where(np.repeat(np.arange(12), 2) < 6, "healthy", "palsy")
    >>> emo = np.tile(["happiness", "surprise"], 12)
    >>> y = 0.7 - 0.3 * (grp == "palsy") + rng.normal(0, 0.05, 24)
    >>> t = group_difference(y, subj, grp, emo, n_permutations=999, n_resamples=999)
    >>> t[["emotion", "n_subjects_ref", "n_subjects_other"]].values.tolist()[-1]
    ['pooled', 6, 6]
    >>> bool(t["p_perm"].max() < 0.01), bool(t["ci_high"].iloc[-1] < -0.2)
    (True, True)
    """
    ref, oth = choose_groups(group, reference)
    means, _, sub_group, _, labels = subject_label_means(y, subject, group, emotion)
    present = np.isfinite(means).astype(np.float64)
    mz = np.nan_to_num(means)
    is_oth = (sub_group == oth).astype(np.float64)
    obs_diff, obs_pooled = _diff_and_pooled(is_oth[None], 1 - is_oth[None], mz, present)
    strata = _strata(present)
    rng = np.random.default_rng(bootstrap_seed(seed, "realdata", "group", *names))
    perm_diff = np.empty((n_permutations, len(labels)))
    perm_pooled = np.empty(n_permutations)
    for start in range(0, n_permutations, 2048):
        b = min(2048, n_permutations - start)
        g = _permuted_groups(is_oth, strata, b, rng)
        perm_diff[start:start + b], perm_pooled[start:start + b] = _diff_and_pooled(
            g, 1 - g, mz, present)
    boot_rng = np.random.default_rng(bootstrap_seed(seed, "realdata", "group-ci", *names))
    c_oth = _bootstrap_counts(np.flatnonzero(is_oth == 1), len(is_oth), n_resamples, boot_rng)
    c_ref = _bootstrap_counts(np.flatnonzero(is_oth == 0), len(is_oth), n_resamples, boot_rng)
    boot_diff, boot_pooled = _diff_and_pooled(c_oth, c_ref, mz, present)
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    eps = 1e-12
    rows = []
    for j, lab in enumerate([*labels, POOLED]):
        d = obs_pooled[0] if lab == POOLED else obs_diff[0, j]
        perm = perm_pooled if lab == POOLED else perm_diff[:, j]
        boot = boot_pooled if lab == POOLED else boot_diff[:, j]
        has = present.any(axis=1) if lab == POOLED else present[:, j] > 0
        n_r, n_o = int((has & (is_oth == 0)).sum()), int((has & (is_oth == 1)).sum())
        reason = "" if n_r and n_o else "a group has no subject with this label"
        if not reason and not np.isfinite(d):  # pooled, when no label has both groups
            reason = "no label has subjects of both groups"
        p = np.nan
        low = high = np.nan
        if not reason:
            p = (1 + np.sum(np.abs(perm) >= abs(d) - eps)) / (n_permutations + 1)
            if np.isfinite(boot).sum() > 1:
                low, high = np.nanquantile(boot, q)
        lab_mask = np.ones(len(labels), bool) if lab == POOLED else np.arange(len(labels)) == j
        means_l = means[:, lab_mask]
        rows.append({
            "emotion": lab, "n_subjects_ref": n_r, "n_subjects_other": n_o,
            "n_images": int(np.isin(np.asarray([str(e) for e in emotion]),
                                    np.asarray(labels)[lab_mask]).sum()),
            "mean_ref": float(np.nanmean(means_l[is_oth == 0])) if n_r else np.nan,
            "mean_other": float(np.nanmean(means_l[is_oth == 1])) if n_o else np.nan,
            "mean_diff": float(d), "ci_low": float(low), "ci_high": float(high),
            "p_perm": float(p), "p_holm": np.nan, "n_strata": len(strata),
            "n_permutations": n_permutations, "reason": reason,
        })
    table = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    per_label = table["emotion"] != POOLED
    _, adj = correct(table.loc[per_label, "p_perm"].to_numpy(), 0.05, "holm")
    table.loc[per_label, "p_holm"] = adj
    table.loc[~per_label, "p_holm"] = table.loc[~per_label, "p_perm"]
    table.attrs.update(reference=ref, other=oth)
    return table


def image_coords(ds: xr.Dataset | xr.DataArray) -> dict[str, np.ndarray]:
    """The per-image coordinates of a photo cube: subject, group, emotion (and grade if any)."""
    out = {k: np.asarray(ds[k].values) for k in (SUBJECT, GROUP, EMOTION)}
    if GRADE in ds.coords:
        out[GRADE] = np.asarray(ds[GRADE].values, dtype=np.float64)
    return out
