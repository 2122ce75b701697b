"""Leave-one-classifier-out choice among prototype variants: the choice is made by the OTHER
classifiers on the selection faces and scored by the held-out one on the test faces."""

from __future__ import annotations

import pandas as pd

from facesym.prototype_choice import (
    CANDIDATES,
    CURRENT,
    choice_by_all,
    leave_one_classifier_out,
)


def _table(rates: dict[tuple[str, int, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{"emotion": "fear", "candidate": c, "seed": s, "classifier": k,
                          "recognition": r, "p_intended": r / 2}
                         for (c, s, k), r in rates.items()])


def test_choice_ignores_the_held_out_classifier():
    # On the selection seed (1), A loves variant "x"; B and C prefer "y".
    sel = {("current", 1, "A"): 0.1, ("x", 1, "A"): 1.0, ("y", 1, "A"): 0.0,
           ("current", 1, "B"): 0.2, ("x", 1, "B"): 0.1, ("y", 1, "B"): 0.6,
           ("current", 1, "C"): 0.2, ("x", 1, "C"): 0.3, ("y", 1, "C"): 0.5}
    test = {(c, 2, k): r + 0.05 for (c, _, k), r in sel.items()}
    loco = leave_one_classifier_out(_table({**sel, **test}), 1, 2).set_index("held_out")
    # held out A: B and C choose y, so A scores y (0.05) although its own best is x
    assert loco.loc["A", "chosen_by_others"] == "y"
    assert abs(loco.loc["A", "held_out_chosen"] - 0.05) < 1e-12
    assert loco.loc["A", "oracle"] == "x" and abs(loco.loc["A", "held_out_oracle"] - 1.05) < 1e-12
    assert abs(loco.loc["A", "held_out_current"] - 0.15) < 1e-12
    # held out B: A (x 1.0, y 0.0) and C (x 0.3, y 0.5) -> x has mean 0.65 > y 0.25
    assert loco.loc["B", "chosen_by_others"] == "x"
    assert abs(loco.loc["B", "held_out_chosen"] - 0.15) < 1e-12
    summary = choice_by_all(_table({**sel, **test}), 1, 2).set_index("candidate")
    assert summary.loc["y", "classifiers_test_ge_0.5"] == 2
    assert summary.loc["x", "classifiers_test_ge_0.5"] == 1


def test_candidates_are_distinct_known_and_within_facs_bounds():
    from facesym.config import validate_config
    from facesym.expressions import FACS_BOUNDS

    tables = validate_config({})["expressions"]
    for emotion, cands in CANDIDATES.items():
        assert CURRENT not in cands
        protos = [tuple(sorted(p.items())) for p in cands.values()]
        assert len(set(protos)) == len(protos)
        assert tuple(sorted(tables["prototypes"][emotion].items())) not in protos, emotion
        for p in cands.values():
            assert set(p) <= set(tables["action_units"]), p
            for au, v in p.items():  # within the FACS bounds a prototypes file must keep
                low, high = FACS_BOUNDS.get(au, FACS_BOUNDS["default"])
                assert low < v <= high, (au, v)
