"""Cube integrity: a missing or damaged chunk is an error naming store, array and chunk key.

Before: a deleted chunk read back as fill values (a black image) and a truncated one failed with
a bare "Zstd decompression error"; the renders' ``data_digest`` hashed the write calls, so it
changed with ``render.batch_size``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from facesym.cubes import MANIFEST, CubeIntegrityError, CubeWriter, data_digest, open_cube
from facesym.cubes import write_dataset as write_store
from facesym.provenance import file_digest

SIDES, STRENGTHS, SIZE = ["left", "right", "control"], [0.0, 0.5, 1.0], 16


def _images(n_faces: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    shape = (n_faces, len(SIDES), len(STRENGTHS), SIZE, SIZE, 3)
    return rng.integers(1, 255, size=shape, dtype=np.uint8)  # no all-zero (fill value) chunk


def _renders(path: Path, images: np.ndarray, batch: int, order: int = 1) -> None:
    """A renders-shaped cube (one chunk per face), written ``batch`` faces per call."""
    n = len(images)
    w = CubeWriter(path, coords={"face": np.arange(n), "side": SIDES, "strength": STRENGTHS,
                                 "y": np.arange(SIZE), "x": np.arange(SIZE),
                                 "channel": ["R", "G", "B"]})
    w.add_variable("image", ("face", "side", "strength", "y", "x", "channel"), np.uint8,
                   chunks=(1, len(SIDES), len(STRENGTHS), SIZE, SIZE, 3))
    w.add_variable("asym_3d", ("face", "side", "strength"), np.float32)
    w.add_variable("emotion", ("face",), np.dtypes.StringDType(), fill_value="")
    w.write("emotion", (slice(None),), np.array(["happy", "sad", "fear", "anger"][:n] * n)[:n])
    starts = list(range(0, n, batch))[::order]
    for start in starts:
        region = (slice(start, min(n, start + batch)),)
        w.write("image", region, images[region])
        w.write("asym_3d", region, images[region].mean(axis=(-3, -2, -1)).astype(np.float32))
    w.close({"stage": "render"})


@pytest.fixture()
def renders(tmp_path: Path) -> Path:
    path = tmp_path / "renders.zarr"
    _renders(path, _images(4), batch=2)
    return path


def _expect(err: pytest.ExceptionInfo, store: Path, key: str, what: str) -> None:
    msg = str(err.value)
    assert str(store) in msg and f"chunk key {key!r}" in msg and what in msg, msg


def test_deleted_chunk_is_named_on_open(renders: Path):
    (renders / "image/c/1/0/0/0/0/0").unlink()
    with pytest.raises(CubeIntegrityError) as err:
        open_cube(renders)
    _expect(err, renders, "image/c/1/0/0/0/0/0", "is missing")
    assert "array 'image'" in str(err.value)


def test_truncated_chunk_is_named_on_open(renders: Path):
    chunk = renders / "image/c/2/0/0/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:-100])
    with pytest.raises(CubeIntegrityError) as err:
        open_cube(renders)
    _expect(err, renders, "image/c/2/0/0/0/0/0", "bytes where")


def test_chunk_lost_after_open_is_named_on_read(renders: Path):
    ds = open_cube(renders)
    (renders / "image/c/3/0/0/0/0/0").unlink()
    np.testing.assert_array_equal(ds["image"][0].values, _images(4)[0])  # others still read
    with pytest.raises(CubeIntegrityError) as err:
        ds["image"].sel(face=3).load()
    _expect(err, renders, "image/c/3/0/0/0/0/0", "is missing")


def test_flipped_byte_fails_the_checksum_naming_the_chunk(renders: Path):
    chunk = renders / "image/c/0/0/0/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    chunk.write_bytes(bytes(data))
    ds = open_cube(renders)
    with pytest.raises(CubeIntegrityError) as err:
        ds["image"].load()
    _expect(err, renders, "image/c/0/0/0/0/0/0", "CRC-32C")
    with pytest.raises(ValueError, match="checksum"):  # plain xarray still refuses it
        xr.open_zarr(renders)["image"].load()


def test_write_dataset_store_damage_is_named(tmp_path: Path):
    path = tmp_path / "scenes.zarr"
    ds = xr.Dataset({"yaw": ("face", np.linspace(-5, 5, 6)), "emotion": ("face", ["a"] * 6)},
                    coords={"face": np.arange(6)})
    write_store(ds, path, {"stage": "scenes"})
    assert data_digest(open_cube(path)) == open_cube(path).attrs["data_digest"]
    (path / "yaw/c/0").unlink()
    with pytest.raises(CubeIntegrityError) as err:
        open_cube(path)
    _expect(err, path, "yaw/c/0", "is missing")
    write_store(ds, path, {"stage": "scenes"})
    emotion = path / "emotion/c/0"
    emotion.write_bytes(emotion.read_bytes()[:3])
    with pytest.raises(CubeIntegrityError) as err:
        open_cube(path)
    _expect(err, path, "emotion/c/0", "has 3 bytes where")


def test_lost_or_edited_manifest_is_noticed(renders: Path):
    text = (renders / MANIFEST).read_text()
    (renders / MANIFEST).write_text(text.replace('"image/c/1/0/0/0/0/0"', '"image/c/9/0/0/0/0/0"'))
    with pytest.raises(CubeIntegrityError, match=f"{re.escape(str(renders))}.*{MANIFEST} was "):
        open_cube(renders)
    (renders / MANIFEST).unlink()
    with pytest.raises(CubeIntegrityError, match=f"{re.escape(str(renders))}.*{MANIFEST} is "):
        open_cube(renders)


def test_store_from_before_manifests_opens_with_a_warning(renders: Path):
    """A store without manifest or ``chunk_manifest`` attribute: as an older facesym wrote it."""
    (renders / MANIFEST).unlink()
    doc = json.loads((renders / "zarr.json").read_text())
    del doc["attributes"]["chunk_manifest"]
    (renders / "zarr.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="no chunk manifest"):
        ds = open_cube(renders)
    np.testing.assert_array_equal(ds["image"].values, _images(4))


def test_intact_store_opens_silently(renders: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_cube(renders)
        np.testing.assert_array_equal(ds["image"].values, _images(4))


def test_digest_is_a_function_of_the_data_not_the_batching(tmp_path: Path):
    images = _images(5)
    digests = []
    for batch, order in [(1, 1), (2, 1), (5, 1), (2, -1)]:  # -1: batches written last first
        path = tmp_path / f"r{batch}{order}.zarr"
        _renders(path, images, batch, order)
        ds = open_cube(path)
        assert ds.attrs["data_digest"] == data_digest(ds) == file_digest(path)
        digests.append(ds.attrs["data_digest"])
    assert len(set(digests)) == 1
    in_memory = open_cube(tmp_path / "r11.zarr").load()
    assert data_digest(in_memory) == digests[0]
    changed = images.copy()
    changed[4, 0, 0, 0, 0, 0] ^= 1
    _renders(tmp_path / "other.zarr", changed, 1)
    assert open_cube(tmp_path / "other.zarr").attrs["data_digest"] != digests[0]


def test_digest_streams_lazy_variables_in_slabs(monkeypatch: pytest.MonkeyPatch, renders: Path):
    """A slab far smaller than the image gives the same digest as reading it whole."""
    whole = data_digest(open_cube(renders))
    import facesym.cubes as cubes

    monkeypatch.setattr(cubes, "_SLAB_BYTES", 1)
    assert data_digest(open_cube(renders)) == whole
