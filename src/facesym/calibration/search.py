"""Seeded search over one emotion's AU intensities, shared across leave-one-out folds.

Every candidate is scored once by *every* classifier (a render is the expensive part), and a
fold only decides which of those scores it maximises. So the search per emotion is:

1. a shared design: the current prototype plus a seeded Latin hypercube within the bounds;
2. per fold (the whole search set, and with leave-one-out each search set less one
   classifier): CMA-ES from the fold's best design point, under the fold's objective.
   Folds that start from the same point share CMA-ES's seed, so their common first
   generations come from the cache instead of being rendered again.

Candidates are rounded to 0.001 AU before they are scored, so a written prototype is exactly
what was scored and a cache key is exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import qmc

ROUND = 3  # decimals of an AU intensity
ALL_FOLD = "all"


@dataclass(frozen=True)
class Scores:
    """Classifier outputs for one candidate: p_intended and top-1 hits, (classifier, identity)."""

    p: np.ndarray
    top1: np.ndarray


# (candidates (n, d) AU intensities) -> one Scores per candidate, classifiers in a fixed order
Evaluate = Callable[[np.ndarray], list[Scores]]


@dataclass(frozen=True)
class Fold:
    """A search set and the classifiers it leaves out (reported as held-out)."""

    name: str
    search_set: tuple[str, ...]
    held_out: tuple[str, ...]


def make_folds(search_set: Sequence[str], evaluated: Sequence[str],
               leave_one_out: bool) -> list[Fold]:
    """The "all" fold, then (leave-one-out) one fold without each search-set classifier.

    >>> [f.name for f in make_folds(["a", "b"], ["a", "b", "c"], True)]
    ['all', 'without_a', 'without_b']
    >>> make_folds(["a", "b"], ["a", "b", "c"], True)[1].held_out
    ('a', 'c')
    """
    search = tuple(search_set)
    folds = [Fold(ALL_FOLD, search, tuple(c for c in evaluated if c not in search))]
    if leave_one_out:
        for c in search:
            kept = tuple(x for x in search if x != c)
            folds.append(Fold(f"without_{c}", kept,
                              tuple(x for x in evaluated if x not in kept)))
    return folds


def objective_value(scores: Scores, rows: Sequence[int], kind: str) -> float:
    """The objective of one candidate over classifier ``rows``.

    ``mean_p``: mean intended-class probability; ``recognition``: share of top-1 hits, ties
    broken by ``mean_p`` (×0.001) so that a plateau still has a slope.
    """
    p = float(scores.p[list(rows)].mean())
    if kind == "mean_p":
        return p
    return float(scores.top1[list(rows)].mean()) + 1e-3 * p


class Cache:
    """Scores of every candidate scored so far, in order; ``score`` renders only new ones."""

    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate = evaluate
        self.keys: list[tuple[float, ...]] = []
        self.scores: dict[tuple[float, ...], Scores] = {}
        self.stage: dict[tuple[float, ...], str] = {}

    @staticmethod
    def key(x: np.ndarray) -> tuple[float, ...]:
        """The exact (rounded) candidate as a hashable key."""
        return tuple(float(v) for v in np.round(np.asarray(x, dtype=np.float64), ROUND))

    def score(self, candidates: np.ndarray, stage: str) -> list[Scores]:
        """Scores of each row of ``candidates`` (rounded first); new rows scored in one batch."""
        keys = [self.key(x) for x in candidates]
        new = list(dict.fromkeys(k for k in keys if k not in self.scores))
        if new:
            for k, s in zip(new, self.evaluate(np.array(new)), strict=True):
                self.scores[k] = s
                self.keys.append(k)
                self.stage[k] = stage
        return [self.scores[k] for k in keys]


@dataclass
class FoldResult:
    """The best candidate of one fold and what it cost."""

    fold: Fold
    best: tuple[float, ...]
    objective_before: float
    objective_after: float
    evaluations: int  # candidates the fold asked for (cached ones included)
    seen: list[tuple[float, ...]] = field(default_factory=list)


def stable_seed(*parts: object) -> int:
    """A positive 31-bit seed from any printable parts (CMA-ES treats 0 as "from the clock")."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little") % (2**31 - 2) + 1


