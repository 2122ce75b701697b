"""Emotions → FACS action units → face-model shape weights (tables live in configuration)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facesym.facemodel.base import FaceModel
from facesym.provenance import file_digest


def au_shape_weights(tables: Mapping, au: str) -> dict[str, float]:
    """The shape weights of action unit ``au``; KeyError names the known AUs."""
    aus = tables["action_units"]
    if au not in aus:
        raise KeyError(f"unknown action unit {au!r}; known: {', '.join(sorted(aus))}")
    return dict(aus[au])


def shape_limits(tables: Mapping, model: FaceModel) -> np.ndarray:
    """Upper bound (E,) of each shape weight: 1 (the blendshape's scanned extent), or the
    largest weight the AU table gives that shape where it extends it beyond 1 (AU4's
    browDown, whose scanned extent is a trace of the action)."""
    limits = np.ones(len(model.expression_names), dtype=np.float64)
    for shapes in tables["action_units"].values():
        for shape, weight in shapes.items():
            i = model.shape_index(shape)
            limits[i] = max(limits[i], float(weight))
    return limits


def prototype_weights(emotion: str, tables: Mapping, model: FaceModel) -> np.ndarray:
    """Shape-weight vector (E,) of ``emotion``'s prototype at intensity 1.

    Weights of AUs sharing a shape add up and are capped at :func:`shape_limits` (1, a
    blendshape's full extent, unless the AU table maps an AU beyond it).
    """
    protos = tables["prototypes"]
    if emotion not in protos:
        raise KeyError(f"no prototype for emotion {emotion!r}; known: {', '.join(sorted(protos))}")
    w = np.zeros(len(model.expression_names), dtype=np.float64)
    for au, intensity in protos[emotion].items():
        for shape, weight in au_shape_weights(tables, au).items():
            w[model.shape_index(shape)] += float(intensity) * float(weight)
    return np.minimum(w, shape_limits(tables, model))


def prototype_matrix(emotions: Sequence[str], tables: Mapping, model: FaceModel) -> np.ndarray:
    """Stack :func:`prototype_weights` for several emotions → (n_emotions, E)."""
    return np.stack([prototype_weights(e, tables, model) for e in emotions])


def is_symmetric_prototype(weights: np.ndarray, model: FaceModel) -> bool:
    """True when every ``*_L`` shape has the same weight as its ``*_R`` twin."""
    names = model.expression_names
    for i, name in enumerate(names):
        if name.endswith("_L"):
            twin = name[:-2] + "_R"
            if twin in names and not np.isclose(weights[i], weights[names.index(twin)]):
                return False
    return True


# ----------------------------------------------------------------------------- prototypes files
#
# ``expressions.prototypes_file`` names a file written by ``facesym calibrate`` (or by hand in
# the same format) whose prototypes replace the tables' for the emotions it covers. The checks
# below run when the config is validated (``facesym check-config`` and the workflow's start)
# and again in the scenes stage, which records the source in its store's provenance.

PROTOTYPES_FORMAT = "facesym-prototypes/1"
PROTOTYPES_KEY = "config key expressions.prototypes_file"
LITERATURE = "literature (expressions.yaml)"
# FACS-plausible intensity ranges, in AU units of the expression tables. Every AU may go from
# absent (0) to its table's full extent (1). The jaw is the exception: AU26 (jaw drop) maps to
# jawOpen 0.6 per unit in the shipped tables, so 1.25 allows a jaw drop up to jawOpen 0.75;
# AU27 (mouth stretch) maps to jawOpen 1.0, the blendshape's maximal opening, so it stops at
# 0.8 (surprise's apex). A calibrated file's own search bounds (its provenance) replace these
# when it records them.
FACS_BOUNDS: dict[str, list[float]] = {"default": [0.0, 1.0], "AU26": [0.0, 1.25],
                                       "AU27": [0.0, 0.8]}
# emotions a prototypes file need not cover (no expression to calibrate)
UNCOVERED = ("neutral",)


def prototypes_digest(prototypes: Mapping[str, Mapping[str, float]]) -> str:
    """SHA-256 of a prototypes mapping as canonical JSON (sorted keys, floats): what a
    calibrated file records as ``prototypes_sha256`` to detect later hand edits.

    >>> prototypes_digest({"fear": {"AU1": 1}}) == prototypes_digest({"fear": {"AU1": 1.0}})
    True
    """
    from facesym.config import digest

    return digest({str(e): {str(a): float(v) for a, v in (p or {}).items()}
                   for e, p in prototypes.items()})


def read_prototypes(path: str | Path, action_units: Mapping | None = None) -> dict:
    """Read a prototypes file; check its format, numbers, (given ``action_units``) its AUs and
    the ``prototypes_sha256`` it carries, if any.

    Returns ``{"prototypes", "provenance", "sha256"}`` (``sha256``: of the file's bytes).
    ConfigError names the key and the file; a missing file names the path.
    """
    from facesym.config import ConfigError, read_yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{PROTOTYPES_KEY}: no file {p} (relative paths are taken from the "
                          f"working directory, {Path.cwd()}); name a file written by "
                          "`facesym calibrate`, or null for the literature prototypes")
    data = read_yaml(p)
    if not isinstance(data, Mapping) or data.get("format") != PROTOTYPES_FORMAT:
        raise ConfigError(f"{PROTOTYPES_KEY}: {p} is not a facesym prototypes file "
                          f"(expected format: {PROTOTYPES_FORMAT})")
    protos = data.get("prototypes")
    if not isinstance(protos, Mapping) or not protos:
        raise ConfigError(f"{PROTOTYPES_KEY}: {p} has no prototypes (a mapping emotion -> "
                          "{AU: intensity})")
    for emotion, proto in protos.items():
        if proto is not None and not isinstance(proto, Mapping):
            raise ConfigError(f"{PROTOTYPES_KEY}: {p}: {emotion} must map AUs to intensities, "
                              f"got {proto!r}")
        for au, value in (proto or {}).items():
            if action_units is not None and au not in action_units:
                raise ConfigError(f"{PROTOTYPES_KEY}: {p}: {emotion} uses unknown action unit "
                                  f"{au!r} (allowed values: {', '.join(sorted(action_units))})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{PROTOTYPES_KEY}: {p}: {emotion}.{au} = {value!r} must be "
                                  "a number ≥ 0")
    prototypes = {str(e): {str(a): float(v) for a, v in (pr or {}).items()}
                  for e, pr in protos.items()}
    carried = data.get("prototypes_sha256")
    if carried is not None and str(carried) != prototypes_digest(prototypes):
        raise ConfigError(f"{PROTOTYPES_KEY}: {p}: its prototypes do not match the "
                          f"prototypes_sha256 it carries ({carried}): they were edited after "
                          "`facesym calibrate` wrote them; calibrate again, or delete the "
                          "prototypes_sha256 line to use the edited values")
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, Mapping):
        raise ConfigError(f"{PROTOTYPES_KEY}: {p}: provenance must be a mapping")
    return {"prototypes": prototypes, "provenance": dict(provenance), "sha256": file_digest(p)}


def _bounds(provenance: Mapping) -> dict[str, list[float]]:
    recorded = provenance.get("bounds")
    bounds = dict(FACS_BOUNDS)
    if isinstance(recorded, Mapping):
        bounds.update({str(a): [float(b[0]), float(b[1])] for a, b in recorded.items()})
    return bounds


def load_prototypes_file(path: str | Path, tables: Mapping, emotions: Sequence[str],
                         sha256: str | None = None) -> dict:
    """Read and check the prototypes file of a study: :func:`read_prototypes` (format, AUs
    of ``tables``, numbers, carried digest), the file's SHA-256 against ``sha256`` (the
    config's ``expressions.prototypes_sha256``) when given, every studied emotion but neutral
    covered, and every intensity within its bounds (the calibration's recorded search bounds,
    else :data:`FACS_BOUNDS`). ConfigError names the key and the file. ``tables["action_units"]``
    None skips the AU check (done when the config was validated).
    """
    from facesym.config import ConfigError

    loaded = read_prototypes(path, tables["action_units"])
    if sha256 is not None and loaded["sha256"] != str(sha256).lower():
        raise ConfigError(f"config key expressions.prototypes_sha256: {path} has SHA-256 "
                          f"{loaded['sha256']}, expected {sha256} (the file changed since the "
                          "checksum was set)")
    protos = loaded["prototypes"]
    missing = [e for e in emotions if e not in protos and e not in UNCOVERED]
    if missing:
        raise ConfigError(f"{PROTOTYPES_KEY}: {path} has no prototype for {', '.join(missing)} "
                          f"(it covers {', '.join(sorted(protos))}; every emotion of "
                          "scenes.emotions but neutral needs one)")
    bounds = _bounds(loaded["provenance"])
    for emotion, proto in protos.items():
        for au, value in proto.items():
            low, high = bounds.get(au, bounds["default"])
            if not low <= value <= high:
                raise ConfigError(f"{PROTOTYPES_KEY}: {path}: {emotion}.{au} = {value:g} lies "
                                  f"outside its bounds [{low:g}, {high:g}]")
    return loaded


def with_prototypes_file(tables: dict, user: Mapping, emotions: Sequence[str]) -> dict:
    """``tables`` (the merged FACS tables) with the prototypes of ``user``'s
    ``prototypes_file`` in place, and the two file keys kept beside them.

    A prototype the config also gives under ``expressions.prototypes`` with other values is
    refused (which one would hold?); the same values are accepted, so validating a validated
    config again changes nothing.
    """
    from facesym.config import ConfigError

    path, sha = user.get("prototypes_file"), user.get("prototypes_sha256")
    tables["prototypes_file"], tables["prototypes_sha256"] = path, sha
    if not path:
        if sha is not None:
            raise ConfigError("config key expressions.prototypes_sha256: needs "
                              "expressions.prototypes_file (the file it checks)")
        return tables
    loaded = load_prototypes_file(path, tables, emotions, sha)
    own = user.get("prototypes") or {}
    clash = sorted(e for e, proto in own.items() if e in loaded["prototypes"]
                   and {a: float(v) for a, v in proto.items()} != loaded["prototypes"][e])
    if clash:
        raise ConfigError(f"{PROTOTYPES_KEY}: {path} and expressions.prototypes both give "
                          f"{', '.join(clash)}; remove one (the file's prototypes replace the "
                          "tables')")
    tables["prototypes"].update(loaded["prototypes"])
    return tables


def literature_source(tables: Mapping, emotions: Sequence[str]) -> dict:
    """The prototypes source of a study without a prototypes file: the shipped tables, and
    the studied emotions whose prototype the config overrides."""
    from facesym.config import builtin_expression_tables

    shipped = builtin_expression_tables()["prototypes"]
    changed = [e for e in emotions
               if {a: float(v) for a, v in tables["prototypes"].get(e, {}).items()}
               != {a: float(v) for a, v in shipped.get(e, {}).items()}]
    return {"kind": "literature", "source": LITERATURE, "config_overrides": changed}


def file_source(path: str | Path, loaded: Mapping) -> dict:
    """The prototypes source of a study with a prototypes file: its path (as configured), the
    SHA-256 of its bytes, and the calibration provenance it carries."""
    return {"kind": "file", "path": str(path), "sha256": loaded["sha256"],
            "calibration": dict(loaded["provenance"])}


def _mean_rates(rows: list[list[float]]) -> str:
    before = sum(r[0] for r in rows) / len(rows)
    after = sum(r[1] for r in rows) / len(rows)
    return f"{before:.2f} → {after:.2f}"


def _held_out_text(calib: Mapping) -> str:
    """Held-out-identity recognition (mean over emotions) by group of classifiers."""
    results = calib.get("held_out_results") or {}
    search = set(calib.get("search_set") or [])
    groups: dict[str, list[list[float]]] = {"search set": [], "left out of the search": [],
                                            "evaluate-only": []}
    for per_clf in results.values():
        for clf, entry in per_clf.items():
            if "written" in entry:
                group = "search set" if clf in search else "evaluate-only"
                groups[group].append(entry["written"]["rate"])
            if "loco" in entry:
                groups["left out of the search"].append(entry["loco"]["rate"])
    parts = [f"{name} {_mean_rates(rows)}" for name, rows in groups.items() if rows]
    return "; ".join(parts)


def prototypes_source_markdown(attrs: Mapping) -> str:
    """1-3 Markdown lines saying which prototypes made a study, from its scenes store's
    attributes (``prototypes_source``, a JSON string or mapping; or that mapping itself).

    >>> print(prototypes_source_markdown({"prototypes_source": '{"kind": "literature", '
    ...       '"source": "literature (expressions.yaml)", "config_overrides": []}'}))
    Prototypes: literature FACS prototypes (sources in expressions.yaml).
    >>> src = {"kind": "file", "path": "cal/prototypes.yaml", "sha256": "ab" * 32,
    ...        "calibration": {"search_set": ["a", "b"], "evaluate_only": ["c"],
    ...                        "identities": {"search": {"seed": 4, "n": 8},
    ...                                       "holdout": {"seed": 5, "n": 8}},
    ...                        "budget": {"design": 8, "evaluations": 24},
    ...                        "held_out_results": {"fear": {
    ...                            "a": {"written": {"rate": [0.2, 0.6]},
    ...                                  "loco": {"rate": [0.2, 0.4]}},
    ...                            "c": {"written": {"rate": [0.1, 0.3]}}}}}}
    >>> print(prototypes_source_markdown(src))  # doctest: +NORMALIZE_WHITESPACE
    Prototypes: calibrated file `cal/prototypes.yaml` (sha256 abababababab…), searched on
    classifiers [a, b] (held out: c), 8 search identities (seed 4), budget 8 design points +
    24 CMA-ES evaluations per emotion.
    Held-out identities, recognition rate before → after (mean over emotions): search set
    0.20 → 0.60; left out of the search 0.20 → 0.40; evaluate-only 0.10 → 0.30.
    """
    raw = attrs.get("prototypes_source", attrs) if isinstance(attrs, Mapping) else attrs
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, Mapping) or "kind" not in raw:
        return "Prototypes: not recorded (scenes made before facesym recorded their source)."
    if raw["kind"] == "literature":
        line = "Prototypes: literature FACS prototypes (sources in expressions.yaml)"
        overrides = raw.get("config_overrides") or []
        if overrides:
            line += f"; overridden in the study config for {', '.join(overrides)}"
        return line + "."
    calib = raw.get("calibration") or {}
    head = f"`{raw['path']}` (sha256 {str(raw['sha256'])[:12]}…)"
    if not calib.get("search_set"):
        return f"Prototypes: file {head}, without calibration provenance (written by hand)."
    held = [c for c in calib.get("evaluate_only") or [] if c not in calib["search_set"]]
    ids = (calib.get("identities") or {}).get("search") or {}
    budget = calib.get("budget") or {}
    first = (f"Prototypes: calibrated file {head}, searched on classifiers "
             f"[{', '.join(calib['search_set'])}]"
             + (f" (held out: {', '.join(held)})" if held else "")
             + (f", {ids['n']} search identities (seed {ids['seed']})" if ids else "")
             + (f", budget {budget['design']} design points + {budget['evaluations']} CMA-ES "
                "evaluations per emotion" if "design" in budget else "") + ".")
    held_text = _held_out_text(calib)
    if not held_text:
        return first
    return (first + "\nHeld-out identities, recognition rate before → after (mean over "
            f"emotions): {held_text}.")


def with_prototypes(markdown: str, prototypes: str) -> str:
    """``markdown`` with the prototypes lines after its first heading's paragraph break.

    >>> print(with_prototypes("# Title\\n\\nbody\\n", "Prototypes: x."))
    # Title
    <BLANKLINE>
    Prototypes: x.
    <BLANKLINE>
    body
    <BLANKLINE>
    """
    head, sep, rest = markdown.partition("\n\n")
    return f"{head}{sep}{prototypes}\n\n{rest}" if sep else f"{markdown}\n{prototypes}\n"
