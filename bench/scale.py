"""Sharded scaling: render + classify at 1x and Kx faces with the same shard size.

Runs the real workflow (Snakemake, ``--cores``) twice in a scratch folder: a study of
``--shards`` shards of ``--faces-per-shard`` faces, then one ``--factor`` times larger, each up to
the classify stores of ``--classifiers`` (no statistics). Each render and classify job leaves a
Snakemake benchmark TSV (wall seconds ``s`` and ``max_rss`` in MB); the table shows, per rule and
scale, the jobs, images, summed job seconds, images/s and the peak RSS of any one job, and the
ratios Kx / 1x. Sharding works when the peak RSS ratio stays near 1 (acceptance: <= 1.2) while
the images grow K-fold.

    .venv/bin/python bench/scale.py [--faces-per-shard 14] [--shards 1] [--factor 4]
        [--classifiers mini_xception facex] [--size 224] [--cores 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from facesym.config import n_faces, validate_study_config
from facesym.resources import default_cache_dir, fetch_resource
from facesym.stages.shards import shard_count, shard_name

REPO = Path(__file__).resolve().parents[1]
RSS_LIMIT = 1.2


def study_config(name: str, n_faces: int, args: argparse.Namespace) -> dict:
    """A study of ``n_faces`` faces over the default emotions, sharded by the given size."""
    emotions = validate_study_config({"study": name})["scenes"]["emotions"]
    if n_faces % len(emotions):
        raise SystemExit(f"{n_faces} faces do not divide over {len(emotions)} emotions: choose "
                         f"--faces-per-shard x --shards as a multiple of {len(emotions)}")
    return {"study": name,
            "scenes": {"faces_per_emotion": n_faces // len(emotions)},
            "render": {"size": args.size},
            "classifiers": list(args.classifiers),
            "shards": {"faces_per_shard": args.faces_per_shard},
            "resources": {"cache_dir": str(args.cache)}}


def run_study(work: Path, cfg: dict, cores: int) -> float:
    """Run the study's render and classify jobs; return Snakemake's wall time in seconds."""
    name = cfg["study"]
    (work / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    n = n_faces(validate_study_config(cfg))
    shards = [shard_name(k) for k in range(shard_count(n, cfg["shards"]["faces_per_shard"]))]
    targets = [f"results/{name}/classify/{c}/{s}.zarr" for c in cfg["classifiers"]
               for s in shards]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / f"{name}.yaml"),
           "--cores", str(cores), "--quiet", "rules"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"snakemake failed for {name}:\n{proc.stderr[-4000:]}")
    return wall


def job_records(bench_dir: Path, prefix: str) -> list[dict[str, float]]:
    """The benchmark rows (``s``, ``max_rss``) of every job whose TSV starts with ``prefix``."""
    rows = []
    for tsv in sorted(bench_dir.glob(f"{prefix}*shard-*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rows.append({"s": float(row["s"]), "max_rss": float(row["max_rss"])})
    return rows


def summarise(work: Path, cfg: dict, images_per_face: int) -> dict[str, dict[str, float]]:
    """Per rule (render, classify_<name>): jobs, images, job seconds, images/s, peak RSS MB."""
    bench = work / "results" / cfg["study"] / "benchmarks"
    n_images = n_faces(validate_study_config(cfg)) * images_per_face
    out = {}
    for rule in ("render", *(f"classify_{c}" for c in cfg["classifiers"])):
        rows = job_records(bench, f"{rule}_")
        seconds = sum(r["s"] for r in rows)
        out[rule] = {"jobs": len(rows), "images": n_images, "seconds": seconds,
                     "images_per_s": n_images / seconds if seconds else float("nan"),
                     "peak_rss_mb": max((r["max_rss"] for r in rows), default=float("nan"))}
    return out


def main() -> None:
    """Run both scales and print the table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces-per-shard", type=int, default=14)
    ap.add_argument("--shards", type=int, default=1, help="shards at 1x")
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--classifiers", nargs="+", default=["mini_xception", "facex"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="kept; default: a temporary one")
    args = ap.parse_args()
    args.cache = default_cache_dir()
    fetch_resource("ict_facekit", args.cache)  # classifier weights: the workflow's fetch jobs
    work = args.workdir or Path(tempfile.mkdtemp(prefix="facesym-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    design = validate_study_config({"study": "x"})["intervention"]
    images_per_face = len(design["sides"]) * len(design["strengths"])
    base = args.faces_per_shard * args.shards
    results, walls = {}, {}
    try:
        for label, n in (("1x", base), (f"{args.factor}x", base * args.factor)):
            cfg = study_config(f"scale_{label}", n, args)
            walls[label] = run_study(work, cfg, args.cores)
            results[label] = summarise(work, cfg, images_per_face)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    big = f"{args.factor}x"
    print(f"faces per shard {args.faces_per_shard}, {images_per_face} images per face, "
          f"{args.size} px, --cores {args.cores}; Snakemake wall time 1x {walls['1x']:.1f} s, "
          f"{big} {walls[big]:.1f} s (ratio {walls[big] / walls['1x']:.2f})")
    head = (f"{'job':<24} {'scale':>5} {'jobs':>4} {'images':>7} {'job s':>8} {'img/s':>7} "
            f"{'peak RSS MB':>11}")
    print(head)
    print("-" * len(head))
    failed = []
    for rule in results["1x"]:
        for label in ("1x", big):
            r = results[label][rule]
            print(f"{rule:<24} {label:>5} {r['jobs']:>4} {r['images']:>7} {r['seconds']:>8.1f} "
                  f"{r['images_per_s']:>7.1f} {r['peak_rss_mb']:>11.0f}")
        a, b = results["1x"][rule], results[big][rule]
        rss = b["peak_rss_mb"] / a["peak_rss_mb"]
        print(f"{rule:<24} {'ratio':>5} {b['jobs'] / a['jobs']:>4.1f} "
              f"{b['images'] / a['images']:>7.1f} {b['seconds'] / a['seconds']:>8.2f} "
              f"{b['images_per_s'] / a['images_per_s']:>7.2f} {rss:>11.2f}")
        if not rss <= RSS_LIMIT:
            failed.append(f"{rule}: peak RSS ratio {rss:.2f} > {RSS_LIMIT}")
    print("acceptance (peak RSS ratio <= 1.2 for render and classify jobs):",
          "FAILED: " + "; ".join(failed) if failed else "met")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
