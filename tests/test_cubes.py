"""Zarr cubes: atomic publication, named dims, provenance attributes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from facesym.cubes import CubeWriter, open_cube, write_dataset
from facesym.provenance import file_digest, provenance_attrs


def test_stream_writer_round_trip(tmp_path):
    path = tmp_path / "c.zarr"
    w = CubeWriter(path, coords={"face": [0, 1, 2], "side": ["left", "right"], "y": range(4)})
    w.add_variable("image", ("face", "side", "y"), np.uint8, chunks=(1, 2, 4))
    data = np.arange(24, dtype=np.uint8).reshape(3, 2, 4)
    for f in range(3):
        w.write("image", (slice(f, f + 1),), data[f : f + 1])
    assert not path.exists()  # nothing published before close
    w.close({"stage": "test"})
    ds = open_cube(path)
    assert ds["image"].dims == ("face", "side", "y")
    assert [str(s) for s in ds["side"].values] == ["left", "right"]
    np.testing.assert_array_equal(ds["image"].values, data)
    assert ds.attrs["stage"] == "test" and len(ds.attrs["data_digest"]) == 64


def test_interrupted_writer_leaves_nothing_that_looks_complete(tmp_path):
    path = tmp_path / "c.zarr"
    w = CubeWriter(path, coords={"face": [0, 1]})
    w.add_variable("v", ("face",), np.float32)
    w.write("v", (slice(0, 1),), np.ones(1, np.float32))
    w.abort()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not a finished facesym Zarr store"):
        open_cube(path)


def test_write_dataset_replaces_atomically_and_digests(tmp_path):
    path = tmp_path / "d.zarr"
    ds = xr.Dataset({"x": ("face", np.arange(3.0)), "e": ("face", ["a", "bb", "c"])},
                    coords={"face": [0, 1, 2]})
    write_dataset(ds, path, {"k": 1})
    first = open_cube(path).attrs["data_digest"]
    write_dataset(ds.assign(x=ds.x + 1), path, {"k": 2})
    again = open_cube(path)
    assert again.attrs["k"] == 2 and again.attrs["data_digest"] != first
    assert [str(e) for e in again["e"].values] == ["a", "bb", "c"]
    assert file_digest(path) == again.attrs["data_digest"]


def test_provenance_attrs_are_complete_and_serialisable(tmp_path):
    f = tmp_path / "in.bin"
    f.write_bytes(b"abc")
    attrs = provenance_attrs("render", {"render": {"size": 64}}, inputs={"x": f},
                             resources={"r/f": "00"}, seeds={"seed": 1}, extra={"device": "cpu"})
    inputs = json.loads(attrs["inputs"])
    assert inputs["x"]["digest"] == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert json.loads(attrs["config"]) == {"render": {"size": 64}}
    assert "numpy" in json.loads(attrs["libraries"])
    assert isinstance(attrs["git_dirty"], bool)
    xr.Dataset(attrs=attrs).to_zarr(tmp_path / "p.zarr", zarr_format=3, consolidated=False)


def test_plain_xarray_opens_without_warnings(tmp_path):
    path = tmp_path / "c.zarr"
    write_dataset(xr.Dataset({"v": ("face", np.arange(2.0))}, coords={"face": [0, 1]}), path,
                  {"stage": "t"})
    (path / ".snakemake_timestamp").touch()  # what Snakemake leaves in directory outputs
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path)
        assert ds["v"].dims == ("face",) and ds.attrs["stage"] == "t"


def test_stale_temp_of_a_killed_writer_is_removed(tmp_path):
    import socket
    import subprocess
    import sys

    path = tmp_path / "c.zarr"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)  # a process that has exited
    stale = tmp_path / f"c.zarr.tmp-{socket.gethostname()}-{dead_pid}"
    stale.mkdir()
    other_host = tmp_path / "c.zarr.tmp-elsewhere-1"
    other_host.mkdir()
    write_dataset(xr.Dataset({"v": ("x", np.arange(2))}), path, {})
    assert not stale.exists() and other_host.exists() and path.exists()