def design_points(lo: np.ndarray, hi: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` seeded Latin-hypercube points within [lo, hi] (rounded to 0.001)."""
    if n == 0:
        return np.zeros((0, len(lo)))
    u = qmc.LatinHypercube(d=len(lo), seed=np.random.default_rng(seed)).random(n)
    return np.round(lo + u * (hi - lo), ROUND)


def _best(keys: Sequence[tuple[float, ...]], cache: Cache, rows: Sequence[int],
          kind: str) -> tuple[tuple[float, ...], float]:
    values = [objective_value(cache.scores[k], rows, kind) for k in keys]
    i = int(np.argmax(values))  # first of equal values: deterministic
    return keys[i], values[i]


def _cma(cache: Cache, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: Sequence[int],
         kind: str, budget: int, popsize: int, sigma: float, seed: int
         ) -> list[tuple[float, ...]]:
    """CMA-ES in [0, 1]^d (x = lo + u·(hi − lo)); returns the candidates it asked for."""
    import cma

    span = hi - lo
    opts = {"bounds": [0.0, 1.0], "seed": seed, "popsize": popsize, "verbose": -9,
            "verb_log": 0, "verb_disp": 0, "maxfevals": budget, "tolx": 1e-4,
            "tolfun": 1e-6}
    es = cma.CMAEvolutionStrategy(list((start - lo) / span), sigma, opts)
    asked: list[tuple[float, ...]] = []
    while not es.stop() and len(asked) < budget:
        u = np.clip(np.array(es.ask()), 0.0, 1.0)
        x = np.clip(np.round(lo + u * span, ROUND), lo, hi)
        scores = cache.score(x, "cma")
        asked += [cache.key(v) for v in x]
        es.tell(list(u), [-objective_value(s, rows, kind) for s in scores])
    return asked[:budget]


def _pattern(cache: Cache, start: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             rows: Sequence[int], kind: str, budget: int, sigma: float
             ) -> list[tuple[float, ...]]:
    """Compass search for one dimension (CMA-ES needs two): ±step, halved when both fail."""
    x, step = start.copy(), sigma * (hi - lo)
    best = objective_value(cache.score(x[None], "pattern")[0], rows, kind)
    asked: list[tuple[float, ...]] = []
    while len(asked) + 2 <= budget and float(step.max()) >= 10.0 ** -ROUND:
        trial = np.clip(np.round(np.stack([x + step, x - step]), ROUND), lo, hi)
        values = [objective_value(s, rows, kind) for s in cache.score(trial, "pattern")]
        asked += [cache.key(t) for t in trial]
        i = int(np.argmax(values))
        if values[i] > best:
            x, best = trial[i], values[i]
        else:
            step = step / 2
    return asked


def search_emotion(evaluate: Evaluate, classifiers: Sequence[str], folds: Sequence[Fold],
                   x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, objective: str,
                   design: int, evaluations: int, popsize: int, sigma: float, seed: int
                   ) -> tuple[list[FoldResult], Cache]:
    """Search one emotion for every fold; see the module docstring for the procedure."""
    cache = Cache(evaluate)
    x0 = np.clip(np.round(np.asarray(x0, dtype=np.float64), ROUND), lo, hi)
    start = np.vstack([x0[None], design_points(lo, hi, design, seed)])
    shared = [cache.key(x) for x in start]
    cache.score(start, "design")
    shared = list(dict.fromkeys(shared))
    results = []
    for fold in folds:
        rows = [classifiers.index(c) for c in fold.search_set]
        incumbent, _ = _best(shared, cache, rows, objective)
        if len(lo) == 1:
            asked = _pattern(cache, np.array(incumbent), lo, hi, rows, objective,
                             evaluations, sigma)
        elif evaluations > 0:
            asked = _cma(cache, np.array(incumbent), lo, hi, rows, objective, evaluations,
                         popsize, sigma, stable_seed(seed, "cma", incumbent))
        else:
            asked = []
        seen = list(dict.fromkeys(shared + asked))
        best, after = _best(seen, cache, rows, objective)
        before = objective_value(cache.scores[cache.key(x0)], rows, objective)
        results.append(FoldResult(fold, best, before, after, len(shared) + len(asked), seen))
    return results, cache
