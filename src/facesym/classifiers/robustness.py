"""Robustness to preprocessing: a classifier's outputs under facesym's vs its package's own
preprocessing (``preprocess: facesym | original``) on the same renders."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from facesym.classifiers.base import CANONICAL_LABELS, canonical_index

COLUMNS = ("classifier", "images", "top1_agreement", "max_abs_dp", "mean_abs_dp",
           "max_abs_dp_intended", "mean_abs_dp_intended")


def _aligned(a: xr.Dataset, b: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Native-order probabilities (N, L) of both cubes on the same images, and the intended
    column per image (N,) when the cubes carry ``emotion`` (canonical label names)."""
    pa, pb = a["prob_native"], b["prob_native"]
    if pa.sizes != pb.sizes:
        raise ValueError(f"cubes differ in shape: {dict(pa.sizes)} vs {dict(pb.sizes)}")
    for dim in pa.dims:
        if dim in a.coords and dim in b.coords and not np.array_equal(a[dim].values,
                                                                      b[dim].values):
            raise ValueError(f"cubes differ along {dim!r}: not the same renders")
    dims = [d for d in pa.dims if d != "native_label"]
    flat_a = pa.transpose(*dims, "native_label").values.reshape(-1, pa.sizes["native_label"])
    flat_b = pb.transpose(*dims, "native_label").values.reshape(-1, pb.sizes["native_label"])
    intended = None
    if "emotion" in a:
        canon = canonical_index([str(x) for x in a["native_label"].values])
        col = {CANONICAL_LABELS[c]: i for i, c in enumerate(canon) if c >= 0}
        emo = a["emotion"].broadcast_like(pa.isel(native_label=0)).transpose(*dims).values
        intended = np.array([col.get(str(e), -1) for e in emo.ravel()])
    return flat_a.astype(np.float64), flat_b.astype(np.float64), intended


def preprocessing_agreement(pairs: Mapping[str, tuple[xr.Dataset, xr.Dataset]]
                            ) -> pd.DataFrame:
    """Per classifier, its classify cubes under facesym's and the original preprocessing
    (same renders) → top-1 agreement and max/mean |Δp| over all classes and over the
    intended class, one row per classifier.

    >>> import numpy as np, xarray as xr
    >>> def cube(p):
    ...     return xr.Dataset({"prob_native": (("face", "native_label"), np.array(p))},
    ...                       coords={"face": [0, 1], "native_label": ["happy", "sad"]})
    >>> a = cube([[0.9, 0.1], [0.4, 0.6]])
    >>> b = cube([[0.8, 0.2], [0.7, 0.3]])
    >>> row = preprocessing_agreement({"toy": (a, b)}).round(3).iloc[0]
    >>> row["images"], row["top1_agreement"], row["max_abs_dp"], row["mean_abs_dp"]
    (np.int64(2), np.float64(0.5), np.float64(0.3), np.float64(0.2))
    """
    rows = []
    for name, (facesym_cube, original_cube) in pairs.items():
        pa, pb, intended = _aligned(facesym_cube, original_cube)
        diff = np.abs(pa - pb)
        row = {"classifier": name, "images": len(pa),
               "top1_agreement": float(np.mean(pa.argmax(1) == pb.argmax(1))),
               "max_abs_dp": float(diff.max()), "mean_abs_dp": float(diff.mean()),
               "max_abs_dp_intended": np.nan, "mean_abs_dp_intended": np.nan}
        if intended is not None and (intended >= 0).any():
            keep = intended >= 0
            d = diff[np.flatnonzero(keep), intended[keep]]
            row["max_abs_dp_intended"] = float(d.max())
            row["mean_abs_dp_intended"] = float(d.mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def agreement_markdown(table: pd.DataFrame) -> str:
    """The agreement table as Markdown (probabilities to 3 decimals).

    >>> t = pd.DataFrame([{"classifier": "toy", "images": 2, "top1_agreement": 0.5,
    ...                    "max_abs_dp": 0.3, "mean_abs_dp": 0.2,
    ...                    "max_abs_dp_intended": 0.1, "mean_abs_dp_intended": 0.05}])
    >>> print(agreement_markdown(t).splitlines()[-1])
    | toy | 2 | 0.500 | 0.300 | 0.200 | 0.100 | 0.050 |
    """
    head = ("| classifier | images | top-1 agreement | max abs dp | mean abs dp "
            "| max abs dp (intended) | mean abs dp (intended) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        vals = [f"{v:.3f}" for v in (r.top1_agreement, r.max_abs_dp, r.mean_abs_dp,
                                     r.max_abs_dp_intended, r.mean_abs_dp_intended)]
        lines.append(f"| {r.classifier} | {r.images} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
