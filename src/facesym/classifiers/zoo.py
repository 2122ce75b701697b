"""The classifier zoo (``config/zoo.yaml``): declared entries → loaded :class:`Classifier`s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import yaml

from facesym.classifiers.base import Classifier, InputSpec
from facesym.resources import get_resource, resource_file

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
ZOO_PATH = CONFIG_DIR / "zoo.yaml"
TEMPLATES_PATH = CONFIG_DIR / "zoo_byo_templates.yaml"


def _load_keras(path: Path) -> torch.nn.Module:
    from facesym.classifiers.keras_hdf5 import load_keras_hdf5

    return load_keras_hdf5(path)


def _load_faceapi(path: Path) -> torch.nn.Module:
    from facesym.classifiers.tfjs_faceapi import load_faceapi_expression

    return load_faceapi_expression(path)


def _load_networkv2(path: Path) -> torch.nn.Module:
    from facesym.classifiers.networkv2 import load_networkv2

    return load_networkv2(path)


def _load_tflite(path: Path, emulate_hybrid: bool = False) -> torch.nn.Module:
    from facesym.classifiers.tflite import load_tflite

    return load_tflite(path, emulate_hybrid=emulate_hybrid)


READERS: dict[str, Callable[..., torch.nn.Module]] = {
    "keras_hdf5": _load_keras,
    "tfjs_faceapi": _load_faceapi,
    "networkv2": _load_networkv2,
    "tflite": _load_tflite,
}


def load_zoo(path: str | Path | None = None, templates: str | Path | None = TEMPLATES_PATH
             ) -> dict[str, dict]:
    """Read the zoo into {name: entry}: the bring-your-own templates, then the zoo file on top.

    Template entries are known by name, so selecting one whose file you have not supplied
    stops with a message naming the file to supply.
    """
    p = Path(path) if path is not None else ZOO_PATH
    if not p.is_file():
        raise FileNotFoundError(f"classifier zoo not found: {p}")
    zoo: dict[str, dict] = {}
    if templates is not None and Path(templates).is_file():
        zoo.update(yaml.safe_load(Path(templates).read_text()) or {})
    zoo.update(yaml.safe_load(p.read_text()) or {})
    return zoo


def is_user_supplied(entry: Mapping) -> bool:
    """Whether the entry's weights are a file the user supplies (not a declared resource)."""
    return "path" in entry.get("weights", {})


def user_weights_path(entry: Mapping) -> Path:
    """Absolute path of a bring-your-own entry's weights (relative = to the repository)."""
    path = Path(entry["weights"]["path"]).expanduser()
    return path if path.is_absolute() else CONFIG_DIR.parent / path


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
    entry = zoo_entry(name, zoo)
    fmt = entry["format"]
    if is_user_supplied(entry):
        from facesym.classifiers.byo import BYO_FORMATS, load_entry

        if fmt not in BYO_FORMATS:
            raise ValueError(f"classifier {name}: format {fmt!r} cannot read a user file; "
                             f"allowed: {', '.join(BYO_FORMATS)}")
        module = load_entry(name, entry, base_dir=CONFIG_DIR.parent).eval()
    else:
        if fmt not in READERS:
            raise ValueError(f"classifier {name}: unknown format {fmt!r}; "
                             f"allowed: {', '.join(sorted(READERS))}")
        w = entry["weights"]
        path = resource_file(w["resource"], w["file"], cache_dir=cache_dir, mirror=mirror)
        options = dict(entry.get("reader_options", {}))
        module = READERS[fmt](path, **options).eval()
    inp = entry["input"]
    spec = InputSpec(size=int(inp["size"]), colour=inp["colour"],
                     mean=tuple(float(v) for v in inp["mean"]),
                     std=tuple(float(v) for v in inp["std"]),
                     margin=float(inp.get("margin", 0.2)), channels=int(inp.get("channels", 0)))
    # The hybrid-int8 emulation of TFLite rounds layer inputs to int8: a different float
    # summation order (channels-last kernels) flips some roundings, so it stays NCHW.
    channels_last = bool(entry.get("channels_last", fmt != "tflite"))
    return Classifier(name=name, module=module, spec=spec, labels=tuple(entry["labels"]),
                      output=entry.get("output", "softmax"), weights_sha256=weight_files(entry),
                      channels_last=channels_last)
