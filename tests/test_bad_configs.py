"""`facesym check-config` and the workflow (`snakemake -n`) refuse exactly the same bad configs.

Each case is a study file (YAML text, so an unquoted value stays unquoted) and/or `--config`
values; both tools get them the same way and must both refuse, naming the key, or both accept.
The dry runs start together (a few at a time) to keep the module fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from facesym.cli import main

REPO = Path(__file__).resolve().parents[1]
SHA_DIGITS = "1" * 64
BYO_ENTRY = ("    format: onnx\n    weights: {{path: w.onnx, sha256: {sha}}}\n"
             "    input: {{size: 64, colour: grey, mean: [127.5], std: [127.5]}}\n"
             "    labels: [angry, happy]\n    output: softmax\n")

# name: (study file text or None, --config values, what the message must name; None = valid)
CASES: dict[str, tuple[str | None, list[str], str | None]] = {
    "study_dotdot": ("study: '..'\n", [], "config key study"),
    "study_slash": ("study: a/b\n", [], "config key study"),
    "study_empty": ("study: ''\n", [], "config key study"),
    "study_dotdot_cli": (None, ["study=.."], "config key study"),
    "unknown_classifier": ("classifiers: [mini_xception, nope]\n", [],
                           "config key classifiers: unknown classifier 'nope'"),
    "byo_file_missing": ("classifiers: [dan_rafdb]\n", [],
                         "config key classifiers: classifier file not found"),
    "contact_face_beyond": ("contact_sheet: {faces: [1000]}\n", [],
                            "config key contact_sheet.faces"),
    "faces_too_many": ("scenes: {faces_per_emotion: 10000000}\n", [],
                       "config key scenes.faces_per_emotion"),
    "render_batch_too_big": ("render: {batch_size: 1000000}\n", [],
                             "config key render.batch_size"),
    "unknown_key": ("render: {sise: 3}\n", [], "config key render"),
    "bad_backend": (None, ["render={backend: opengl}"], "config key render.backend"),
    "nested_cli_bad_value": (None, ["scenes={intensity: {low: lots, high: 1.0}}"],
                             "config key scenes.intensity"),
    "zoo_name_traversal": ("zoo:\n  ../../../evil:\n" + BYO_ENTRY.format(sha="null")
                           + "classifiers: [mini_xception]\n", [],
                           "config key zoo: name '../../../evil' is not allowed"),
    "zoo_sha256_unquoted": ("zoo:\n  mine:\n" + BYO_ENTRY.format(sha=SHA_DIGITS)
                            + "classifiers: [mine]\n", [],
                            "config key zoo.mine.weights.sha256: 1111"),
    "yaml_syntax": ("study: s\nscenes:\n  faces_per_emotion: [1\n", [], "line 3"),
    "prototypes_file_missing": ("expressions: {prototypes_file: nope.yaml}\n", [],
                                "config key expressions.prototypes_file: no file nope.yaml"),
    "prototypes_file_uncovered": (
        "expressions: {prototypes_file: protos.yaml}\n", [],
        "config key expressions.prototypes_file: protos.yaml has no prototype for anger"),
    "prototypes_file_sha256": (None, ["expressions={prototypes_file: protos.yaml, "
                                      f"prototypes_sha256: '{'0' * 64}'}}"],
                               "config key expressions.prototypes_sha256: protos.yaml"),
    # valid ones: both must accept them
    "nested_cli_distribution": (None, ["scenes={intensity: {low: 0.5, high: 1.0}}",
                                       "expressions={prototypes: {happiness: {AU12: 0.7}}}"],
                                None),
    "one_face_one_side": ("scenes: {faces_per_emotion: 1}\nintervention: {sides: [left]}\n"
                          "contact_sheet: {faces: [0]}\n", [], None),
    "prototypes_file_valid": ("expressions: {prototypes_file: protos.yaml}\n", [], None),
}
# a prototypes file (protos.yaml in the case's folder) for the cases that name one
PROTOTYPES = {
    "prototypes_file_uncovered": "format: facesym-prototypes/1\nprototypes:\n"
                                 "  happiness: {AU12: 0.8}\n",
    "prototypes_file_sha256": "format: facesym-prototypes/1\nprototypes:\n"
                              "  happiness: {AU12: 0.8}\n",
    "prototypes_file_valid": "format: facesym-prototypes/1\nprototypes:\n"
                             + "".join(f"  {e}: {{AU4: 0.5}}\n" for e in (
                                 "anger", "disgust", "fear", "happiness", "sadness",
                                 "surprise")),
}
if not torch.backends.cuda.is_built():
    CASES["cuda_on_cpu_torch"] = ("render: {device: cuda}\n", [], "config key render.device")


def _files(name: str, work: Path) -> list[str]:
    if name in PROTOTYPES:
        (work / "protos.yaml").write_text(PROTOTYPES[name])
    text = CASES[name][0]
    if text is None:
        return []
    path = work / f"{name}.yaml"
    path.write_text(text)
    return [str(path)]


def _dry_run(name: str, work: Path) -> subprocess.CompletedProcess:
    files, values = _files(name, work), CASES[name][1]
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--cores", "1"]
    if files:
        cmd += ["--configfile", *files]
    if values:
        cmd += ["--config", *values]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, timeout=600)


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    """Every case's `snakemake -n`, started a few at a time, each in its own folder."""
    works = {name: tmp_path_factory.mktemp(name) for name in CASES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_dry_run, name, works[name]) for name in CASES}
        return {name: (works[name], fut.result()) for name, fut in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_check_config_and_workflow_agree(name, dry_runs, capsys, monkeypatch):
    work, proc = dry_runs[name]
    _, values, needle = CASES[name]
    monkeypatch.chdir(work)
    args = ["check-config", *_files(name, work), "--base", str(REPO / "config" / "config.yaml")]
    if values:
        args += ["--config", *values]
    rc = main(args)
    err = capsys.readouterr().err
    if needle is None:
        assert rc == 0, err
        assert proc.returncode == 0, proc.stderr[-3000:]
        return
    assert rc == 2 and needle in err, err
    assert "Traceback" not in err
    assert proc.returncode != 0, f"snakemake -n accepted {name}"
    if name == "yaml_syntax":
        # Snakemake reads --configfile itself, before the workflow runs; it names neither
        # file nor line (check-config does, see above).
        assert "not valid JSON or YAML" in proc.stdout + proc.stderr
    else:
        assert needle in proc.stdout + proc.stderr, proc.stdout[-3000:]
