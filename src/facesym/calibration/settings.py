"""The ``calibration`` config section: defaults, checks, search bounds and candidate AUs.

The section sits beside a study config (``cfg["calibration"]``); the study part itself is
validated by :func:`facesym.config.validate_study_config`, so the calibration sees exactly the
scene distributions, renderer and classifiers the study uses.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

from facesym.classifiers.base import CANONICAL_LABELS
from facesym.config import ConfigError, deep_merge
from facesym.expressions import FACS_BOUNDS

# FACS-plausible intensity ranges, in AU units of the expression tables (the jaw AUs have their
# own; see facesym.expressions.FACS_BOUNDS). A study's prototypes file is checked against them.
DEFAULT_BOUNDS: dict[str, list[float]] = FACS_BOUNDS

# Candidate AUs per emotion: the EMFACS prototypes and major variants (Ekman & Friesen, FACS
# Investigator's Guide, 2002, table 10-1; Matsumoto & Ekman 2008), joined at run time with
# the AUs of the current prototype. An AU at 0 is absent, so the search also chooses variants.
EMFACS_AUS: dict[str, list[str]] = {
    "happiness": ["AU6", "AU12", "AU25"],
    "sadness": ["AU1", "AU4", "AU15", "AU17"],
    "surprise": ["AU1", "AU2", "AU5", "AU26", "AU27"],
    "fear": ["AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26", "AU27"],
    "anger": ["AU4", "AU5", "AU7", "AU10", "AU17", "AU23", "AU26"],
    "disgust": ["AU9", "AU10", "AU15", "AU16", "AU17", "AU26"],
}

OBJECTIVES = ("mean_p", "recognition")

DEFAULTS: dict = {
    "seed": 4321,  # search identities (scene sampler seed) and search randomness
    "holdout_seed": 8765,  # held-out identities
    "emotions": None,  # None: the study's emotions that have a canonical label, minus neutral
    "identities": 8,
    "holdout_identities": 8,
    "render_size": 112,
    "search_set": None,  # None: the study's classifiers
    "evaluate_only": [],  # classifiers only reported, never searched on
    "leave_one_out": True,
    "objective": "mean_p",
    "design": 8,  # shared Latin-hypercube points per emotion (besides the current prototype)
    "evaluations": 24,  # CMA-ES evaluations per fold and emotion
    "popsize": 6,
    "sigma": 0.25,  # CMA-ES initial step, as a share of each AU's range
    "bounds": {},
    "aus": {},  # emotion -> candidate AUs (replaces the default candidates of that emotion)
    "batch_size": 64,
    "threads": 0,  # torch intra-op threads (0: leave torch's setting)
}


@dataclass(frozen=True)
class CalibrationSettings:
    """Validated calibration settings (see :data:`DEFAULTS` for the meaning of each)."""

    seed: int
    holdout_seed: int
    emotions: tuple[str, ...]
    identities: int
    holdout_identities: int
    render_size: int
    search_set: tuple[str, ...]
    evaluate_only: tuple[str, ...]
    leave_one_out: bool
    objective: str
    design: int
    evaluations: int
    popsize: int
    sigma: float
    bounds: dict[str, tuple[float, float]]
    aus: dict[str, tuple[str, ...]] = field(default_factory=dict)
    batch_size: int = 64
    threads: int = 0

    @property
    def classifiers(self) -> tuple[str, ...]:
        """Every classifier that is scored: the search set, then the evaluate-only ones."""
        return self.search_set + tuple(c for c in self.evaluate_only if c not in self.search_set)

    def budget(self) -> dict:
        """The search budget, for provenance."""
        return {"identities": self.identities, "holdout_identities": self.holdout_identities,
                "design": self.design, "evaluations": self.evaluations,
                "popsize": self.popsize, "sigma": self.sigma, "render_size": self.render_size}

    def as_dict(self) -> dict:
        """Plain, YAML-friendly copy."""
        return {
            "seed": self.seed, "holdout_seed": self.holdout_seed,
            "emotions": list(self.emotions), "search_set": list(self.search_set),
            "evaluate_only": list(self.evaluate_only), "leave_one_out": self.leave_one_out,
            "objective": self.objective, **self.budget(),
            "bounds": {au: list(b) for au, b in sorted(self.bounds.items())},
            "aus": {e: list(a) for e, a in sorted(self.aus.items())},
        }


def _int(section: Mapping, key: str, low: int) -> int:
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"config key calibration.{key}: {value!r} must be an integer ≥ {low}")
    return int(value)


def _bounds(raw: Mapping, tables: Mapping) -> dict[str, tuple[float, float]]:
    merged = {**DEFAULT_BOUNDS, **dict(raw)}
    out: dict[str, tuple[float, float]] = {}
    for au, pair in merged.items():
        if au != "default" and au not in tables["action_units"]:
            if au in DEFAULT_BOUNDS:
                continue  # a shipped bound for an AU these tables do not define
            raise ConfigError(f"config key calibration.bounds.{au}: unknown action unit "
                              f"(allowed values: default, "
                              f"{', '.join(sorted(tables['action_units']))})")
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) for v in pair)
                or not 0 <= pair[0] < pair[1]):
            raise ConfigError(f"config key calibration.bounds.{au}: {pair!r} must be "
                              "[low, high] with 0 ≤ low < high")
        out[au] = (float(pair[0]), float(pair[1]))
    return out


def au_bounds(settings: CalibrationSettings, au: str) -> tuple[float, float]:
    """The search range of ``au`` (its own bound, else the default)."""
    return settings.bounds.get(au, settings.bounds["default"])


def candidate_aus(emotion: str, tables: Mapping, user: Mapping[str, list]) -> tuple[str, ...]:
    """The AUs searched for ``emotion``: the user's list, else prototype AUs ∪ EMFACS AUs.

    Order: the current prototype's AUs first, then the EMFACS ones; shipped candidates that the
    tables do not define are left out (a user-named unknown AU is an error).
    """
    known = tables["action_units"]
    if emotion in user:
        aus = [str(a) for a in user[emotion]]
        unknown = [a for a in aus if a not in known]
        if unknown or not aus:
            raise ConfigError(f"config key calibration.aus.{emotion}: {aus!r} needs known action "
                              f"units (allowed values: {', '.join(sorted(known))})")
        return tuple(dict.fromkeys(aus))
    proto = list(tables["prototypes"].get(emotion, {}))
    return tuple(a for a in dict.fromkeys(proto + EMFACS_AUS.get(emotion, [])) if a in known)


def calibration_settings(cfg: Mapping) -> CalibrationSettings:
    """Validate ``cfg["calibration"]`` against the validated study ``cfg``; ConfigError names keys.

    >>> from facesym.config import validate_config
    >>> s = calibration_settings({**validate_config({}), "calibration": {"identities": 4}})
    >>> s.identities, s.search_set[:2], "neutral" in s.emotions
    (4, ('mini_xception', 'big_xception'), False)
    """
    raw = dict(cfg.get("calibration") or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config key calibration.{unknown[0]}: unknown key (allowed values: "
                          f"{', '.join(sorted(DEFAULTS))})")
    section = deep_merge(copy.deepcopy(DEFAULTS), raw)
    tables = cfg["expressions"]
    study_emotions = list(cfg["scenes"]["emotions"])
    emotions = section["emotions"]
    if emotions is None:
        emotions = [e for e in study_emotions if e in CANONICAL_LABELS and e != "neutral"]
    for e in emotions:
        if e not in CANONICAL_LABELS or e == "neutral" or e not in tables["prototypes"]:
            allowed = [x for x in tables["prototypes"] if x in CANONICAL_LABELS and x != "neutral"]
            raise ConfigError(f"config key calibration.emotions: {e!r} cannot be calibrated "
                              f"(allowed values: {', '.join(sorted(allowed))}; contempt has no "
                              "canonical classifier label, neutral no expression)")
    search_set = section["search_set"] or list(cfg["classifiers"])
    evaluate_only = [c for c in section["evaluate_only"] if c not in search_set]
    if section["objective"] not in OBJECTIVES:
        raise ConfigError(f"config key calibration.objective: {section['objective']!r} is not "
                          f"one of {list(OBJECTIVES)} (allowed values: {', '.join(OBJECTIVES)})")
    if section["leave_one_out"] and len(search_set) < 2:
        raise ConfigError("config key calibration.leave_one_out: needs at least 2 classifiers "
                          f"in calibration.search_set, got {search_set}")
    if section["seed"] == section["holdout_seed"]:
        raise ConfigError("config key calibration.holdout_seed: must differ from "
                          "calibration.seed (held-out identities are other faces)")
    sigma = section["sigma"]
    if not isinstance(sigma, (int, float)) or not 0 < sigma <= 1:
        raise ConfigError(f"config key calibration.sigma: {sigma!r} must be in (0, 1]")
    user_aus = dict(section["aus"])
    return CalibrationSettings(
        seed=_int(section, "seed", 1), holdout_seed=_int(section, "holdout_seed", 1),
        emotions=tuple(emotions),
        identities=_int(section, "identities", 1),
        holdout_identities=_int(section, "holdout_identities", 1),
        render_size=_int(section, "render_size", 32),
        search_set=tuple(search_set), evaluate_only=tuple(evaluate_only),
        leave_one_out=bool(section["leave_one_out"]), objective=section["objective"],
        design=_int(section, "design", 0), evaluations=_int(section, "evaluations", 0),
        popsize=_int(section, "popsize", 2), sigma=float(sigma),
        bounds=_bounds(section["bounds"], tables),
        aus={e: candidate_aus(e, tables, user_aus) for e in emotions},
        batch_size=_int(section, "batch_size", 1), threads=_int(section, "threads", 0),
    )
