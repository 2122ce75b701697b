"""The classifier zoo (``config/zoo.yaml``): declared entries → loaded :class:`Classifier`s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import yaml

from facesym.classifiers.base import Classifier, InputSpec
from facesym.resources import get_resource, resource_file

ZOO_PATH = Path(__file__).resolve().parents[3] / "config" / "zoo.yaml"


def _load_keras(path: Path) -> torch.nn.Module:
    from facesym.classifiers.keras_hdf5 import load_keras_hdf5

    return load_keras_hdf5(path)


def _load_faceapi(path: Path) -> torch.nn.Module:
    from facesym.classifiers.tfjs_faceapi import load_faceapi_expression

    return load_faceapi_expression(path)


def _load_networkv2(path: Path) -> torch.nn.Module:
    from facesym.classifiers.networkv2 import load_networkv2

    return load_networkv2(path)


READERS: dict[str, Callable[[Path], torch.nn.Module]] = {
    "keras_hdf5": _load_keras,
    "tfjs_faceapi": _load_faceapi,
    "networkv2": _load_networkv2,
}


def load_zoo(path: str | Path | None = None) -> dict[str, dict]:
    """Read the zoo file into {name: entry}."""
    p = Path(path) if path is not None else ZOO_PATH
    if not p.is_file():
        raise FileNotFoundError(f"classifier zoo not found: {p}")
    return yaml.safe_load(p.read_text())


def zoo_entry(name: str, zoo: Mapping[str, dict]) -> dict:
    """The zoo entry ``name``; KeyError lists the known classifiers."""
    if name not in zoo:
        raise KeyError(f"unknown classifier {name!r}; zoo has: {', '.join(sorted(zoo))}")
    return dict(zoo[name])


def weight_files(entry: Mapping) -> dict[str, str]:
    """{"<resource>/<member>": sha256} of every file the entry's reader reads."""
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
    if fmt not in READERS:
        raise ValueError(f"classifier {name}: unknown format {fmt!r}; "
                         f"allowed: {', '.join(sorted(READERS))}")
    w = entry["weights"]
    path = resource_file(w["resource"], w["file"], cache_dir=cache_dir, mirror=mirror)
    module = READERS[fmt](path).eval()
    inp = entry["input"]
    spec = InputSpec(size=int(inp["size"]), colour=inp["colour"],
                     mean=tuple(float(v) for v in inp["mean"]),
                     std=tuple(float(v) for v in inp["std"]),
                     margin=float(inp.get("margin", 0.2)), channels=int(inp.get("channels", 0)))
    return Classifier(name=name, module=module, spec=spec, labels=tuple(entry["labels"]),
                      output=entry.get("output", "softmax"), weights_sha256=weight_files(entry))
