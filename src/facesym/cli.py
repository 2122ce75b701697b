"""``facesym`` command line: check a config, fetch resources, show what made a store, size a
study (power), calibrate expression prototypes, score a folder of photos, test the verdicts
against each classifier's own preprocessing (robustness)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facesym.calibration.cli import add_calibrate_parser
from facesym.config import (
    ConfigError,
    describe_estimate,
    merged_config,
    study_estimate,
    validate_study_config,
)
from facesym.resources import ResourceError, fetch_resource, load_manifest
from facesym.robustness import add_robustness_parser

DEFAULT_BASE = Path("config") / "config.yaml"


def _check_config(args: argparse.Namespace) -> int:
    """Merge and validate as the workflow does: base, each configfile, then --config."""
    base = args.base
    if base is None and DEFAULT_BASE.is_file():
        base = DEFAULT_BASE
    files = [*args.config, *(args.configfile or [])]
    try:
        from snakemake.cli import parse_config
    except ImportError:  # pragma: no cover - snakemake is a dependency
        parse_config = None
    overrides = {}
    if args.set:
        if parse_config is None:
            raise ConfigError("--config needs snakemake installed")
        try:
            overrides = parse_config(args.set)
        except ValueError as err:
            raise ConfigError(f"--config: {err}") from None
    cfg = validate_study_config(merged_config(files, overrides, base=base))
    what = ", ".join(str(f) for f in ([base] if base else []) + files) or "schema defaults"
    print(f"{what}: valid (study {cfg['study']!r}, {describe_estimate(study_estimate(cfg))}, "
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


def _power(args: argparse.Namespace) -> int:
    from facesym.power import power_report, write_power_report

    try:
        table = power_report(args.results, args.target, seed=args.seed,
                             n_resamples=args.resamples, render_rate=args.render_rate,
                             classify_rate=args.classify_rate)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(write_power_report(table, args.md, args.csv,
                             provenance=f"facesym power {args.results}"), end="")
    return 0


def _add_power_parser(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("power", help="faces per emotion needed for a target omnibus CI half-width",
                       description="From a finished study's classifier cubes: each classifier's "
                                   "omnibus mean difference per comparison with its stratified "
                                   "cluster-bootstrap CI, and the faces per emotion, images and "
                                   "hours needed for a CI half-width of --target.")
    w.add_argument("results", type=Path, help="a finished study folder, e.g. results/default")
    w.add_argument("--target", type=float, default=0.02, help="CI half-width to reach (0.02)")
    w.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the study's)")
    w.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (10000)")
    w.add_argument("--render-rate", type=float, default=100.0,
                   help="images rendered per second, for the time estimate (100)")
    w.add_argument("--classify-rate", type=float, default=40.0,
                   help="images per second classified by all classifiers together (40)")
    w.add_argument("--md", type=Path, default=None, help="also write the Markdown report here")
    w.add_argument("--csv", type=Path, default=None, help="also write the table as CSV here")
    w.set_defaults(func=_power)


def _score(args: argparse.Namespace) -> int:
    from facesym.photos.score import score_folder

    if not Path(args.photos_dir).is_dir():
        print(f"error: not a folder: {args.photos_dir}", file=sys.stderr)
        return 2
    table = score_folder(args.photos_dir, args.out, classifiers=args.classifiers,
                         composites_dir=args.composites, progress=not args.no_progress,
                         detectors=args.detectors, strengths=args.strengths,
                         workers=args.workers, upsample_policy=args.upsample)
    bad = int((table["status"] != "ok").sum())
    print(f"{len(table)} rows ({bad} bad) -> {args.out}")
    return 0


def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score",
                       help="asymmetry scores and classifier outputs for a folder of photos")
    s.add_argument("photos_dir", help="folder of images (searched recursively)")
    s.add_argument("--out", required=True, help="CSV to write (one row per image and face)")
    s.add_argument("--classifiers", nargs="+", default=None,
                   help="zoo names (default: every shipped one)")
    s.add_argument("--composites", default=None, metavar="DIR",
                   help="write 2D mirror composites (PNG) here")
    s.add_argument("--strengths", nargs="+", type=float, default=[1.0],
                   help="composite strengths a (default 1)")
    s.add_argument("--detectors", nargs="+", default=["dlib", "mtcnn"], choices=["dlib", "mtcnn"])
    s.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes for reading, detection and landmarks while this one runs "
                        "the classifiers (default 0: all in this process)")
    s.add_argument("--upsample", choices=["retry", "always"], default="retry",
                   help="dlib HOG upsampling: retry = without first, upsampled again only when "
                        "no face or a small one is found (default); always = every image")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_score)


def _compile(args: argparse.Namespace) -> int:
    from facesym.render.warmup import compile_kernels

    print(f"renderer kernels ready ({compile_kernels():.1f} s: compiled, or loaded from "
          "numba's cache)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``facesym`` command."""
    ap = argparse.ArgumentParser(prog="facesym", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "check-config", help="validate a study config exactly as the workflow does",
        description="Merge config/config.yaml (--base), the given config files and --config "
                    "values the way Snakemake does, then validate the result as the workflow "
                    "does (schema, zoo, classifier files, devices).")
    c.add_argument("config", nargs="*", type=Path,
                   help="config files merged in order on top of the base (like --configfile)")
    c.add_argument("--configfile", nargs="+", type=Path, help="more config files, as snakemake")
    c.add_argument("--config", dest="set", nargs="+", metavar="KEY=VALUE",
                   help="values as snakemake --config takes them")
    c.add_argument("--base", type=Path, default=None,
                   help="the workflow's config file (default: config/config.yaml if present)")
    c.set_defaults(func=_check_config)
    f = sub.add_parser("fetch", help="fetch and verify third-party resources")
    f.add_argument("resources", nargs="*", help="resource ids (default: all declared)")
    f.add_argument("--cache", default=None, help="cache folder (default $FACESYM_CACHE)")
    f.add_argument("--mirror", default=None, help="offline mirror (default $FACESYM_MIRROR)")
    f.set_defaults(func=_fetch)
    k = sub.add_parser("compile", help="compile the CPU renderer's kernels once (setup does)")
    k.set_defaults(func=_compile)
    p = sub.add_parser("provenance", help="print the provenance attributes of a store")
    p.add_argument("store")
    p.set_defaults(func=_provenance)
    _add_power_parser(sub)
    add_calibrate_parser(sub)
    add_robustness_parser(sub)
    _add_score_parser(sub)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ResourceError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
