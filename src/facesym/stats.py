"""Paired tests of the intervention's effect on intended-class probability.

For classifier c, emotion e and comparison k the paired difference over faces is
- side k ∈ {left, right, control}: d = p_k(a_max) − p(0) (the raw effect);
- k ∈ {left_vs_control, right_vs_control}: d = p_side(a_max) − p_control(a_max) (symmetry,
  not expression loss: both have the same total expression displacement).
Each gets a Wilcoxon signed-rank test (zero_method="pratt", fraction of zeros reported), a paired
t-test as cross-check, the mean difference with a BCa bootstrap CI, Cohen's d_z and the
matched-pairs rank-biserial correlation; p-values are corrected over the whole family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pingouin as pg
import xarray as xr
from scipy import stats as sps

from facesym.classifiers.base import CANONICAL_LABELS
from facesym.permutation import maxt_signflip, omnibus_differences, required_flips

METRICS = ("n", "mean_p_ref", "mean_p_int", "mean_diff", "ci_low", "ci_high", "median_diff",
           "frac_zero", "W", "p", "p_adj", "significant", "t", "p_ttest", "d_z", "rbc",
           "p_perm", "p_maxT")


def intended_probability(prob: xr.DataArray, emotion: xr.DataArray) -> xr.DataArray:
    """p(intended class) per face, from prob[face, …, label] and emotion[face]."""
    labels = [str(x) for x in prob["label"].values]
    idx = np.array([labels.index(str(e)) for e in emotion.values])
    values = np.take_along_axis(prob.values, idx.reshape(-1, *([1] * (prob.ndim - 1))),
                                axis=-1)[..., 0]
    dims = prob.dims[:-1]
    return xr.DataArray(values, dims=dims, coords={d: prob[d] for d in dims})


def paired_differences(p: xr.DataArray, comparisons: Sequence[str]) -> dict[str, xr.DataArray]:
    """Per comparison the paired difference over faces (see module docstring)."""
    strengths = p["strength"].values
    a_max, a0 = strengths.max(), 0.0
    out = {}
    for comp in comparisons:
        if comp.endswith("_vs_control"):
            side = comp.removesuffix("_vs_control")
            out[comp] = (p.sel(side=side, strength=a_max) - p.sel(side="control", strength=a_max))
        else:
            out[comp] = p.sel(side=comp, strength=a_max) - p.sel(side=comp, strength=a0)
    return out


def bca_interval(d: np.ndarray, confidence: float = 0.95, seed: int = 0,
                 n_resamples: int = 4999) -> tuple[float, float]:
    """BCa bootstrap confidence interval of the mean (NaN when degenerate)."""
    if len(d) < 3 or np.ptp(d) == 0:
        return (float(np.mean(d)), float(np.mean(d))) if len(d) else (np.nan, np.nan)
    res = sps.bootstrap((d,), np.mean, confidence_level=confidence, method="BCa",
                        n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_test(d: np.ndarray, ref: np.ndarray, seed: int = 0) -> dict[str, float]:
    """All statistics of one paired difference vector ``d`` (``ref`` = reference values)."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    row = {m: np.nan for m in METRICS}
    row.update(n=n, mean_p_ref=float(np.mean(ref)), mean_p_int=float(np.mean(ref + d)),
               mean_diff=float(np.mean(d)), median_diff=float(np.median(d)),
               frac_zero=float(np.mean(d == 0)))
    row["ci_low"], row["ci_high"] = bca_interval(d, seed=seed)
    if n < 2 or np.all(d == 0):
        return row  # nothing changed: no test (e.g. neutral faces have no expression to lose)
    w = pg.wilcoxon(d, zero_method="pratt")
    row.update(W=float(w["W_val"].iloc[0]), p=float(w["p_val"].iloc[0]),
               rbc=float(w["RBC"].iloc[0]))
    sd = d.std(ddof=1)
    if sd > 0:
        t = sps.ttest_1samp(d, 0.0)
        row.update(t=float(t.statistic), p_ttest=float(t.pvalue), d_z=float(d.mean() / sd))
    return row


