"""``facesym`` command line: check a config, fetch resources, show what made a store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facesym.config import ConfigError, load_config
from facesym.resources import ResourceError, fetch_resource, load_manifest


def _check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"{args.config}: valid (study {cfg['study']!r}, "
          f"{cfg['scenes']['faces_per_emotion'] * len(cfg['scenes']['emotions'])} faces, "
          f"{len(cfg['classifiers'])} classifiers)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    ids = args.resources or list(load_manifest())
    for rid in ids:
        sums = fetch_resource(rid, args.cache, args.mirror)
        print(f"{rid}: {len(sums)} file(s) verified")
    return 0


def _pretty(value: object) -> str:
    """JSON-in-a-string attributes indented; everything else as it is."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), indent=2, sort_keys=True)
        except ValueError:
            return value
    return str(value)


def _provenance(args: argparse.Namespace) -> int:
    meta = Path(args.store) / "zarr.json"
    if not meta.is_file():
        print(f"not a Zarr store: {args.store}", file=sys.stderr)
        return 1
    attrs = json.loads(meta.read_text()).get("attributes", {})
    for key, value in attrs.items():
        print(f"{key}: {_pretty(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``facesym`` command."""
    ap = argparse.ArgumentParser(prog="facesym", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-config", help="validate a study config against the schema")
    c.add_argument("config", nargs="?", default="config/config.yaml")
    c.set_defaults(func=_check_config)
    f = sub.add_parser("fetch", help="fetch and verify third-party resources")
    f.add_argument("resources", nargs="*", help="resource ids (default: all declared)")
    f.add_argument("--cache", default=None, help="cache folder (default $FACESYM_CACHE)")
    f.add_argument("--mirror", default=None, help="offline mirror (default $FACESYM_MIRROR)")
    f.set_defaults(func=_fetch)
    p = sub.add_parser("provenance", help="print the provenance attributes of a store")
    p.add_argument("store")
    p.set_defaults(func=_provenance)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ResourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
