"""Zarr-backed labelled cubes: streamed, atomically published, verified, opened as xarray Datasets.

A store is written into ``<path>.tmp-<host>-<pid>`` and renamed onto ``<path>`` only once
complete, so an interrupted job never leaves a store that looks finished.

Stores are Zarr format 3 with consolidated metadata. Consolidation is not (yet) part of the v3
spec, but zarr-python and xarray read it, and it lets a plain ``xarray.open_zarr(path)`` open a
store without falling back (and warning), and without listing the folder (where Snakemake leaves
a ``.snakemake_timestamp`` file). Readers that ignore it read the per-array metadata.

Integrity: Zarr reads a chunk that is absent as the array's fill value, so a deleted chunk would
silently read as (for images) black pixels. Every array is therefore written with the ``crc32c``
checksum codec after compression, and every store carries a manifest (:data:`MANIFEST`) of the
chunk keys it was written with and their sizes. :func:`open_cube` checks on open that every
listed chunk is there with its size, and checks each chunk's key, size and checksum again as it
is read; damage raises :class:`CubeIntegrityError` naming the store, the array and the chunk
key. The manifest's own SHA-256 is the root attribute ``chunk_manifest``, so a lost or edited
manifest is noticed too. A plain ``xarray.open_zarr`` still verifies the checksum codec (a
corrupt chunk fails, a missing one does not). A store from before manifests existed (no
manifest, no ``chunk_manifest`` attribute) opens with a warning and no chunk checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import ByteRequest
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore, WrapperStore

STRING_DTYPE = np.dtypes.StringDType()
MANIFEST = "facesym_chunks.json"
_SLAB_BYTES = 1 << 26  # data_digest reads lazy variables in slabs of about this size


class CubeIntegrityError(RuntimeError):
    """A chunk of a finished store is missing, truncated or corrupt."""


def compressors() -> tuple[ZstdCodec, Crc32cCodec]:
    """The bytes-to-bytes codecs of every array: zarr's default Zstd, then a CRC-32C checksum."""
    return ZstdCodec(level=0, checksum=False), Crc32cCodec()


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


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling published onto it, so an
    interrupted job never leaves a complete-looking file."""
    path = Path(path)
    tmp = temp_path(path)
    tmp.write_text(text)
    publish(tmp, path)


def publish(tmp: Path, path: Path) -> None:
    """Atomically move a finished temporary store onto ``path`` (replacing any old one)."""
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    os.replace(tmp, path)


def _consolidate(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", message=f".*{MANIFEST}.*")
        zarr.consolidate_metadata(str(path))


# --- integrity: chunk manifest and a verifying store -------------------------------------------


def _write_manifest(path: Path) -> str:
    """List every chunk file of the store at ``path`` with its size; return the list's SHA-256.

    The digest goes into the root attributes (``chunk_manifest``), so that a lost or edited
    manifest is itself noticed.
    """
    chunks = {}
    for folder, _, files in os.walk(path):
        for name in files:
            rel = (Path(folder) / name).relative_to(path).as_posix()
            if name != "zarr.json" and rel != MANIFEST:
                chunks[rel] = (Path(folder) / name).stat().st_size
    manifest = {"format": 1, "checksum": "crc32c", "chunks": dict(sorted(chunks.items()))}
    text = json.dumps(manifest, indent=0)
    (path / MANIFEST).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def _damage(store: Path, key: str, what: str) -> str:
    array, sep, chunk = key.rpartition("/c")
    index = tuple(int(i) for i in chunk.split("/") if i.isdigit())
    return (f"damaged store {store}: array {array if sep else key!r} chunk key {key!r} "
            f"(chunk index {index}) {what}; delete the store and re-run the job that writes it")


def _read_manifest(path: Path) -> dict[str, int] | None:
    """The chunk sizes a store was written with, checked against the folder (None if unlisted)."""
    file = path / MANIFEST
    recorded = json.loads((path / "zarr.json").read_text()).get("attributes", {}).get(
        "chunk_manifest")
    if not file.is_file():
        if recorded:
            raise CubeIntegrityError(f"damaged store {path}: its chunk manifest {MANIFEST} is "
                                     "missing; delete the store and re-run the job that writes it")
        return None
    text = file.read_text()
    if recorded and hashlib.sha256(text.encode()).hexdigest() != recorded:
        raise CubeIntegrityError(f"damaged store {path}: its chunk manifest {MANIFEST} was "
                                 "changed; delete the store and re-run the job that writes it")
    chunks: dict[str, int] = json.loads(text)["chunks"]
    for key, size in chunks.items():
        try:
            found = (path / key).stat().st_size
        except FileNotFoundError:
            raise CubeIntegrityError(_damage(path, key, "is missing")) from None
        if found != size:
            raise CubeIntegrityError(
                _damage(path, key, f"has {found} bytes where {size} were written"))
    return chunks


class VerifiedStore(WrapperStore[LocalStore]):
    """A read-only local store that checks each listed chunk's presence, size and CRC-32C."""

    def __init__(self, store: LocalStore, path: Path, chunks: Mapping[str, int]) -> None:
        super().__init__(store)
        self.path, self.chunks = path, chunks

    def _with_store(self, store: LocalStore) -> VerifiedStore:
        return type(self)(store, self.path, self.chunks)

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        """Read ``key``; raise CubeIntegrityError if a listed chunk is absent or damaged."""
        buf = await self._store.get(key, prototype, byte_range)
        size = self.chunks.get(key)
        if size is None:
            return buf
        if buf is None:
            raise CubeIntegrityError(_damage(self.path, key, "is missing"))
        if byte_range is None:
            data = buf.as_numpy_array()
            if len(data) != size:
                raise CubeIntegrityError(
                    _damage(self.path, key, f"has {len(data)} bytes where {size} were written"))
            stored = bytes(data[-4:])
            if np.uint32(google_crc32c.value(data[:-4])).tobytes() != stored:
                raise CubeIntegrityError(_damage(self.path, key, "fails its CRC-32C checksum"))
        return buf


