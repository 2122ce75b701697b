"""Study configuration: load, merge, fill defaults from the JSON schema, validate, digest subsets.

The schema (``facesym/data/schema.yaml``) is the one source of truth: its defaults are the
default study. :func:`validate_study_config` is what both the workflow (``rules/common.smk``)
and ``facesym check-config`` call, so the two accept and refuse exactly the same configs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

log = logging.getLogger(__name__)

# A study this large (images) gets its estimated size and time logged before it starts.
LARGE_STUDY_IMAGES = 50_000
# Measured on the default study (1,575 images at 224², 6 classifiers, the flip control's
# mirrored images, 2 CPU cores: 2 min 31 s of workflow after setup); a rough scale for the
# estimate, not a promise.
SECONDS_PER_IMAGE_CPU = 0.1
# uint8 RGB renders compress to roughly this share of their raw size (zstd).
RENDER_COMPRESSION = 0.35


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


# ----------------------------------------------------------------------------- files


def data_text(name: str) -> str:
    """The text of a file shipped in ``facesym/data/`` (works in an installed package)."""
    return importlib_resources.files("facesym").joinpath("data", name).read_text()


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text``; a syntax error raises ConfigError naming ``source`` and the line.

    >>> parse_yaml("a: [1, 2", "my.yaml")
    Traceback (most recent call last):
    ...
    facesym.config.ConfigError: my.yaml, line 1, column 9: YAML syntax error: expected ',' ...
    """
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = str(err.problem or err.context)
        if err.problem and err.context:
            start = err.context_mark
            opened = (f" at line {start.line + 1}, column {start.column + 1}"
                      if start is not None and start is not mark else "")
            what += f" ({err.context}{opened})"
        raise ConfigError(f"{source}{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: YAML error: {err}") from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; ConfigError names a missing file, or the line of a syntax error."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (relative paths are taken from the "
                          f"working directory, {Path.cwd()})")
    return parse_yaml(p.read_text(), str(p))


def load_schema(path: str | Path | None = None) -> dict:
    """The study JSON schema: the shipped ``facesym/data/schema.yaml``, or ``path``."""
    if path is None:
        return parse_yaml(data_text("schema.yaml"), "facesym/data/schema.yaml")
    return read_yaml(path)


def builtin_expression_tables(path: str | Path | None = None) -> dict:
    """The default FACS tables (action_units and prototypes) shipped with the package."""
    if path is None:
        return parse_yaml(data_text("expressions.yaml"), "facesym/data/expressions.yaml")
    return read_yaml(path)


def default_study() -> dict:
    """The default study: every schema default (what ``config/config.yaml`` runs)."""
    return validate_config({})


# ----------------------------------------------------------------------------- coercion


def _resolve(schema: Mapping, root: Mapping) -> dict:
    """``schema`` with a local ``$ref`` replaced by its target (sibling keys win)."""
    schema = dict(schema)
    if "$ref" in schema:
        target: Any = root
        for part in schema.pop("$ref").removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **schema}
    return schema


_PARSED_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float), "integer": (int,), "boolean": (bool,), "array": (list,),
    "object": (dict,), "null": (type(None),),
}


def _coerce_string(value: str, schema: Mapping) -> Any:
    """A ``--config`` string parsed back into the type the schema wants (else unchanged).

    Snakemake reads ``--config a='{b: 0.5}'`` with YAML's BaseLoader: every nested scalar
    stays a string.
    """
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if not types or "string" in types:
        if "null" in types and value in ("null", "~"):
            return None
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    for t in types:
        ok = _PARSED_TYPES.get(t, ())
        if isinstance(parsed, ok) and (t == "boolean" or not isinstance(parsed, bool)):
            return parsed
    return value


def _coerce(value: Any, schema: Mapping, root: Mapping) -> Any:
    """Parse ``--config`` strings back to typed values, recursively, following the schema.

    Recurses into ``properties``, ``additionalProperties``, ``items`` and the branches of
    ``oneOf``/``anyOf`` (the first branch the coerced value satisfies wins).
    """
    schema = _resolve(schema, root)
    if isinstance(value, str):
        value = _coerce_string(value, schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            validator = jsonschema.Draft202012Validator(root)
            for branch in schema[key]:
                candidate = _coerce(copy.deepcopy(value), branch, root)
                if validator.evolve(schema=_resolve(branch, root)).is_valid(candidate):
                    return candidate
            return value
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce(v, schema["items"], root) for v in value]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k in list(value):
            if k in props:
                value[k] = _coerce(value[k], props[k], root)
            elif isinstance(extra, Mapping):
                value[k] = _coerce(value[k], extra, root)
    return value


