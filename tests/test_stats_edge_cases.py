"""Valid study configs that used to crash the stats job (issue 10, bug 3), on small cubes.

- ``scenes.faces_per_emotion: 1``: every per-emotion test has n = 1; the headline counts had
  no rows and failed with ``KeyError: 'comparison'``;
- ``intervention.sides: [left]`` (or [left, right]): the OLS named the control as reference
  level and failed with "specified level 'control' not found";
- ``scenes.emotions: [neutral]``: no expressive face, so the OLS had no rows and failed the
  same way, after the same KeyError in the tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_stats import make_cube

from facesym.cubes import open_cube, write_dataset
from facesym.plots import dose_response_figure, effects_figure
from facesym.stats import (
    dose_response_tables,
    effect_tests,
    headline_counts,
    omnibus_table,
    summary_markdown,
    summary_table,
)
from facesym.stats.paired import FEW_FACES, NO_CHANGE
from facesym.vocab import CONTROL, EMOTION, FACE, LEFT, LEFT_VS_RIGHT, NEUTRAL, RIGHT, SIDE

DROP = {LEFT: 0.3, RIGHT: 0.0, CONTROL: 0.1}


def run_stats_job(cube, tmp_path) -> tuple:
    """What the stats stage does with one classifier's cube, up to the files it writes."""
    tests = effect_tests({"clf": cube}, 0.05, "holm", n_flips=200)
    table = summary_table(tests)
    omnibus = omnibus_table(tests)
    markdown = summary_markdown(table, 0.05, "holm", omnibus)
    derivatives, ols = dose_response_tables({"clf": cube}, [0.0, 1.0], 0.05)
    dose_response_figure({"clf": cube}, tmp_path / "dose.png")
    effects_figure(table, tmp_path / "effects.png")
    write_dataset(tests, tmp_path / "tests.zarr", {})
    assert (tmp_path / "dose.png").stat().st_size and (tmp_path / "effects.png").stat().st_size
    return tests, table, markdown, derivatives, ols


def test_one_face_per_emotion_is_reported_not_tested(rng, tmp_path):
    cube = make_cube(rng, DROP, n_per=1)
    tests, table, markdown, derivatives, ols = run_stats_job(cube, tmp_path)
    assert tests["p"].isnull().all() and tests.attrs["family_size"] == 0
    expressive = tests.sel(emotion=["happiness", "surprise"])
    assert (expressive["untested_reason"] == FEW_FACES).all()
    assert (expressive["n"] == 1).all() and expressive["ci_low"].isnull().all()
    assert headline_counts(table).empty and headline_counts(table).columns[0] == "comparison"
    assert "Not testable (NaN p-values): 18 tests (fewer than 2 faces: 18)." in markdown
    # the omnibus pools the emotions: two expressive faces, still a test
    assert np.isfinite(tests["omnibus_mean_diff"].sel(classifier="clf", comparison=LEFT))
    assert len(ols) and ols["n_clusters"].iloc[0] == 2
    stored = open_cube(tmp_path / "tests.zarr")
    assert str(stored["untested_reason"].sel(classifier="clf", emotion="happiness",
                                             comparison=LEFT).values) == FEW_FACES


@pytest.mark.parametrize("sides", [[LEFT], [LEFT, RIGHT], [RIGHT, CONTROL]])
def test_sides_without_the_control_or_alone(rng, tmp_path, sides):
    cube = make_cube(rng, DROP).sel({SIDE: sides})
    tests, table, markdown, derivatives, ols = run_stats_job(cube, tmp_path)
    expected = {(LEFT,): [LEFT], (LEFT, RIGHT): [LEFT, RIGHT],
                (RIGHT, CONTROL): [RIGHT, CONTROL, "right_vs_control"]}[tuple(sides)]
    if LEFT in sides and RIGHT in sides:
        expected.append(LEFT_VS_RIGHT)
    assert tests["comparison"].values.tolist() == expected
    if CONTROL not in sides:  # no symmetric control: nothing to compare symmetry against
        assert "beyond the loss of expression: **not assessable**" in markdown
    terms = ols["term"].tolist()
    if len(sides) == 1:
        assert terms == ["Intercept", "a", "a^2"]
        assert ols.set_index("term").loc["a", "coef"] == pytest.approx(-0.3, abs=0.03)
    elif CONTROL in sides:
        assert terms == ["Intercept", "a", "a:side[right]", "a^2"]
    else:  # no control: slopes relative to the first side rendered
        assert terms == ["Intercept", "a", "a:side[right]", "a^2"]
        assert ols.set_index("term").loc["a:side[right]", "coef"] == pytest.approx(0.3, abs=0.05)
    assert set(derivatives["side"]) == set(sides)


def test_neutral_faces_only(rng, tmp_path):
    cube = make_cube(rng, DROP)
    cube = cube.isel({FACE: np.flatnonzero(cube[EMOTION].values == NEUTRAL)})
    tests, table, markdown, derivatives, ols = run_stats_job(cube, tmp_path)
    assert tests["emotion"].values.tolist() == [NEUTRAL]
    assert (tests["untested_reason"] == NO_CHANGE).all() and tests["p"].isnull().all()
    assert tests["omnibus_mean_diff"].isnull().all()
    assert ols.empty and "term" in ols.columns
    assert "no change: every difference is 0: 6" in markdown