# --- digest --------------------------------------------------------------------------------------


def _slabs(var: xr.Variable) -> Iterator[np.ndarray]:
    """The values of ``var`` in C order, as consecutive slabs along its first dimension."""
    if var.ndim == 0 or var.shape[0] == 0:
        yield np.asarray(var.values)
        return
    row = max(1, int(np.prod(var.shape[1:])) * max(var.dtype.itemsize, 1))
    step = max(1, _SLAB_BYTES // row)
    for start in range(0, var.shape[0], step):
        yield np.asarray(var[start : start + step].values)


def data_digest(ds: xr.Dataset) -> str:
    """SHA-256 over every variable's name, dims and values, in sorted order of names.

    Numbers enter as their C-order bytes, strings NUL-joined. Lazy variables (an opened store)
    are read in slabs, so memory stays bounded; the digest of an opened store equals the
    digest of the same data in memory.

    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"v": ("face", np.arange(3, dtype=np.int64))}, coords={"face": [0, 1, 2]})
    >>> data_digest(ds)[:16]
    '90c9768fc36d1d88'
    >>> data_digest(ds) == data_digest(ds.copy(deep=True))
    True
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(name.encode())
        h.update(repr(var.dims).encode())
        started = False
        for values in _slabs(var):
            if values.dtype.kind in ("U", "O", "T"):
                if values.size == 0:
                    continue
                if started:
                    h.update(b"\x00")
                h.update("\x00".join(map(str, values.ravel())).encode())
                started = True
            else:
                h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


# --- writing and reading -------------------------------------------------------------------------


def write_dataset(ds: xr.Dataset, path: str | Path, attrs: Mapping[str, Any]) -> None:
    """Write a small in-memory Dataset as a Zarr (v3) store, atomically, with ``attrs``.

    The store's ``data_digest`` attribute is :func:`data_digest` of ``ds``.

    >>> import tempfile, numpy as np, xarray as xr
    >>> path = Path(tempfile.mkdtemp()) / "scores.zarr"
    >>> ds = xr.Dataset({"score": ("face", [0.5, 0.25])}, coords={"face": [0, 1]})
    >>> write_dataset(ds, path, {"stage": "example"})
    >>> back = open_cube(path)
    >>> back.attrs["stage"], back.attrs["data_digest"] == data_digest(ds)
    ('example', True)
    >>> shutil.rmtree(path.parent)
    """
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
    encoding = {name: {"compressors": compressors()} for name in ds.variables}
    ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    zarr.open_group(str(tmp), mode="r+").attrs["chunk_manifest"] = _write_manifest(tmp)
    _consolidate(tmp)
    publish(tmp, path)


class CubeWriter:
    """Streams large variables into a Zarr store chunk by chunk, then publishes it atomically.

    ``close`` records ``data_digest`` computed from the stored data (read back in slabs), so it
    does not depend on how the writes were batched.

    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "cube.zarr"
    >>> w = CubeWriter(path, coords={"face": [0, 1], "y": range(4)})
    >>> w.add_variable("image", ("face", "y"), np.uint8, chunks=(1, 4))
    >>> w.write("image", (slice(0, 2),), np.arange(8, dtype=np.uint8).reshape(2, 4))
    >>> w.close({"stage": "example"})
    >>> cube = open_cube(path)
    >>> cube["image"].dims, int(cube["image"].sum())
    (('face', 'y'), 28)
    >>> cube.attrs["data_digest"] == data_digest(cube)
    True
    >>> shutil.rmtree(path.parent)
    """

    def __init__(self, path: str | Path, coords: Mapping[str, Sequence | np.ndarray]) -> None:
        self.path = Path(path)
        remove_stale_temps(self.path)
        self.tmp = temp_path(self.path)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        self.sizes: dict[str, int] = {}
        self.arrays: dict[str, zarr.Array] = {}
        for dim, values in coords.items():
            self.add_coord(dim, values)

    def add_coord(self, dim: str, values: Sequence | np.ndarray) -> None:
        """Add a dimension coordinate after construction."""
        arr = _as_storable(values)
        self.sizes[dim] = len(arr)
        z = self.root.create_array(dim, shape=arr.shape, dtype=arr.dtype, dimension_names=[dim],
                                   compressors=compressors())
        z[...] = arr

    def add_variable(self, name: str, dims: Sequence[str], dtype: Any,
                     chunks: Sequence[int] | None = None, attrs: Mapping | None = None,
                     fill_value: Any = 0) -> None:
        """Declare a data variable over existing dims (sizes taken from the coords)."""
        shape = tuple(self.sizes[d] for d in dims)
        arr = self.root.create_array(name, shape=shape, dtype=dtype,
                                     chunks=tuple(chunks) if chunks else shape,
                                     dimension_names=list(dims), fill_value=fill_value,
                                     compressors=compressors())
        if attrs:
            arr.attrs.update(dict(attrs))
        self.arrays[name] = arr

    def write(self, name: str, region: tuple[slice | int, ...], values: np.ndarray) -> None:
        """Write ``values`` into ``region`` of variable ``name``."""
        self.arrays[name][region] = _as_storable(values)

    def close(self, attrs: Mapping[str, Any]) -> None:
        """Record attrs plus the digest of the stored data, and publish the store."""
        manifest = _write_manifest(self.tmp)
        self.root.attrs["chunk_manifest"] = manifest
        _consolidate(self.tmp)
        digest = data_digest(open_cube(self.tmp))
        self.root.attrs.update({**dict(attrs), "data_digest": digest, "chunk_manifest": manifest})
        _consolidate(self.tmp)
        publish(self.tmp, self.path)

    def abort(self) -> None:
        """Remove the temporary store."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_cube(path: str | Path) -> xr.Dataset:
    """Open a facesym store lazily as an xarray Dataset, verifying its chunks.

    Raises FileNotFoundError if the store is not complete, and :class:`CubeIntegrityError`
    (naming store, array and chunk key) if a chunk is missing or damaged: on open for what
    the manifest shows, and while reading for each chunk's checksum.

    >>> import tempfile, numpy as np, xarray as xr
    >>> path = Path(tempfile.mkdtemp()) / "cube.zarr"
    >>> write_dataset(xr.Dataset({"v": ("face", np.arange(2.0))}), path, {})
    >>> open_cube(path)["v"].values
    array([0., 1.])
    >>> next(path.glob("v/c/*")).unlink()  # lose a chunk
    >>> open_cube(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    facesym.cubes.CubeIntegrityError: damaged store ...: array 'v' chunk key 'v/c/0' ...missing...
    >>> shutil.rmtree(path.parent)
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"not a finished facesym Zarr store: {path}")
    chunks = _read_manifest(path)
    store: LocalStore | VerifiedStore = LocalStore(path, read_only=True)
    if chunks is None:
        warnings.warn(f"store {path} has no chunk manifest ({MANIFEST}; written by an older "
                      "facesym): a missing chunk would read as fill values. Re-run the job "
                      "that writes it to add one.", stacklevel=2)
    else:
        store = VerifiedStore(store, path, chunks)
    try:
        return xr.open_zarr(store, consolidated=True, zarr_format=3)
    except (ValueError, KeyError):  # a store written without consolidated metadata
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
            warnings.filterwarnings("ignore", message=f".*{MANIFEST}.*")
            return xr.open_zarr(store, consolidated=False, zarr_format=3)