def _fill_defaults(value: Any, schema: Mapping, root: Mapping) -> Any:
    """Recursively insert schema defaults for missing object properties."""
    schema = _resolve(schema, root)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_fill_defaults(v, schema["items"], root) for v in value]
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill_defaults(value[key], sub, root)
    return value


# ----------------------------------------------------------------------------- messages


def _key_path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _allowed(error: jsonschema.ValidationError) -> str:
    s = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(s.get("properties", {}))
        return f"allowed keys: {', '.join(allowed)}"
    if error.validator == "oneOf" and "description" in s:
        return "allowed: " + " ".join(str(s["description"]).split())
    if error.validator == "enum":
        return "allowed values: " + ", ".join(map(str, error.validator_value))
    if error.validator == "pattern" and "description" in s:
        return "allowed: " + " ".join(str(s["description"]).split())
    bits = []
    for k in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
              "minItems", "maxItems"):
        if k in s:
            bits.append(f"{k} {s[k]}")
    return "allowed: " + ", ".join(bits) if bits else ""


def _closest(error: jsonschema.ValidationError) -> tuple[jsonschema.ValidationError, list[str]]:
    """The problem inside a oneOf/anyOf the user most likely meant to fix (the branch with the
    fewest errors, its deepest one), and what the enclosing oneOfs allow."""
    notes = [_allowed(error)]
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fewest = min(branches.values(), key=len)
        error = max(fewest, key=lambda c: len(c.absolute_path))
        notes.append(_allowed(error))
    return error, [n.removeprefix("allowed: ") for n in notes if n]


def schema_problems(instance: Any, schema: Mapping, prefix: str = "") -> list[str]:
    """One line per schema violation: ``config key <dotted key>: <problem> (<allowed>)``.

    >>> schema_problems({"n": 0}, {"properties": {"n": {"type": "integer", "minimum": 1}}})
    ['config key n: 0 is less than the minimum of 1 (allowed: type integer, minimum 1)']
    """
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for e in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
        key = _key_path(e, prefix)
        if "propertyNames" in e.schema_path:
            lines.append(f"config key {key}: name {e.instance!r} is not allowed (allowed: "
                         f"letters, digits, _ and -, starting with a letter or digit; "
                         f"pattern {e.validator_value})")
            continue
        allowed = _allowed(e)
        if e.validator in ("oneOf", "anyOf") and e.context:
            e, notes = _closest(e)
            key, allowed = _key_path(e, prefix), "allowed: " + "; ".join(dict.fromkeys(notes))
        lines.append(f"config key {key}: {e.message}" + (f" ({allowed})" if allowed else ""))
    return lines


# ----------------------------------------------------------------------------- validation


