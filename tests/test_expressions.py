"""Prototype weights: sums of AU mappings, capped at each shape's limit (1, the scanned
extent, unless the AU table extends a shape beyond it, as AU4's browDown)."""

from __future__ import annotations

import copy

import numpy as np

from facesym.config import validate_config
from facesym.expressions import prototype_weights, shape_limits


def test_shape_limits_are_one_except_where_the_au_table_extends_a_shape(ict_model):
    tables = validate_config({})["expressions"]
    limits = shape_limits(tables, ict_model)
    names = np.array(ict_model.expression_names)
    assert limits[list(names).index("browDown_L")] == 2.5
    assert limits[list(names).index("browDown_R")] == 2.5
    rest = ~np.isin(names, ["browDown_L", "browDown_R"])
    assert (limits[rest] == 1.0).all()


def test_prototype_weights_sum_aus_and_cap_at_the_limit(ict_model):
    tables = copy.deepcopy(validate_config({})["expressions"])
    tables["prototypes"] = {
        "test_jaw": {"AU26": 1.0, "AU27": 1.0},  # jawOpen 0.6 + 1.0 -> capped at 1
        "test_brow": {"AU4": 1.0},  # browDown 2.5: the table's own extent
        "test_brow_twice": {"AU4": 1.0, "AU44": 1.0},
    }
    tables["action_units"]["AU44"] = {"browDown_L": 1.0}  # would push browDown_L to 3.5
    jaw = prototype_weights("test_jaw", tables, ict_model)
    assert jaw[ict_model.shape_index("jawOpen")] == 1.0
    brow = prototype_weights("test_brow", tables, ict_model)
    assert brow[ict_model.shape_index("browDown_L")] == 2.5
    twice = prototype_weights("test_brow_twice", tables, ict_model)
    assert twice[ict_model.shape_index("browDown_L")] == 2.5
    assert np.count_nonzero(twice) == 2


def test_shipped_prototypes_stay_within_the_limits(ict_model):
    tables = validate_config({})["expressions"]
    limits = shape_limits(tables, ict_model)
    for emotion in tables["prototypes"]:
        w = prototype_weights(emotion, tables, ict_model)
        assert (w >= 0).all() and (w <= limits).all(), emotion