def correct(pvals: np.ndarray, alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Family-wise/false-discovery correction over the finite p-values (NaN stay NaN)."""
    p_adj = np.full(pvals.shape, np.nan)
    reject = np.zeros(pvals.shape, dtype=bool)
    ok = np.isfinite(pvals)
    if ok.any():
        rej, adj = pg.multicomp(pvals[ok], alpha=alpha, method=method)
        p_adj[ok], reject[ok] = adj, rej
    return reject, p_adj


def effect_tests(cubes: Mapping[str, xr.Dataset], alpha: float = 0.05,
                 correction: str = "holm", n_flips: int | None = None,
                 seed: int = 0) -> xr.Dataset:
    """The family of tests over classifier × emotion × comparison, as a Dataset of metrics.

    Besides the Wilcoxon tests and their ``correction``, a Westfall–Young max-T sign-flip test
    (``p_perm`` raw, ``p_maxT`` family-wise) flips the same faces for every test;
    ``n_flips`` defaults to 20·m/α (m tests). A per-classifier omnibus (``omnibus_*``: the
    mean over non-neutral emotions of the per-emotion mean difference) answers "how many
    classifiers lower their output".
    """
    names = list(cubes)
    first = next(iter(cubes.values()))
    emotions = [str(e) for e in dict.fromkeys(first["emotion"].values)
                if str(e) in CANONICAL_LABELS]
    sides = [str(s) for s in first["side"].values]
    comparisons = sides + [f"{s}_vs_control" for s in ("left", "right")
                           if s in sides and "control" in sides]
    table = np.full((len(names), len(emotions), len(comparisons), len(METRICS)), np.nan)
    n_faces = first.sizes["face"]
    per_face = np.full((n_faces, len(names), len(emotions), len(comparisons)), np.nan)
    omni = np.full((n_faces, len(names), len(comparisons)), np.nan)
    for i, name in enumerate(names):
        ds = cubes[name]
        if not np.array_equal(ds["face"].values, first["face"].values):
            raise ValueError(f"classifier cube {name} has other faces than {names[0]}")
        p = intended_probability(ds["prob"].load(), ds["emotion"].load())
        diffs = paired_differences(p, comparisons)
        emotion = np.array([str(e) for e in ds["emotion"].values])
        for k, comp in enumerate(comparisons):
            omni[:, i, k] = omnibus_differences(diffs[comp].values, emotion,
                                                exclude=("neutral",), weighting="emotion")
        for j, emo in enumerate(emotions):
            faces = (ds["emotion"].values == emo)
            for k, comp in enumerate(comparisons):
                d = diffs[comp].values[faces]
                ref = (p.sel(side=comp.split("_vs_")[0], strength=0.0).values[faces]
                       if not comp.endswith("_vs_control")
                       else p.sel(side="control", strength=p["strength"].values.max())
                       .values[faces])
                row = paired_test(d, ref, seed=i * 1000 + j * 10 + k)
                table[i, j, k] = [row[m] for m in METRICS]
                if np.isfinite(row["p"]):
                    per_face[faces, i, j, k] = d
    pcol, acol, scol = METRICS.index("p"), METRICS.index("p_adj"), METRICS.index("significant")
    reject, p_adj = correct(table[..., pcol].ravel(), alpha, correction)
    table[..., acol] = p_adj.reshape(table.shape[:3])
    table[..., scol] = reject.reshape(table.shape[:3])
    family = int(np.isfinite(table[..., pcol]).sum())
    flips = n_flips or required_flips(max(family, 1), alpha)
    p_perm, p_maxt = maxt_signflip(per_face.reshape(n_faces, -1), flips, seed)
    table[..., METRICS.index("p_perm")] = p_perm.reshape(table.shape[:3])
    table[..., METRICS.index("p_maxT")] = p_maxt.reshape(table.shape[:3])
    ds = xr.Dataset(
        {m: (("classifier", "emotion", "comparison"), table[..., q]) for q, m in
         enumerate(METRICS)},
        coords={"classifier": names, "emotion": emotions, "comparison": comparisons},
    )
    ds["significant"] = ds["significant"].astype(bool)
    o_perm, o_maxt = maxt_signflip(omni.reshape(n_faces, -1),
                                   n_flips or required_flips(omni[0].size, alpha), seed + 1)
    dims = ("classifier", "comparison")
    ds["omnibus_mean_diff"] = (dims, np.nanmean(omni, axis=0),
                               {"description": "mean over non-neutral emotions of the mean d"})
    ds["omnibus_p_perm"] = (dims, o_perm.reshape(omni.shape[1:]))
    ds["omnibus_p_maxT"] = (dims, o_maxt.reshape(omni.shape[1:]),
                            {"description": "max-T over classifiers × comparisons"})
    ds.attrs.update(alpha=alpha, correction=correction, family_size=family,
                    test="Wilcoxon signed-rank, zero_method=pratt, two-sided",
                    permutation="Westfall-Young single-step max-T, sign flips of faces "
                                "shared by every test", n_flips=int(flips), seed=int(seed))
    return ds


def omnibus_table(tests: xr.Dataset) -> pd.DataFrame:
    """Per classifier × comparison: the omnibus mean difference and its max-T p-value."""
    df = tests[["omnibus_mean_diff", "omnibus_p_perm", "omnibus_p_maxT"]].to_dataframe()
    df = df.reset_index().rename(columns=lambda c: c.removeprefix("omnibus_"))
    df["significantly_lower"] = (df["p_maxT"] < tests.attrs["alpha"]) & (df["mean_diff"] < 0)
    return df


def summary_table(tests: xr.Dataset) -> pd.DataFrame:
    """One row per classifier × emotion × comparison, sorted, for CSV/Markdown."""
    per_test = [v for v in tests.data_vars if not str(v).startswith("omnibus_")]
    df = tests[per_test].to_dataframe().reset_index()
    df["n"] = df["n"].astype(int)
    return df.sort_values(["classifier", "emotion", "comparison"]).reset_index(drop=True)


def headline_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per comparison: how many tested classifier × emotion cells are significantly lower or
    higher (the sign of the mean difference), and how many were tested."""
    tested = df.dropna(subset=["p"])
    rows = []
    for comp, d in tested.groupby("comparison", sort=False):
        sig = d["significant"].astype(bool)
        rows.append({"comparison": comp, "lower": int((sig & (d["mean_diff"] < 0)).sum()),
                     "higher": int((sig & (d["mean_diff"] > 0)).sum()), "tested": len(d),
                     "mean_diff": float(d["mean_diff"].mean())})
    order = {c: i for i, c in enumerate(["left", "right", "control", "left_vs_control",
                                         "right_vs_control"])}
    return pd.DataFrame(rows).sort_values("comparison", key=lambda c: c.map(order))


def summary_markdown(df: pd.DataFrame, alpha: float, correction: str,
                     omnibus: pd.DataFrame | None = None) -> str:
    """A compact Markdown summary: headline counts and the per-test table."""
    raw = df[df["comparison"].isin(["left", "right"])]
    tested = raw.dropna(subset=["p"])
    lower = tested[(tested["significant"]) & (tested["mean_diff"] < 0)]
    per_clf = lower.groupby("classifier").size().reindex(df["classifier"].unique(), fill_value=0)
    head = headline_counts(df)
    lines = [
        "# Symmetry intervention: effect on intended-class probability",
        "",
        f"Wilcoxon signed-rank (pratt), two-sided, {correction} over {int(df['p'].notna().sum())}"
        f" tests, α = {alpha}. d = p(a=max) − p(0) for a side; for *_vs_control,"
        " d = p_side(a=max) − p_control(a=max): one-sided vs symmetric loss of the same total"
        " expression (negative = asymmetry itself lowers the output).",
        "",
        f"One-sided tests (left/right) with a significant drop: {len(lower)} of {len(tested)}.",
        "",
        "| comparison | significantly lower | significantly higher | tested | mean d |",
        "|---|---|---|---|---|",
        *[f"| {r.comparison} | {r.lower} | {r.higher} | {r.tested} | {r.mean_diff:+.3f} |"
          for r in head.itertuples()],
        "",
        "| classifier | significant drops (left/right) |",
        "|---|---|",
        *[f"| {c} | {n} of {int((tested['classifier'] == c).sum())} |"
          for c, n in per_clf.items()],
        "",
    ]
    if omnibus is not None and len(omnibus):
        n_clf = omnibus["classifier"].nunique()
        lines += [
            "Omnibus per classifier (mean over non-neutral emotions; Westfall–Young max-T over"
            " classifiers × comparisons): how many classifiers significantly lower their output.",
            "",
            "| comparison | classifiers significantly lower | mean d per classifier |",
            "|---|---|---|",
        ]
        for comp, d in omnibus.groupby("comparison", sort=False):
            means = ", ".join(f"{r.classifier} {r.mean_diff:+.3f}" for r in d.itertuples())
            lines.append(f"| {comp} | {int(d['significantly_lower'].sum())} of {n_clf} | "
                         f"{means} |")
        lines.append("")
    cols = ["classifier", "emotion", "comparison", "n", "mean_p_ref", "mean_diff", "ci_low",
            "ci_high", "frac_zero", "p", "p_adj", "significant", "p_maxT", "d_z", "rbc"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, r in df[cols].iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                small = c in ("p", "p_adj", "p_maxT") and v < 1e-3
                cells.append("–" if np.isnan(v) else (f"{v:.2e}" if small else f"{v:.3f}"))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def manipulation_check(cubes: Mapping[str, xr.Dataset]) -> pd.DataFrame:
    """Per classifier × emotion on the untouched (a = 0) renders: how often the intended emotion
    is the top class (recognition rate) and its mean probability."""
    rows = []
    for name, ds in cubes.items():
        prob = ds["prob"].sel(strength=0.0).isel(side=0).load()  # a = 0: every side is the same
        emotion = np.array([str(e) for e in ds["emotion"].values])
        labels = np.array([str(x) for x in prob["label"].values])
        top = labels[np.nanargmax(prob.values, axis=-1)]
        p_int = intended_probability(prob, ds["emotion"]).values
        for emo in dict.fromkeys(emotion):
            sel = emotion == emo
            rows.append({"classifier": name, "emotion": emo, "n": int(sel.sum()),
                         "recognition_rate": float((top[sel] == emo).mean()),
                         "mean_p_intended": float(p_int[sel].mean()),
                         "most_common_prediction": pd.Series(top[sel]).mode().iloc[0]})
        rows.append({"classifier": name, "emotion": "all", "n": len(emotion),
                     "recognition_rate": float((top == emotion).mean()),
                     "mean_p_intended": float(p_int.mean()), "most_common_prediction": ""})
    return pd.DataFrame(rows)


def confusion_matrices(cubes: Mapping[str, xr.Dataset]) -> xr.DataArray:
    """Row-normalised confusion[classifier, emotion, predicted] on the a = 0 renders."""
    names = list(cubes)
    first = cubes[names[0]]
    emotions = list(dict.fromkeys(str(e) for e in first["emotion"].values))
    out = np.zeros((len(names), len(emotions), len(CANONICAL_LABELS)))
    for i, name in enumerate(names):
        ds = cubes[name]
        prob = ds["prob"].sel(strength=0.0).isel(side=0).values
        top = np.nanargmax(prob, axis=-1)
        emotion = np.array([str(e) for e in ds["emotion"].values])
        for j, emo in enumerate(emotions):
            counts = np.bincount(top[emotion == emo], minlength=len(CANONICAL_LABELS))
            out[i, j] = counts / max(1, counts.sum())
    return xr.DataArray(out, dims=("classifier", "emotion", "predicted"),
                        coords={"classifier": names, "emotion": emotions,
                                "predicted": list(CANONICAL_LABELS)})


def dose_response_tables(cubes: Mapping[str, xr.Dataset], points: Sequence[float],
                         alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Derivative tests at ``points`` (Holm within them) and cluster-robust OLS, per classifier.

    OLS fits p ~ a + a² + a:side (control as reference; errors clustered by face) on the
    non-neutral faces: at a = 0 every side is the same render, so sides differ in slope.
    """
    from facesym.dose_response import SLOPE_FORMULA, cluster_ols, derivative_tests

    deriv, ols = [], []
    for name, ds in cubes.items():
        p = intended_probability(ds["prob"].load(), ds["emotion"].load())
        stencil = min(3, p.sizes["strength"])  # 2-point grids: a plain difference quotient
        d = derivative_tests(p, ds["emotion"], list(points), stencil=stencil)
        deriv.append(d.assign(classifier=name))
        keep = np.flatnonzero([str(e) != "neutral" for e in ds["emotion"].values])
        # a² is not identifiable on a two-point grid
        formula = SLOPE_FORMULA if p.sizes["strength"] >= 3 else \
            SLOPE_FORMULA.replace(" + I(a ** 2)", "")
        ols.append(cluster_ols(p.isel(face=keep), formula=formula).assign(classifier=name))
    deriv_df = pd.concat(deriv, ignore_index=True)
    reject, p_adj = correct(deriv_df["p_wilcoxon"].to_numpy(dtype=float), alpha, "holm")
    deriv_df["p_wilcoxon_holm"], deriv_df["significant"] = p_adj, reject
    first = ["classifier"]
    return (deriv_df[first + [c for c in deriv_df.columns if c not in first]],
            pd.concat(ols, ignore_index=True)[first + [c for c in ols[0].columns
                                                       if c != "classifier"]])
