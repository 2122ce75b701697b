"""Config-declared distributions of the scene factors, drawn by inverse CDF.

A spec is one of ``{dist: uniform, low, high}`` (``dist`` may be omitted),
``{dist: normal, mean, sd}``, ``{dist: truncnormal, mean, sd, low, high}`` or
``{dist: constant, value}``. Every value is ``ppf(u)`` of one uniform variate ``u`` from the
variable's own stream, so a face keeps its quantile when a distribution is edited, and each draw
consumes exactly one variate whatever the family.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

FAMILIES = ("uniform", "normal", "truncnormal", "constant")


def family(spec: Mapping) -> str:
    """The distribution family of ``spec`` (uniform when only low/high are given)."""
    return str(spec.get("dist", "uniform"))


def quantile(spec: Mapping, u: float | np.ndarray) -> np.ndarray:
    """The value(s) at cumulative probability ``u`` ∈ (0, 1) of the distribution ``spec``."""
    u = np.asarray(u, dtype=np.float64)
    kind = family(spec)
    if kind == "uniform":
        return spec["low"] + u * (spec["high"] - spec["low"])
    if kind == "normal":
        return stats.norm.ppf(u, loc=spec["mean"], scale=spec["sd"]) if spec["sd"] > 0 \
            else np.full_like(u, spec["mean"])
    if kind == "truncnormal":
        if spec["sd"] == 0:
            return np.full_like(u, np.clip(spec["mean"], spec["low"], spec["high"]))
        a = (spec["low"] - spec["mean"]) / spec["sd"]
        b = (spec["high"] - spec["mean"]) / spec["sd"]
        return stats.truncnorm.ppf(u, a, b, loc=spec["mean"], scale=spec["sd"])
    if kind == "constant":
        return np.full_like(u, spec["value"])
    raise ValueError(f"unknown distribution {kind!r}; allowed: {', '.join(FAMILIES)}")


def check(spec: Mapping, key: str) -> str | None:
    """A problem with ``spec`` (named by config ``key``), or None."""
    kind = family(spec)
    if kind in ("uniform", "truncnormal") and spec["low"] > spec["high"]:
        return f"config key {key}: low {spec['low']} > high {spec['high']}"
    return None
