"""The classifier zoo: declared entries → loaded :class:`Classifier`s.

The shipped zoo (``facesym/data/zoo.yaml``), the bring-your-own templates
(``facesym/data/zoo_byo_templates.yaml``) and a study's own ``zoo:`` entries are each checked
against ``facesym/data/zoo_schema.yaml``. User-supplied relative paths resolve against the
working directory (where snakemake runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from facesym.config import ConfigError, data_text, parse_yaml, read_yaml, schema_problems
from facesym.resources import get_resource, resource_file

if TYPE_CHECKING:  # torch loads only when a classifier does: the workflow's start stays fast
    import torch

    from facesym.classifiers.base import Classifier

SHIPPED = "shipped"  # load_zoo(templates=SHIPPED): the templates shipped with the package


def _load_keras(path: Path) -> torch.nn.Module:
    from facesym.classifiers.keras_hdf5 import load_keras_hdf5

    return load_keras_hdf5(path)


def _load_faceapi(path: Path) -> torch.nn.Module:
    from facesym.classifiers.tfjs_faceapi import load_faceapi_expression

    return load_faceapi_expression(path)


def _load_networkv2(path: Path) -> torch.nn.Module:
    from facesym.classifiers.networkv2 import load_networkv2

    return load_networkv2(path)


def _load_tflite(path: Path, emulate_hybrid: bool = False, engine: str = "torch"
                 ) -> torch.nn.Module:
    from facesym.classifiers.tflite import load_tflite

    return load_tflite(path, emulate_hybrid=emulate_hybrid, engine=engine)


READERS: dict[str, Callable[..., torch.nn.Module]] = {  # format -> reader
    "keras_hdf5": _load_keras,
    "tfjs_faceapi": _load_faceapi,
    "networkv2": _load_networkv2,
    "tflite": _load_tflite,
}


def zoo_schema() -> dict:
    """The JSON schema of a zoo (entry names, formats, engines, weights, input)."""
    return parse_yaml(data_text("zoo_schema.yaml"), "facesym/data/zoo_schema.yaml")


def check_zoo(zoo: object, source: str) -> dict:
    """Raise ConfigError if ``zoo`` breaks the zoo schema; the message names ``source`` and key.

    >>> check_zoo({"../../../evil": {}}, "config key zoo")
    Traceback (most recent call last):
    ...
    facesym.config.ConfigError: invalid classifier zoo (config key zoo):
      config key zoo: name '../../../evil' is not allowed ...
    """
    if zoo is None:
        return {}
    prefix = "zoo" if source == "config key zoo" else ""
    lines = schema_problems(zoo, zoo_schema(), prefix=prefix)
    if lines:
        raise ConfigError(f"invalid classifier zoo ({source}):\n  " + "\n  ".join(lines))
    return dict(zoo)  # type: ignore[arg-type]


def _shipped(name: str) -> dict:
    return check_zoo(parse_yaml(data_text(name), f"facesym/data/{name}"),
                     f"facesym/data/{name}")


def load_zoo(path: str | Path | None = None, templates: str | Path | None = SHIPPED,
             extra: Mapping[str, dict] | None = None) -> dict[str, dict]:
    """Read the zoo into {name: entry}: templates, then the zoo, then ``extra`` on top.

    ``path`` defaults to the shipped zoo, ``templates`` to the shipped bring-your-own
    templates (None: none); ``extra`` is a study's ``zoo:`` section. Each is checked against
    the zoo schema. Template entries are known by name, so selecting one whose file you have
    not supplied stops with a message naming the file to supply.
    """
    zoo: dict[str, dict] = {}
    if templates == SHIPPED:
        zoo.update(_shipped("zoo_byo_templates.yaml"))
    elif templates is not None:
        zoo.update(check_zoo(read_yaml(templates), str(templates)))
    if path is None:
        zoo.update(_shipped("zoo.yaml"))
    else:
        zoo.update(check_zoo(read_yaml(path), str(path)))
    zoo.update(check_zoo(dict(extra or {}), "config key zoo"))
    return zoo


def check_classifiers(names: Iterable[str], extra: Mapping[str, dict] | None = None) -> dict:
    """The zoo, after checking every name in it and every user-supplied file (ConfigError)."""
    zoo = load_zoo(extra=extra)
    for name in names:
        if name not in zoo:
            raise ConfigError(
                f"config key classifiers: unknown classifier {name!r} (allowed values: "
                f"{', '.join(sorted(zoo))}; or add an entry under the study's zoo: key)")
        if is_user_supplied(zoo[name]):
            try:
                check_user_weights(name, zoo[name])
            except (FileNotFoundError, ValueError) as err:
                raise ConfigError(f"config key classifiers: {err}") from None
    return zoo


def is_user_supplied(entry: Mapping) -> bool:
    """Whether the entry's weights are a file the user supplies (not a declared resource)."""
    return "path" in entry.get("weights", {})


