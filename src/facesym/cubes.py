"""Zarr-backed labelled cubes: streamed, atomically published, opened as xarray Datasets.

A store is written into ``<path>.tmp-<pid>`` and renamed onto ``<path>`` only once complete,
so an interrupted job never leaves a store that looks finished.

Stores are Zarr format 3 with consolidated metadata. Consolidation is not (yet) part of the v3
spec, but zarr-python and xarray read it, and it lets a plain ``xarray.open_zarr(path)`` open a
store without falling back (and warning), and without listing the folder (where Snakemake leaves
a ``.snakemake_timestamp`` file). Readers that ignore it read the per-array metadata.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

STRING_DTYPE = np.dtypes.StringDType()


def _as_storable(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in ("U", "O", "T"):
        return arr.astype(STRING_DTYPE)
    return arr


def temp_path(path: Path) -> Path:
    """The temporary sibling a store is written to before it is published."""
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temporary siblings of ``path`` left by killed writers on this host.

    A writer killed hard (SIGKILL, node failure) cannot clean up; its folder is recognised by
    this host's name and a process id that no longer runs.
    """
    removed = []
    prefix = f"{path.name}.tmp-{socket.gethostname()}-"
    for tmp in path.parent.glob(f"{path.name}.tmp-*"):
        pid = tmp.name.removeprefix(prefix)
        if tmp.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp: Path, path: Path) -> None:
    """Atomically move a finished temporary store onto ``path`` (replacing any old one)."""
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    os.replace(tmp, path)


def _consolidate(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path))


def data_digest(ds: xr.Dataset) -> str:
    """SHA-256 over every variable's name, dims and bytes, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(name.encode())
        h.update(repr(var.dims).encode())
        values = np.asarray(var.values)
        if values.dtype.kind in ("U", "O", "T"):
            h.update("\x00".join(map(str, values.ravel())).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_dataset(ds: xr.Dataset, path: str | Path, attrs: Mapping[str, Any]) -> None:
    """Write a small in-memory Dataset as a Zarr (v3) store, atomically, with ``attrs``."""
    path = Path(path)
    ds = ds.copy()
    for name in list(ds.variables):
        if ds[name].dtype.kind in ("U", "O"):
            ds[name] = ds[name].astype(STRING_DTYPE)
    ds.attrs = {**ds.attrs, **attrs, "data_digest": data_digest(ds)}
    remove_stale_temps(path)
    tmp = temp_path(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
    _consolidate(tmp)
    publish(tmp, path)


class CubeWriter:
    """Streams large variables into a Zarr store chunk by chunk, then publishes it atomically.

    >>> w = CubeWriter(path, coords={"face": [0, 1], "y": range(4)})
    >>> w.add_variable("image", ("face", "y"), np.uint8, chunks=(1, 4))
    >>> w.write("image", (slice(0, 1),), block)
    >>> w.close(attrs)
    """

    def __init__(self, path: str | Path, coords: Mapping[str, Sequence | np.ndarray]) -> None:
        self.path = Path(path)
        remove_stale_temps(self.path)
        self.tmp = temp_path(self.path)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        self.sizes: dict[str, int] = {}
        self._hash = hashlib.sha256()
        self.arrays: dict[str, zarr.Array] = {}
        for dim, values in coords.items():
            self.add_coord(dim, values)

    def add_coord(self, dim: str, values: Sequence | np.ndarray) -> None:
        """Add a dimension coordinate after construction."""
        arr = _as_storable(values)
        self.sizes[dim] = len(arr)
        z = self.root.create_array(dim, shape=arr.shape, dtype=arr.dtype, dimension_names=[dim])
        z[...] = arr
        self._hash.update(dim.encode() + repr(arr.tolist()).encode())

    def add_variable(self, name: str, dims: Sequence[str], dtype: Any,
                     chunks: Sequence[int] | None = None, attrs: Mapping | None = None,
                     fill_value: Any = 0) -> None:
        """Declare a data variable over existing dims (sizes taken from the coords)."""
        shape = tuple(self.sizes[d] for d in dims)
        arr = self.root.create_array(name, shape=shape, dtype=dtype,
                                     chunks=tuple(chunks) if chunks else shape,
                                     dimension_names=list(dims), fill_value=fill_value)
        if attrs:
            arr.attrs.update(dict(attrs))
        self.arrays[name] = arr

    def write(self, name: str, region: tuple[slice | int, ...], values: np.ndarray) -> None:
        """Write ``values`` into ``region`` of variable ``name``."""
        self.arrays[name][region] = _as_storable(values)
        self._hash.update(name.encode() + repr(region).encode())
        arr = np.asarray(values)
        if arr.dtype.kind in ("U", "O", "T"):
            self._hash.update("\x00".join(map(str, arr.ravel())).encode())
        else:
            self._hash.update(np.ascontiguousarray(arr).tobytes())

    def close(self, attrs: Mapping[str, Any]) -> None:
        """Record attrs (plus a digest of everything written) and publish the store."""
        self.root.attrs.update({**dict(attrs), "data_digest": self._hash.hexdigest()})
        _consolidate(self.tmp)
        publish(self.tmp, self.path)

    def abort(self) -> None:
        """Remove the temporary store."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_cube(path: str | Path) -> xr.Dataset:
    """Open a facesym store lazily as an xarray Dataset (raises if it is not complete)."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"not a finished facesym Zarr store: {path}")
    try:
        return xr.open_zarr(path, consolidated=True, zarr_format=3)
    except (ValueError, KeyError):  # a store written without consolidated metadata
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
            return xr.open_zarr(path, consolidated=False, zarr_format=3)
