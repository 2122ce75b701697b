"""``facesym calibrate``: the sub-command's arguments and action (wired into facesym.cli)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

DEFAULT_BASE = Path("config") / "config.yaml"


def _calibrate(args: argparse.Namespace) -> int:
    from facesym.calibration.run import run_calibration
    from facesym.config import ConfigError, deep_merge, merged_config

    base = args.base
    if base is None and DEFAULT_BASE.is_file():
        base = DEFAULT_BASE
    overrides: dict = {}
    if args.set:
        from snakemake.cli import parse_config

        try:
            overrides = parse_config(args.set)
        except ValueError as err:
            raise ConfigError(f"--config: {err}") from None
    cfg = merged_config(list(args.config), overrides, base=base)
    calib: dict = {}
    for key in ("identities", "holdout_identities", "evaluations", "design", "seed",
                "threads"):
        if getattr(args, key) is not None:
            calib[key] = getattr(args, key)
    if args.search_set:
        calib["search_set"] = args.search_set
    if args.no_leave_one_out:
        calib["leave_one_out"] = False
    cfg = deep_merge(cfg, {"calibration": calib})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run_calibration(cfg, args.out)
    print(f"prototypes: {result.paths['prototypes']}\n"
          f"recognition: {result.paths['markdown']}")
    return 0


def add_calibrate_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``calibrate`` to the ``facesym`` sub-commands; returns its parser."""
    c = sub.add_parser(
        "calibrate", help="search expression prototypes that the classifiers recognise",
        description="Search AU intensities per emotion (CMA-ES, seeded) that maximise "
                    "recognition by the calibration.search_set classifiers on calibration "
                    "identities, report recognition on held-out identities and, leave one "
                    "classifier out, on classifiers each search did not see; write a "
                    "prototypes file that a study names in expressions.prototypes_file.")
    c.add_argument("config", nargs="*", type=Path,
                   help="config files merged on top of the base (the calibration: section "
                        "sits beside the study keys)")
    c.add_argument("--config", dest="set", nargs="+", metavar="KEY=VALUE",
                   help="values as snakemake --config takes them")
    c.add_argument("--base", type=Path, default=None,
                   help="the workflow's config file (default: config/config.yaml if present)")
    c.add_argument("--out", type=Path, default=Path("results") / "calibration",
                   help="output folder (default: results/calibration)")
    c.add_argument("--search-set", nargs="+", metavar="CLASSIFIER",
                   help="classifiers searched on (default: calibration.search_set, else the "
                        "study's classifiers)")
    c.add_argument("--no-leave-one-out", action="store_true",
                   help="skip the leave-one-classifier-out searches")
    c.add_argument("--identities", type=int, help="calibration identities")
    c.add_argument("--holdout-identities", type=int, help="held-out identities")
    c.add_argument("--evaluations", type=int, help="CMA-ES evaluations per fold and emotion")
    c.add_argument("--design", type=int, help="shared design points per emotion")
    c.add_argument("--seed", type=int, help="seed of the search identities and the search")
    c.add_argument("--threads", type=int, help="torch threads (0: torch's default)")
    c.set_defaults(func=_calibrate)
    return c
