"""Photo-stats stage: group differences within each label, GCM and photo-vs-composite tests
over the photo cube, as CSV tables and one Markdown summary."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from facesym.cubes import open_cube, write_text_atomic
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stats.realdata_tables import realdata_markdown, realdata_tables

#: the tables written, each to the output of the same name
TABLES = ("groups", "gcm", "gcm_correlations", "composites")


def usage_line(cube_attrs: Mapping, n_subjects: int, bad: pd.DataFrame) -> str:
    """One sentence: photos used, subjects, and the skipped rows by reason.

    >>> bad = pd.DataFrame({"status": ["unreadable", "missing_file", "unreadable"]})
    >>> usage_line({"n_images": 10}, 5, bad)
    '10 photos of 5 subjects used; 3 manifest row(s) skipped (missing_file 1, unreadable 2).'
    """
    counts = bad["status"].value_counts().sort_index()
    why = ", ".join(f"{k} {v}" for k, v in counts.items())
    return (f"{cube_attrs['n_images']} photos of {n_subjects} subjects used; {len(bad)} "
            f"manifest row(s) skipped" + (f" ({why})." if len(bad) else "."))


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Every table of the real-data check over ``inputs["cube"]``, and ``outputs["md"]``."""
    pcfg, seed = cfg["photos"], cfg["seed"]
    cube = open_cube(inputs["cube"]).load()
    bad = pd.read_csv(inputs["bad_rows"], dtype={"line": int}, keep_default_na=False)
    tables = realdata_tables(cube, reference=pcfg["reference_group"],
                             n_permutations=pcfg["n_permutations"],
                             n_resamples=pcfg["n_resamples"], use_grade=pcfg["use_grade"],
                             seed=seed)
    attrs = provenance_attrs("photo_stats", cfg,
                             inputs={"cube": inputs["cube"], "bad_rows": inputs["bad_rows"]},
                             seeds={"seed": seed})
    head = usage_line(cube.attrs, len(set(cube["subject"].values)), bad)
    md = realdata_markdown(tables["groups"], tables["gcm"], tables["gcm_correlations"],
                           tables["composites"], bad,
                           provenance=f"{head}\n\nProvenance: {provenance_line(attrs)}")
    for name in TABLES:
        write_text_atomic(outputs[name], tables[name].to_csv(index=False, float_format="%.6g"))
    write_text_atomic(outputs["md"], md)
    groups = tables["groups"]
    pooled = groups[groups["emotion"] == "pooled"]
    log.info("photo stats: %s; pooled group differences: %s", head,
             pooled[["response", "classifier", "mean_diff", "p_perm"]].to_dict("records"))
