"""Provenance attributes: what made a store (code, config, inputs, resources, seeds, libraries)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import facesym
from facesym.config import digest

LIBRARIES = ("numpy", "scipy", "torch", "xarray", "zarr", "pandas", "pingouin", "h5py",
             "snakemake", "matplotlib", "onnxruntime")
REPO_ROOT = Path(facesym.__file__).resolve().parents[2]


@functools.cache
def git_state(root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """Commit hash and dirty flag of the repository holding the code ("unknown" outside git)."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
        return {"git_commit": commit, "git_dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": True}


def library_versions() -> dict[str, str]:
    """Installed versions of the scientific libraries the pipeline uses."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, or for a Zarr store its recorded ``data_digest`` attribute."""
    p = Path(path)
    if p.is_dir():
        meta = p / "zarr.json"
        if meta.is_file():
            attrs = json.loads(meta.read_text()).get("attributes", {})
            if "data_digest" in attrs:
                return attrs["data_digest"]
        raise ValueError(f"{p} is a folder without a recorded data_digest")
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def provenance_attrs(
    stage: str,
    config_subset: Mapping,
    inputs: Mapping[str, str | Path] | None = None,
    resources: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Flat, Zarr-serialisable provenance attributes; nested parts are JSON strings."""
    inputs = inputs or {}
    attrs: dict[str, Any] = {
        "stage": stage,
        "facesym_version": facesym.__version__,
        **git_state(),
        "config_digest": digest(config_subset),
        "config": json.dumps(config_subset, sort_keys=True),
        "inputs": json.dumps({k: {"path": str(v), "digest": file_digest(v)}
                              for k, v in inputs.items()}, sort_keys=True),
        "resources": json.dumps(resources or {}, sort_keys=True),
        "seeds": json.dumps(seeds or {}, sort_keys=True),
        "libraries": json.dumps(library_versions(), sort_keys=True),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    for k, v in (extra or {}).items():
        attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, sort_keys=True)
    return attrs


def provenance_line(attrs: dict[str, Any]) -> str:
    """One line naming code version, config digest and input digests (for tables, figures)."""
    inputs = json.loads(attrs.get("inputs", "{}"))
    ins = ", ".join(f"{k} {v['digest'][:12]}" for k, v in inputs.items())
    dirty = " (dirty)" if attrs.get("git_dirty") else ""
    return (f"facesym {attrs['facesym_version']}, commit {attrs['git_commit'][:12]}{dirty}, "
            f"stage {attrs['stage']}, config {attrs['config_digest'][:12]}, inputs: {ins}, "
            f"created {attrs['created']}")
