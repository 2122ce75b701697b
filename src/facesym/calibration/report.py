"""What a calibration writes: the recognition table (CSV, Markdown) and the prototypes file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from facesym.expressions import PROTOTYPES_FORMAT, prototypes_digest, read_prototypes

TABLE_COLUMNS = ["emotion", "fold", "classifier", "role", "identities", "n",
                 "rate_before", "rate_after", "p_before", "p_after"]
FORMAT = PROTOTYPES_FORMAT


def _cell(row: Mapping) -> str:
    return (f"{row['rate_before']:.2f} → {row['rate_after']:.2f} "
            f"(p {row['p_before']:.2f} → {row['p_after']:.2f})")


def _pivot(rows: pd.DataFrame, classifiers: list[str]) -> str:
    emotions = list(dict.fromkeys(rows["emotion"]))
    lines = ["| emotion | " + " | ".join(classifiers) + " |",
             "|---|" + "---|" * len(classifiers)]
    for emo in emotions + ["mean"]:
        sub = rows if emo == "mean" else rows[rows["emotion"] == emo]
        cells = []
        for c in classifiers:
            r = sub[sub["classifier"] == c]
            if r.empty:
                cells.append("")
                continue
            cells.append(_cell(r[["rate_before", "rate_after", "p_before", "p_after"]].mean()))
        lines.append(f"| {'**mean**' if emo == 'mean' else emo} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recognition_markdown(table: pd.DataFrame, provenance: Mapping) -> str:
    """The recognition table as Markdown: held-out classifiers first, then the in-search view.

    Cells read "rate before → after (mean p before → after)": recognition rate (the intended
    emotion is the top class) and mean intended-class probability, before = the prototypes of
    the expression tables, after = the calibrated ones.
    """
    classifiers = list(dict.fromkeys(table["classifier"]))
    held = table[(table["identities"] == "holdout")]
    parts = [
        "# Expression calibration: recognition before → after",
        "",
        f"Search set: {', '.join(provenance['search_set'])}; objective "
        f"{provenance['objective']}; {provenance['identities']['search']['n']} search identities "
        f"(seed {provenance['identities']['search']['seed']}), "
        f"{provenance['identities']['holdout']['n']} held-out identities "
        f"(seed {provenance['identities']['holdout']['seed']}); code "
        f"{provenance['facesym_version']} {str(provenance['git_commit'])[:12]}"
        f"{' (dirty)' if provenance['git_dirty'] else ''}.",
        "Cells: recognition rate before → after (mean intended-class probability before → "
        "after); before = the expression tables' prototypes.",
        "",
    ]
    loco = held[(held["fold"] != "all") & (held["role"] == "held_out")
                & (held["fold"] == "without_" + held["classifier"])]
    if not loco.empty:
        parts += ["## Leave one classifier out: the held-out classifier on held-out identities",
                  "", "Each column's classifier was left out of the search whose prototypes it "
                  "scores here.", "", _pivot(loco, classifiers), ""]
    only = held[(held["fold"] == "all") & (held["role"] == "held_out")]
    if not only.empty:
        parts += ["## Classifiers outside the search set, held-out identities", "",
                  _pivot(only, classifiers), ""]
    in_search = held[(held["fold"] == "all") & (held["role"] == "in_search")]
    parts += ["## The written prototypes (all of the search set): held-out identities", "",
              _pivot(in_search, classifiers), ""]
    seen = table[(table["identities"] == "search") & (table["fold"] == "all")
                 & (table["role"] == "in_search")]
    parts += ["## The same on the search identities (optimistic: they were tuned on)", "",
              _pivot(seen, classifiers), ""]
    return "\n".join(parts)


def held_out_summary(table: pd.DataFrame) -> dict:
    """{emotion: {classifier: {...}}} of held-out-identity results for the provenance key.

    ``written``: the written prototypes (fold ``all``, role in_search or held_out);
    ``loco``: the prototypes searched without that classifier. Each is
    ``{rate: [before, after], p: [before, after]}``.
    """
    held = table[table["identities"] == "holdout"]
    out: dict = {}
    for row in held.itertuples(index=False):
        key = None
        if row.fold == "all":
            key = "written"
        elif row.fold == f"without_{row.classifier}":
            key = "loco"
        if key is None:
            continue
        out.setdefault(row.emotion, {}).setdefault(row.classifier, {})[key] = {
            "rate": [round(float(row.rate_before), 4), round(float(row.rate_after), 4)],
            "p": [round(float(row.p_before), 4), round(float(row.p_after), 4)],
        }
    return out


def prototypes_text(prototypes: Mapping[str, Mapping[str, float]], provenance: Mapping) -> str:
    """The prototypes file: a comment, ``format``, ``provenance`` and ``prototypes`` (YAML)."""
    header = ("# Calibrated expression prototypes (emotion -> {AU: intensity}), written by\n"
              "# `facesym calibrate`. A study uses them with expressions.prototypes_file; the\n"
              "# provenance says how they were chosen and how well they hold on held-out\n"
              "# identities and classifiers.\n")
    protos = {e: dict(sorted(p.items())) for e, p in prototypes.items()}
    body = {"format": FORMAT, "provenance": dict(provenance),
            # detects later hand edits of the prototypes (facesym.expressions.read_prototypes)
            "prototypes_sha256": prototypes_digest(protos), "prototypes": protos}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def read_prototypes_file(path: str | Path, action_units: Mapping | None = None) -> dict:
    """Read a prototypes file; check its format, numbers, carried digest and (given the
    tables' ``action_units``) AUs (:func:`facesym.expressions.read_prototypes`).

    Returns ``{"prototypes": ..., "provenance": ...}``. ConfigError names the file and problem.
    """
    loaded = read_prototypes(path, action_units)
    return {"prototypes": loaded["prototypes"], "provenance": loaded["provenance"]}