def validate_config(config: Mapping, schema: Mapping | None = None) -> dict:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Checks the schema and the rules between keys; raises ConfigError naming the offending key
    and the allowed values. ``--config`` strings are parsed back to the types the schema wants.

    >>> cfg = validate_config({"scenes": {"faces_per_emotion": "2"}})
    >>> cfg["scenes"]["faces_per_emotion"], cfg["render"]["backend"]
    (2, 'numba')
    >>> validate_config({"study": ".."})
    Traceback (most recent call last):
    ...
    facesym.config.ConfigError: invalid configuration:
      config key study: '..' does not match ...
    """
    schema = schema if schema is not None else load_schema()
    cfg = _coerce(copy.deepcopy(dict(config)), schema, schema)
    cfg = _fill_defaults(cfg, schema, schema)
    lines = schema_problems(cfg, schema)
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    cfg["expressions"] = merged_expression_tables(cfg.get("expressions", {}),
                                                  cfg["scenes"]["emotions"])
    _check_semantics(cfg)
    return cfg


def merged_expression_tables(user: Mapping, emotions: Sequence[str] = ()) -> dict:
    """Built-in tables updated key by key with the user's ``expressions`` section, then with
    the prototypes of its ``prototypes_file`` (checked for the studied ``emotions``; see
    :func:`facesym.expressions.with_prototypes_file`)."""
    from facesym.expressions import with_prototypes_file

    tables = builtin_expression_tables()
    for section in ("action_units", "prototypes"):
        tables[section].update(copy.deepcopy(dict(user.get(section, {}))))
    return with_prototypes_file(tables, user, emotions)


def n_faces(cfg: Mapping) -> int:
    """Number of faces of the study: faces per emotion × emotions."""
    return int(cfg["scenes"]["faces_per_emotion"]) * len(cfg["scenes"]["emotions"])


def _check_semantics(cfg: dict) -> None:
    aus = cfg["expressions"]["action_units"]
    protos = cfg["expressions"]["prototypes"]
    for emotion in cfg["scenes"]["emotions"]:
        if emotion not in protos:
            raise ConfigError(
                f"config key scenes.emotions: {emotion!r} has no prototype "
                f"(allowed values: {', '.join(sorted(protos))}; add it to expressions.prototypes)"
            )
    for emotion, proto in protos.items():
        for au in proto:
            if au not in aus:
                raise ConfigError(
                    f"config key expressions.prototypes.{emotion}: unknown action unit {au!r} "
                    f"(allowed values: {', '.join(sorted(aus))})"
                )
    fm = cfg["face_model"]
    if fm["name"] == "flame":
        for key in ("path", "landmarks"):
            if fm["flame"].get(key) in (None, ""):
                raise ConfigError(
                    f"config key face_model.flame.{key}: required when face_model.name is flame "
                    "(FLAME is bring-your-own: point it at your file; relative paths are taken "
                    "from the working directory, where snakemake runs)"
                )
    strengths = cfg["intervention"]["strengths"]
    if 0 not in strengths:
        raise ConfigError(
            "config key intervention.strengths: must contain 0 (the un-intervened reference), "
            f"got {strengths}"
        )
    for point in cfg["stats"]["derivative_points"]:
        if not min(strengths) <= point <= max(strengths):
            raise ConfigError(
                f"config key stats.derivative_points: {point} lies outside the strength grid "
                f"[{min(strengths)}, {max(strengths)}]"
            )
    faces = n_faces(cfg)
    beyond = [f for f in cfg["contact_sheet"]["faces"] if f >= faces]
    if beyond:
        raise ConfigError(
            f"config key contact_sheet.faces: {beyond} beyond the study's faces (allowed: "
            f"0 to {faces - 1}; the study has scenes.faces_per_emotion × scenes.emotions = "
            f"{faces} faces)"
        )
    from facesym.distributions import check
    from facesym.scenes import SCENE_FACTORS

    for key in SCENE_FACTORS.values():
        problem = check(_lookup(cfg["scenes"], key), f"scenes.{key}")
        if problem:
            raise ConfigError(problem)


def _lookup(node: Mapping, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node[part]
    return node


def check_devices(cfg: Mapping) -> None:
    """Refuse a CUDA device when this torch build has no CUDA (no visible GPU needed).

    A Slurm login node has no GPU but the CUDA build of torch; a CPU-only build can never
    run ``cuda``, so it is refused here instead of in the render or classify job.
    """
    wanted = [k for k in ("render", "classify") if str(cfg[k]["device"]).startswith("cuda")]
    if not wanted:
        return
    import torch

    if not torch.backends.cuda.is_built():
        keys = ", ".join(f"{k}.device" for k in wanted)
        raise ConfigError(
            f"config key {keys}: {cfg[wanted[0]]['device']!r} needs a CUDA build of torch, "
            f"but this torch ({torch.__version__}) is CPU-only (allowed values: cpu; or "
            "install a CUDA build of torch, see README)"
        )


def check_photos(cfg: Mapping) -> None:
    """The real-photo branch's settings, when ``photos.manifest`` is set: the manifest file
    exists and has the required columns and exactly two groups, the reference group is one of
    them, and ``photos.classifiers`` are zoo names (ConfigError naming the key).

    Bad rows (missing photos, unknown labels, …) are not errors: the branch lists them.
    """
    photos = cfg["photos"]
    if photos["manifest"] is None:
        return
    from facesym.classifiers.zoo import check_classifiers

    if photos["classifiers"] is not None:
        try:
            check_classifiers(photos["classifiers"], cfg["zoo"])
        except ConfigError as err:
            raise ConfigError(str(err).replace("config key classifiers:",
                                               "config key photos.classifiers:", 1)) from None
    import csv

    from facesym.photos.manifest import OPTIONAL, REQUIRED

    path = Path(photos["manifest"]).expanduser()
    where = f"{path} (relative paths are taken from the working directory, {Path.cwd()})"
    if not path.is_file():
        raise ConfigError(f"config key photos.manifest: no file {where}; set it to a CSV with "
                          f"columns {', '.join(REQUIRED)} (and optionally "
                          f"{', '.join(OPTIONAL)}), or null to switch the photo branch off")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            header = [c.strip().lower() for c in next(reader, [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"config key photos.manifest: cannot read {path} as CSV: {err}"
                          ) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ConfigError(f"config key photos.manifest: {path} lacks column(s) "
                          f"{', '.join(missing)} (required: {', '.join(REQUIRED)}; optional: "
                          f"{', '.join(OPTIONAL)})")
    col = header.index("group")
    groups = sorted({r[col].strip() for r in rows if len(r) > col} - {""})
    if len(groups) != 2:
        raise ConfigError(f"config key photos.manifest: {path} needs exactly two groups in "
                          f"its group column (e.g. healthy and palsy), got {groups}")
    ref = photos["reference_group"]
    if ref is not None and ref not in groups:
        raise ConfigError(f"config key photos.reference_group: {ref!r} is not a group of "
                          f"{path} (allowed values: {', '.join(groups)}, or null)")


def study_estimate(cfg: Mapping) -> dict:
    """Rough size of the study: images, render store bytes and CPU seconds.

    >>> est = study_estimate(default_study())
    >>> est["faces"], est["images"]
    (105, 1575)
    """
    faces = n_faces(cfg)
    images = faces * len(cfg["intervention"]["sides"]) * len(cfg["intervention"]["strengths"])
    size = int(cfg["render"]["size"])
    raw = images * size * size * 3
    scale = (size / 224) ** 2 * max(len(cfg["classifiers"]), 1) / 6
    return {"faces": faces, "images": images, "render_bytes": int(raw * RENDER_COMPRESSION),
            "cpu_seconds": images * SECONDS_PER_IMAGE_CPU * scale}


def describe_estimate(est: Mapping) -> str:
    """One line: images, disk and time of a study estimate."""
    hours = est["cpu_seconds"] / 3600
    return (f"{est['faces']:,} faces, {est['images']:,} images, about "
            f"{est['render_bytes'] / 1e9:.1f} GB of renders and {hours:.1f} h on 2 CPU cores "
            f"(rough; a GPU is much faster)")


def validate_study_config(config: Mapping) -> dict:
    """The validated study config: what the workflow and ``facesym check-config`` both run.

    ``config`` is the raw merged config (``config/config.yaml`` + ``--configfile`` +
    ``--config``, see :func:`merged_config`). Returns a copy with schema defaults filled and
    the expression tables merged; checks the zoo (the shipped one plus the study's ``zoo:``
    section) against its schema, every classifier name against the zoo, the files of
    bring-your-own classifiers, and CUDA devices against this torch build. Logs an estimate
    of a large study's images, disk and time. Raises ConfigError naming the key.
    """
    cfg = validate_config(config)
    from facesym.classifiers.zoo import check_classifiers

    check_classifiers(cfg["classifiers"], cfg["zoo"])
    check_photos(cfg)
    check_devices(cfg)
    est = study_estimate(cfg)
    if est["images"] >= LARGE_STUDY_IMAGES:
        log.warning("large study %r: %s", cfg["study"], describe_estimate(est))
    return cfg


# ----------------------------------------------------------------------------- merging


def merged_config(configfiles: Sequence[str | Path] = (), overrides: Mapping | None = None,
                  base: str | Path | None = None) -> dict:
    """The raw config as Snakemake merges it: ``base``, each configfile, then ``overrides``.

    ``base`` is the workflow's ``config/config.yaml``; ``overrides`` is what ``--config``
    gives (parse it with ``snakemake.cli.parse_config`` to get the same strings).
    """
    cfg: dict = {}
    for path in ([base] if base is not None else []) + list(configfiles):
        loaded = read_yaml(path)
        if loaded is None:
            continue
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: a config file must be a mapping of keys, "
                              f"got {type(loaded).__name__}")
        cfg = deep_merge(cfg, loaded)
    return deep_merge(cfg, overrides or {})


def load_config(path: str | Path, overrides: Mapping | None = None) -> dict:
    """Load a YAML config file, apply ``overrides`` (deep-merged), validate and fill defaults."""
    return validate_config(merged_config([path], overrides))


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Return ``base`` with ``update`` merged in recursively (update wins).

    >>> deep_merge({"render": {"size": 224, "device": "cpu"}}, {"render": {"size": 96}})
    {'render': {'size': 96, 'device': 'cpu'}}
    """
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def select(cfg: Mapping, keys: Iterable[str]) -> dict:
    """The config subset named by dotted ``keys`` (e.g. ``"render.size"``), as a nested dict.

    >>> select({"seed": 1, "render": {"size": 96, "device": "cpu"}}, ["seed", "render.size"])
    {'seed': 1, 'render': {'size': 96}}
    """
    out: dict = {}
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            node = node[part]
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = copy.deepcopy(node)
    return out


def digest(obj: Any) -> str:
    """Stable SHA-256 of a JSON-serialisable object (sorted keys).

    >>> digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    True
    >>> digest({"a": 1})[:12]
    '015abd7f5cc5'
    """
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()