def user_weights_path(entry: Mapping) -> Path:
    """Absolute path of a bring-your-own entry's weights (relative = to the working directory)."""
    path = Path(entry["weights"]["path"]).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def check_user_weights(name: str, entry: Mapping) -> None:
    """Raise FileNotFoundError naming the file (and what to supply) if it is missing."""
    from facesym.classifiers.byo import check_user_file

    what = entry.get("supply") or f"the {entry['format']} file of {name}"
    check_user_file(user_weights_path(entry), what, name, entry["weights"].get("sha256"))


def zoo_entry(name: str, zoo: Mapping[str, dict]) -> dict:
    """The zoo entry ``name``; KeyError lists the known classifiers."""
    if name not in zoo:
        raise KeyError(f"unknown classifier {name!r}; zoo has: {', '.join(sorted(zoo))}")
    return dict(zoo[name])


def weight_files(entry: Mapping) -> dict[str, str]:
    """{"<resource>/<member>": sha256} of every file the entry's reader reads."""
    if is_user_supplied(entry):
        from facesym.classifiers.byo import file_sha256

        path = user_weights_path(entry)
        return {str(path): file_sha256(path)}
    res = get_resource(entry["weights"]["resource"])
    files = [entry["weights"]["file"]]
    if entry["format"] == "tfjs_faceapi":
        files += [m for m in res.files if m.endswith(".bin")]
    return {f"{res.rid}/{m}": res.files[m] for m in files}


def load_classifier(name: str, zoo: Mapping[str, dict], cache_dir: str | Path | None = None,
                    mirror: str | Path | None = None) -> Classifier:
    """Fetch/verify the weights of zoo entry ``name`` and build its :class:`Classifier`."""
    from facesym.classifiers.base import Classifier, InputSpec
    from facesym.classifiers.runtime import configure

    entry = zoo_entry(name, zoo)
    fmt = entry["format"]
    if is_user_supplied(entry):
        from facesym.classifiers.byo import BYO_FORMATS, load_entry

        if fmt not in BYO_FORMATS:
            raise ValueError(f"classifier {name}: format {fmt!r} cannot read a user file; "
                             f"allowed: {', '.join(BYO_FORMATS)}")
        module = load_entry(name, entry, base_dir=Path.cwd()).eval()
    else:
        if fmt not in READERS:
            raise ValueError(f"classifier {name}: unknown format {fmt!r}; "
                             f"allowed: {', '.join(sorted(READERS))}")
        w = entry["weights"]
        path = resource_file(w["resource"], w["file"], cache_dir=cache_dir, mirror=mirror)
        options = dict(entry.get("reader_options", {}))
        if fmt == "tflite":
            options["engine"] = entry.get("engine", "torch")
        module = READERS[fmt](path, **options).eval()
    inp = entry["input"]
    spec = InputSpec(size=int(inp["size"]), colour=inp["colour"],
                     mean=tuple(float(v) for v in inp["mean"]),
                     std=tuple(float(v) for v in inp["std"]),
                     margin=float(inp.get("margin", 0.2)), channels=int(inp.get("channels", 0)))
    # The hybrid-int8 emulation of TFLite rounds layer inputs to int8: a different float
    # summation order (channels-last kernels) flips some roundings, so it stays NCHW.
    channels_last = bool(entry.get("channels_last", fmt != "tflite"))
    clf = Classifier(name=name, module=module, spec=spec, labels=tuple(entry["labels"]),
                     output=entry.get("output", "softmax"), weights_sha256=weight_files(entry),
                     channels_last=channels_last)
    return configure(clf, entry)
