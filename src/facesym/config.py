"""Study configuration: load, fill defaults from the JSON schema, validate, digest subsets."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"
EXPRESSIONS_PATH = CONFIG_DIR / "expressions.yaml"


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


def load_schema(path: str | Path | None = None) -> dict:
    """Load the study JSON schema (YAML) from ``config/schema.yaml`` or ``path``."""
    p = Path(path) if path is not None else SCHEMA_PATH
    if not p.is_file():
        raise ConfigError(f"schema file not found: {p}")
    return yaml.safe_load(p.read_text())


def _fill_defaults(value: Any, schema: dict, root: dict) -> Any:
    """Recursively insert schema defaults for missing object properties."""
    if "$ref" in schema:
        ref = schema["$ref"].removeprefix("#/").split("/")
        target = root
        for part in ref:
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(value, str) and schema.get("type") in ("number", "integer", "boolean", "array"):
        value = _coerce_cli_string(value, schema["type"])
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [_fill_defaults(v, schema["items"], root) for v in value]
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill_defaults(value[key], sub, root)
    return value


def _coerce_cli_string(value: str, wanted: str) -> Any:
    """Snakemake's ``--config a={b: 0.1}`` leaves nested values as strings: parse them back."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    ok = {"number": (int, float), "integer": (int,), "boolean": (bool,), "array": (list,)}
    if isinstance(parsed, ok[wanted]) and not (wanted != "boolean" and isinstance(parsed, bool)):
        return parsed
    return value


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
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
    bits = []
    for k in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
              "minItems"):
        if k in s:
            bits.append(f"{k} {s[k]}")
    return "allowed: " + ", ".join(bits) if bits else ""


def validate_config(config: Mapping, schema: dict | None = None) -> dict:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Raises ConfigError naming the offending key and the allowed values.
    """
    schema = schema if schema is not None else load_schema()
    cfg = _fill_defaults(copy.deepcopy(dict(config)), schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            allowed = _allowed(e)
            lines.append(f"config key {_key_path(e)}: {e.message}" + (f" ({allowed})" if allowed
                                                                        else ""))
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    cfg["expressions"] = merged_expression_tables(cfg.get("expressions", {}))
    _check_semantics(cfg)
    return cfg


def builtin_expression_tables(path: str | Path | None = None) -> dict:
    """The default FACS tables (action_units and prototypes) from ``config/expressions.yaml``."""
    p = Path(path) if path is not None else EXPRESSIONS_PATH
    if not p.is_file():
        raise ConfigError(f"expression tables not found: {p}")
    return yaml.safe_load(p.read_text())


def merged_expression_tables(user: Mapping) -> dict:
    """Built-in tables updated key by key with the user's ``expressions`` section."""
    tables = builtin_expression_tables()
    for section in ("action_units", "prototypes"):
        tables[section].update(copy.deepcopy(dict(user.get(section, {}))))
    return tables


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
                    "(FLAME is bring-your-own: point it at your file)"
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


def load_config(path: str | Path, overrides: Mapping | None = None) -> dict:
    """Load a YAML config file, apply ``overrides`` (deep-merged), validate and fill defaults."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    cfg = yaml.safe_load(p.read_text()) or {}
    if overrides:
        cfg = deep_merge(cfg, overrides)
    return validate_config(cfg)


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Return ``base`` with ``update`` merged in recursively (update wins)."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def select(cfg: Mapping, keys: Iterable[str]) -> dict:
    """The config subset named by dotted ``keys`` (e.g. ``"render.size"``), as a nested dict."""
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
    """Stable SHA-256 of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# Which config keys each stage's output depends on (beyond its inputs).
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "face_model": ("face_model",),
    "scenes": ("seed", "scenes", "face_model.identity_modes", "expressions"),
    "render": ("intervention", "render", "expressions"),
    "classify": ("classify",),
    "stats": ("seed", "stats"),
}


def stage_config(cfg: Mapping, stage: str) -> dict:
    """The config subset that stage ``stage`` depends on."""
    out = select(cfg, STAGE_KEYS[stage])
    if stage == "face_model" and out["face_model"]["name"] != "flame":
        out["face_model"].pop("flame", None)  # FLAME settings do not affect an ICT model
    return out
