"""Job logging and the 2D landmark asymmetry index."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from facesym.facemodel.base import LANDMARK68_MIRROR
from facesym.logs import logged
from facesym.symmetry import asymmetry_2d


def test_logged_captures_output_and_tracebacks(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError), logged(log) as logger:
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logger.info("an info line")
        raise RuntimeError("boom")
    text = log.read_text()
    for part in ("to stdout", "to stderr", "an info line", "RuntimeError: boom"):
        assert part in text


def test_mirror_table_is_an_involution():
    assert (LANDMARK68_MIRROR[LANDMARK68_MIRROR] == np.arange(68)).all()


def test_asymmetry_2d_zero_for_mirror_symmetric_motion_and_one_for_one_sided():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(68, 2)) * 10
    # a mirror-symmetric displacement field: d[pair(j)] = flip_x(d[j])
    d = rng.normal(size=(68, 2))
    d = (d + d[LANDMARK68_MIRROR] * np.array([-1.0, 1.0])) / 2
    assert asymmetry_2d(ref + d, ref) == pytest.approx(0.0, abs=1e-12)
    # only one side moves
    one = d.copy()
    right_side = [0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 31, 32, 36, 37, 38, 39, 40, 41,
                  48, 49, 50, 58, 59, 60, 61, 67]
    mask = np.zeros(68, bool)
    mask[right_side] = True
    one[~mask] = 0.0
    one[mask] = rng.normal(size=(mask.sum(), 2)) + 1.0
    assert asymmetry_2d(ref + one, ref) == pytest.approx(1.0)
    assert asymmetry_2d(ref, ref) == 0.0  # nothing moves
