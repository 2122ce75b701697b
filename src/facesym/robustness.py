"""``facesym robustness``: do a finished study's verdicts survive each classifier's own
preprocessing?

The study classifies every render with facesym's preprocessing (``preprocess: facesym``: the
landmark box with a margin, antialiased resampling). Here every chosen classifier classifies
the same stored renders again with ``preprocess: original`` (its package's own crop, grey
conversion and resize, :mod:`facesym.classifiers.original`); the cubes land beside the study
(``<out>/<classifier>/shard-*.zarr``, with provenance). Then:

- the agreement of the two (:func:`facesym.classifiers.robustness.preprocessing_agreement`):
  top-1 agreement and |Δp| over all images;
- the verdict of each classifier under both preprocessings, by the functions the stats stage
  chains (:func:`facesym.stats.family.effect_tests` → :func:`facesym.stats.omnibus_table` →
  :func:`facesym.stats.verdict.verdicts`) with the study's own stats settings and seed. The
  family is the study's: for the original verdicts the chosen classifiers' cubes replace their
  facesym ones and every other classifier keeps its cube, so the max-T correction runs over
  a family of the same size (with every classifier chosen, the default, it is the all-original
  family).

Outputs: ``robustness.csv`` (one row per classifier) and ``robustness.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from facesym.cubes import open_cube, write_dataset
from facesym.stages.shards import open_shards

log = logging.getLogger(__name__)

AGREEMENT_VARIABLES = ("prob_native", "emotion")
HOLDS, CHANGES = "holds", "changes"
MODES = ("facesym", "original")
CONTRAST_FIELDS = ("mean_diff", "ci_low", "ci_high", "p_maxT", "direction")


@dataclass
class Study:
    """A finished study's stores and the settings its statistics ran with."""

    root: Path
    classifiers: list[str]
    renders: list[Path]
    cubes: dict[str, list[Path]]
    stats_cfg: dict
    seed: int
    stats_line: str


def _attrs_json(attrs: Mapping, key: str) -> object:
    value = attrs.get(key)
    return json.loads(value) if isinstance(value, str) else value


def find_study(results: str | Path) -> Study:
    """The stores of the finished study in ``results`` (e.g. ``results/default``): render and
    classify shards, and the classifiers, stats settings and seed its ``stats/tests.zarr``
    recorded. FileNotFoundError says what is missing."""
    from facesym.provenance import provenance_line

    root = Path(results)
    tests = root / "stats" / "tests.zarr"
    if not (tests / "zarr.json").is_file():
        raise FileNotFoundError(f"{tests} not found: {root} is not a finished study (run "
                                "snakemake first)")
    attrs = json.loads((tests / "zarr.json").read_text())["attributes"]
    cfg = _attrs_json(attrs, "config")
    renders = sorted((root / "renders").glob("shard-*.zarr"))
    if not renders:
        raise FileNotFoundError(f"no render shards in {root / 'renders'}")
    names = [p.name for p in renders]
    cubes = {}
    for name in cfg["classifiers"]:
        found = sorted((root / "classify" / name).glob("shard-*.zarr"))
        if [p.name for p in found] != names:
            raise FileNotFoundError(f"classifier {name}: classify shards {[p.name for p in found]}"
                                    f" do not match the render shards {names}")
        cubes[name] = found
    return Study(root, list(cfg["classifiers"]), renders, cubes, dict(cfg["stats"]),
                 int(cfg["seed"]), provenance_line(attrs))


def original_entry(name: str, entry: Mapping) -> dict:
    """The zoo entry a study used for ``name`` switched to ``preprocess: original``; its
    ``original_preprocess`` recipe, else the shipped zoo's for that name (entries recorded
    before the key existed). ValueError when neither names one."""
    recipe = entry.get("original_preprocess")
    if not recipe:
        from facesym.classifiers.zoo import load_zoo

        recipe = load_zoo().get(name, {}).get("original_preprocess")
    if not recipe:
        raise ValueError(f"classifier {name}: its zoo entry has no original_preprocess (the "
                         "package pipeline to reproduce), so it cannot be re-run with "
                         "preprocess: original")
    return {**dict(entry), "preprocess": "original", "original_preprocess": recipe}


