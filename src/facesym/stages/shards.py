"""Faces in shards: which faces a shard holds, where its stores live, and reading them back.

Shard k of a study of N faces with S faces per shard holds faces [k·S, min((k+1)·S, N)), by their
global index: a face's draws and results never depend on the shard it falls in. The per-shard
stores of a stage are read back as one Dataset along ``face`` by :func:`open_shards`, which
loads only the variables asked for (a classify shard is small; render shards are never read
whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from facesym.cubes import open_cube

SHARD_DIGITS = 5


def shard_count(n_faces: int, per_shard: int) -> int:
    """Number of shards of a study of ``n_faces`` faces.

    >>> shard_count(210, 70), shard_count(211, 70), shard_count(5, 70)
    (3, 4, 1)
    """
    return -(-int(n_faces) // int(per_shard))


def shard_range(shard: int, n_faces: int, per_shard: int) -> list[int]:
    """``[start, stop)`` of the faces shard ``shard`` holds (a list: it goes into params).

    >>> shard_range(2, 211, 70), shard_range(3, 211, 70)
    ([140, 210], [210, 211])
    """
    start = int(shard) * int(per_shard)
    if not 0 <= start < n_faces:
        raise ValueError(f"shard {shard} is outside a study of {n_faces} faces "
                         f"({shard_count(n_faces, per_shard)} shards of {per_shard})")
    return [start, min(start + int(per_shard), int(n_faces))]


def shard_name(shard: int) -> str:
    """The file stem of shard ``shard``'s stores: ``shard-00000``."""
    return f"shard-{int(shard):0{SHARD_DIGITS}d}"


def shards_of_faces(faces: Iterable[int], per_shard: int) -> list[int]:
    """The sorted shards holding ``faces``."""
    return sorted({int(f) // int(per_shard) for f in faces})


def check_faces(ds: xr.Dataset, faces: Sequence[int], what: str | Path) -> None:
    """Raise ValueError unless ``ds`` holds exactly faces ``range(*faces)``."""
    want = np.arange(*faces)
    got = ds["face"].values
    if got.shape != want.shape or not (got == want).all():
        span = f"{got[0]}..{got[-1]}" if got.size else "none"
        raise ValueError(f"{what} holds faces {span} ({got.size}), but this shard is faces "
                         f"{faces[0]}..{faces[1] - 1}: its input is stale; delete it and re-run")


def open_shards(paths: Sequence[str | Path], variables: Sequence[str] | None = None
                ) -> xr.Dataset:
    """Open per-shard stores lazily and join them along ``face`` in face order.

    Only ``variables`` (all when None) are kept and loaded; attributes are those of the first
    shard (each shard's own provenance stays in its store). Faces must not repeat.
    """
    parts = []
    for path in paths:
        ds = open_cube(path)
        if variables is not None:
            ds = ds[list(variables)]
        parts.append(ds.load())
    if not parts:
        raise ValueError("no shard stores to open")
    parts.sort(key=lambda d: int(d["face"].values[0]) if d.sizes["face"] else -1)
    joined = xr.concat(parts, dim="face", data_vars="minimal", coords="minimal",
                       compat="override", join="exact", combine_attrs="override")
    faces = joined["face"].values
    if len(np.unique(faces)) != len(faces):
        raise ValueError(f"shards {[str(p) for p in paths]} hold the same face twice")
    return joined


def split_by_classifier(paths: Sequence[str], classifiers: Sequence[str]) -> dict[str, list[str]]:
    """The flat, classifier-major list of classify shard stores as {classifier: [stores]}.

    Every classifier has the same shards, so the list splits into equal runs; each store's
    folder must be named after its classifier (``classify/<classifier>/shard-*.zarr``).
    """
    n, k = len(paths), len(classifiers)
    if k == 0 or n % k:
        raise ValueError(f"{n} classify stores do not split evenly over classifiers "
                         f"{list(classifiers)}")
    out = {name: [str(p) for p in paths[i * (n // k):(i + 1) * (n // k)]]
           for i, name in enumerate(classifiers)}
    for name, group in out.items():
        wrong = [p for p in group if Path(p).parent.name != name]
        if wrong:
            raise ValueError(f"stores {wrong} are not classifier {name}'s shards")
    return out


def shard_inputs(groups: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Provenance inputs of a study-level stage: ``<classifier>/<shard>`` -> store."""
    return {f"{name}/{Path(p).stem}": p for name, group in groups.items() for p in group}