def _up_to_date(out: Path, render: Path, entry: Mapping) -> bool:
    """Whether ``out`` was made from ``render`` as it is now with ``entry``."""
    from facesym.provenance import file_digest

    meta = out / "zarr.json"
    if not meta.is_file():
        return False
    attrs = json.loads(meta.read_text()).get("attributes", {})
    inputs = _attrs_json(attrs, "inputs") or {}
    return (inputs.get("renders", {}).get("digest") == file_digest(render)
            and _attrs_json(attrs, "zoo_entry") == dict(entry))


def classify_original(study: Study, name: str, out_dir: Path, *, cache_dir: str | Path,
                      mirror: str | Path | None = None, device: str | None = None,
                      progress: bool = True) -> list[Path]:
    """Classify every render shard of ``study`` with classifier ``name`` under
    ``preprocess: original`` into ``out_dir/<name>/<shard>.zarr``; shards already made from
    the same renders with the same entry are kept. Returns the shard stores."""
    from facesym.classifiers.zoo import load_classifier
    from facesym.provenance import provenance_attrs
    from facesym.stages.classify import classify_attrs, classify_renders

    first = open_cube(study.cubes[name][0]).attrs
    entry = original_entry(name, _attrs_json(first, "zoo_entry"))
    ccfg = dict(_attrs_json(first, "config")["classify"])
    device = device or ccfg["device"]
    clf = None
    paths = []
    for render, cube in zip(study.renders, study.cubes[name], strict=True):
        out = out_dir / name / render.name
        paths.append(out)
        if _up_to_date(out, render, entry):
            log.info("%s %s: up to date", name, render.name)
            continue
        if clf is None:
            clf = load_classifier(name, {name: entry}, cache_dir=cache_dir, mirror=mirror)
            used = _attrs_json(first, "weights_sha256")
            if used and dict(used) != dict(clf.weights_sha256):
                raise ValueError(f"classifier {name}: the weights found ({clf.weights_sha256}) "
                                 f"are not those the study used ({used})")
        renders = open_cube(render)
        if not np.array_equal(renders["face"].values, open_cube(cube)["face"].values):
            raise ValueError(f"{render} and {cube} hold other faces: the study is stale")
        ds = classify_renders(clf, renders, batch_size=ccfg["batch_size"], device=device,
                              progress=progress)
        faces = [int(renders["face"].values[0]), int(renders["face"].values[-1]) + 1]
        cfg = {"classify": ccfg, "classifier": name, "zoo_entry": entry, "faces": faces}
        attrs = provenance_attrs(
            "robustness", cfg, inputs={"renders": render}, resources=clf.weights_sha256,
            extra={**classify_attrs(clf, entry, device), "faces": faces,
                   "preprocess": "original", "study_cube": str(cube)})
        write_dataset(ds, out, attrs)
        log.info("%s %s: %d images with preprocess: original (%s)", name, render.name,
                 ds["prob"].size // ds.sizes["label"], entry["original_preprocess"])
    return paths


def study_verdicts(cubes: Mapping[str, xr.Dataset], stats_cfg: Mapping, seed: int
                   ) -> pd.DataFrame:
    """The omnibus table with each classifier's verdict, computed exactly as the stats stage
    does (:func:`~facesym.stats.family.effect_tests` with the study's settings, then
    :func:`~facesym.stats.omnibus_table` and :func:`~facesym.stats.verdict.verdicts`).
    Columns: the omnibus table's, plus ``verdict``."""
    from facesym.stats import effect_tests, omnibus_table, verdicts
    from facesym.stats.family import DEFAULT_EQUIVALENCE_MARGIN, DEFAULT_FLOOR

    tests = effect_tests(dict(cubes), alpha=stats_cfg["alpha"],
                         correction=stats_cfg["correction"], n_flips=stats_cfg.get("n_flips"),
                         seed=seed, floor=stats_cfg.get("floor", DEFAULT_FLOOR),
                         equivalence_margin=stats_cfg.get("equivalence_margin",
                                                          DEFAULT_EQUIVALENCE_MARGIN))
    omnibus = omnibus_table(tests)
    answer = verdicts(omnibus).set_index("classifier")["verdict"]
    omnibus["verdict"] = omnibus["classifier"].map(answer)
    return omnibus


def robustness_table(agreement: pd.DataFrame, omnibus: Mapping[str, pd.DataFrame],
                     recipes: Mapping[str, str]) -> pd.DataFrame:
    """One row per classifier of ``agreement``: its recipe, verdict under each preprocessing
    (``omnibus``: mode → :func:`study_verdicts`), holds/changes, every symmetry contrast under
    both (``<comparison>_<mode>_<field>``) and the agreement columns."""
    from facesym.vocab import is_contrast

    rows = []
    for rec in agreement.to_dict("records"):
        name = rec["classifier"]
        row: dict = {"classifier": name, "original_preprocess": recipes[name]}
        for mode in MODES:
            cells = omnibus[mode][omnibus[mode]["classifier"] == name]
            row[f"verdict_{mode}"] = cells["verdict"].iloc[0]
        row["verdict_robust"] = HOLDS if row["verdict_facesym"] == row["verdict_original"] \
            else CHANGES
        for mode in MODES:
            cells = omnibus[mode][omnibus[mode]["classifier"] == name]
            for cell in cells.to_dict("records"):
                if is_contrast(cell["comparison"]):
                    for field in CONTRAST_FIELDS:
                        row[f"{cell['comparison']}_{mode}_{field}"] = cell[field]
        row.update({k: v for k, v in rec.items() if k != "classifier"})
        rows.append(row)
    return pd.DataFrame(rows)


def _contrast_cell(row: Mapping, comparison: str, mode: str) -> str:
    key = f"{comparison}_{mode}_"
    if key + "mean_diff" not in row or not np.isfinite(row[key + "mean_diff"]):
        return "n/a"
    return (f"{row[key + 'mean_diff']:+.3f} [{row[key + 'ci_low']:+.3f}, "
            f"{row[key + 'ci_high']:+.3f}] {row[key + 'direction']}")


def robustness_markdown(table: pd.DataFrame, agreement_md: str, study_line: str,
                        family_note: str) -> str:
    """``robustness.md``: the verdict table, the agreement table and how to read them."""
    comparisons = sorted({c.split("_facesym_")[0] for c in table.columns
                          if c.endswith("_facesym_mean_diff")})
    head = ["classifier", "original recipe", "verdict (facesym)", "verdict (original)"]
    for comp in comparisons:
        side = comp.removesuffix("_vs_control")
        head += [f"{side} − control (facesym)", f"{side} − control (original)"]
    head += ["top-1 agreement", "mean / max abs dp", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.to_dict("records"):
        cells = [row["classifier"], f"`{row['original_preprocess']}`", row["verdict_facesym"],
                 row["verdict_original"]]
        for comp in comparisons:
            cells += [_contrast_cell(row, comp, m) for m in MODES]
        cells += [f"{row['top1_agreement']:.3f}",
                  f"{row['mean_abs_dp']:.3f} / {row['max_abs_dp']:.3f}",
                  f"**{row['verdict_robust']}**"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    held = int((table["verdict_robust"] == HOLDS).sum())
    return "\n".join([
        "# Robustness of the verdicts to preprocessing",
        "",
        f"Verdict ({_question()}) per classifier with facesym's preprocessing (the study) "
        "and with the classifier package's own (`preprocess: original`) on the same renders: "
        f"**{held} of {len(table)} hold**.",
        "",
        *lines,
        "",
        "Contrast cells: omnibus side − control mean difference [95 % cluster-bootstrap CI] "
        "and its direction, exactly as in `stats/summary.md`. " + family_note,
        "",
        "## Agreement of the outputs (every image, every class)",
        "",
        agreement_md,
        "",
        f"Study statistics: {study_line}",
        "",
    ])


def _question() -> str:
    from facesym.stats.verdict import QUESTION

    return QUESTION


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` produced."""

    table: pd.DataFrame
    agreement: pd.DataFrame
    omnibus: dict[str, pd.DataFrame]
    paths: dict[str, Path]


def run_robustness(results: str | Path, classifiers: Sequence[str] | None = None,
                   out: str | Path | None = None, *, cache_dir: str | Path | None = None,
                   mirror: str | Path | None = None, device: str | None = None,
                   progress: bool = True) -> RobustnessResult:
    """Re-classify a finished study's renders with each chosen classifier's original
    preprocessing and compare outputs and verdicts (module docstring). ``classifiers``
    defaults to every classifier of the study; ``out`` to ``<results>/robustness``;
    ``cache_dir``/``mirror`` to ``$FACESYM_CACHE``/``$FACESYM_MIRROR``."""
    from facesym.classifiers.robustness import agreement_markdown, preprocessing_agreement
    from facesym.resources import default_cache_dir, default_mirror
    from facesym.stages.stats import STATS_VARIABLES

    study = find_study(results)
    chosen = list(classifiers or study.classifiers)
    unknown = [c for c in chosen if c not in study.classifiers]
    if unknown:
        raise KeyError(f"classifiers {unknown} are not in the study (allowed values: "
                       f"{', '.join(study.classifiers)})")
    out_dir = Path(out) if out is not None else study.root / "robustness"
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    mirror = mirror if mirror is not None else default_mirror()
    original = {name: classify_original(study, name, out_dir, cache_dir=cache_dir,
                                        mirror=mirror, device=device, progress=progress)
                for name in chosen}
    recipes = {name: json.loads(open_cube(paths[0]).attrs["zoo_entry"])["original_preprocess"]
               for name, paths in original.items()}
    agreement = preprocessing_agreement({
        name: (open_shards(study.cubes[name], AGREEMENT_VARIABLES),
               open_shards(original[name], AGREEMENT_VARIABLES)) for name in chosen})
    facesym_cubes = {name: open_shards(study.cubes[name], STATS_VARIABLES)
                     for name in study.classifiers}
    original_cubes = {name: open_shards(original[name], STATS_VARIABLES) if name in original
                      else cube for name, cube in facesym_cubes.items()}
    omnibus = {"facesym": study_verdicts(facesym_cubes, study.stats_cfg, study.seed),
               "original": study_verdicts(original_cubes, study.stats_cfg, study.seed)}
    _check_against_study(study, omnibus["facesym"])
    table = robustness_table(agreement, omnibus, recipes)
    if set(chosen) == set(study.classifiers):
        note = ("The original verdicts come from the all-original family (max-T over the same "
                "classifiers × comparisons as the study).")
    else:
        note = (f"The original verdicts come from the study's family with {', '.join(chosen)} "
                "re-classified and the other classifiers' facesym cubes kept (max-T over the "
                "same classifiers × comparisons as the study).")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "robustness.csv", "md": out_dir / "robustness.md"}
    table.to_csv(paths["csv"], index=False, float_format="%.6g")
    paths["md"].write_text(robustness_markdown(table, agreement_markdown(agreement),
                                               study.stats_line, note))
    return RobustnessResult(table, agreement, omnibus, paths)


def _check_against_study(study: Study, omnibus: pd.DataFrame) -> None:
    """Warn when the recomputed facesym verdicts differ from the study's own omnibus table
    (its statistics were made by other code, or its cubes changed since)."""
    from facesym.stats.verdict import verdicts

    path = study.root / "stats" / "omnibus.csv"
    if not path.is_file():
        return
    recorded = verdicts(pd.read_csv(path)).set_index("classifier")["verdict"]
    now = omnibus.drop_duplicates("classifier").set_index("classifier")["verdict"]
    differ = [c for c in now.index if c in recorded.index and recorded[c] != now[c]]
    if differ:
        log.warning("recomputed facesym verdicts differ from %s for %s", path, differ)


def _robustness(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        res = run_robustness(args.results, args.classifiers, args.out, cache_dir=args.cache,
                             mirror=args.mirror, device=args.device,
                             progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(res.paths["md"].read_text(), end="")
    print(f"-> {res.paths['md']}, {res.paths['csv']}")
    return 0


def add_robustness_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``robustness`` to the ``facesym`` sub-commands; returns its parser."""
    r = sub.add_parser(
        "robustness", help="do the verdicts hold under each classifier's own preprocessing?",
        description="Re-classify a finished study's renders with each classifier's own "
                    "package preprocessing (preprocess: original), write the cubes under "
                    "--out, and compare outputs (top-1 agreement, |dp|) and verdicts (the "
                    "stats stage's functions, the study's settings) under both "
                    "preprocessings: robustness.md and robustness.csv.")
    r.add_argument("results", type=Path, help="a finished study folder, e.g. results/default")
    r.add_argument("--classifiers", nargs="+", metavar="NAME",
                   help="classifiers to re-run (default: every classifier of the study)")
    r.add_argument("--out", type=Path, default=None,
                   help="output folder (default: RESULTS/robustness)")
    r.add_argument("--cache", default=None, help="resource cache (default $FACESYM_CACHE)")
    r.add_argument("--mirror", default=None, help="offline mirror (default $FACESYM_MIRROR)")
    r.add_argument("--device", default=None,
                   help="torch device (default: the study's classify.device)")
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_robustness)
    return r
