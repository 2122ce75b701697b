"""Calibration: recovers a known optimum through the real renderer, deterministic, bounded,
leave-one-classifier-out bookkeeping, settings and the prototypes file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facesym.calibration import calibration_settings, read_prototypes_file, run_calibration
from facesym.calibration.evaluate import RenderEvaluator, renderer_config, sample_identities
from facesym.calibration.report import held_out_summary
from facesym.calibration.run import calibrate_emotion
from facesym.calibration.search import Scores, make_folds, objective_value, search_emotion
from facesym.classifiers.base import CANONICAL_LABELS, Classifier, InputSpec, preprocess
from facesym.config import ConfigError, validate_config

EMOTION = "happiness"
AUS = ["AU12", "AU26"]
OPTIMUM = np.array([0.7, 0.5])  # AU12 (lip corner puller), AU26 (jaw drop)
P_MAX = 0.9  # the synthetic classifier's intended-class probability at its optimum
SPEC = InputSpec(size=32, colour="grey", mean=(0.0,), std=(255.0,), margin=0.25)


class TemplateNet(torch.nn.Module):
    """A tiny expression "classifier": the intended class's logit falls with the squared
    distance of the input crop to the nearest stored template crop, so its intended-class
    probability peaks exactly where the render equals a template's render."""

    def __init__(self, templates: torch.Tensor, target: int, scale: float = 2000.0) -> None:
        super().__init__()
        self.register_buffer("templates", templates)
        self.target, self.scale = target, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = ((x[:, None] - self.templates[None]) ** 2).mean(dim=(2, 3, 4)).min(dim=1).values
        logits = torch.zeros(len(x), len(CANONICAL_LABELS), dtype=x.dtype)
        logits[:, self.target] = np.log(P_MAX / (1 - P_MAX) * 6) - self.scale * d
        return logits


def study_cfg(**calibration) -> dict:
    """A raw study config on the test model (10 identity modes) with a calibration section."""
    return {"face_model": {"identity_modes": 10}, "render": {"batch_size": 64},
            "calibration": {"emotions": [EMOTION], "aus": {EMOTION: AUS},
                            "search_set": ["template"], "leave_one_out": False,
                            "identities": 2, "holdout_identities": 1, "render_size": 64,
                            "design": 6, "evaluations": 30, "popsize": 6, "sigma": 0.3,
                            **calibration}}


@pytest.fixture(scope="module")
def template_classifier(ict_model) -> Classifier:
    """The synthetic classifier whose optimum is OPTIMUM on the search identities."""
    raw = study_cfg()
    cfg = validate_config({k: v for k, v in raw.items() if k != "calibration"})
    settings = calibration_settings({**cfg, "calibration": raw["calibration"]})
    ids = sample_identities(cfg, settings.seed, settings.identities)
    ev = RenderEvaluator(ict_model, cfg, {}, settings.render_size)
    images, boxes = ev.images(EMOTION, AUS, OPTIMUM[None], ids)
    net = TemplateNet(preprocess(images, boxes, SPEC), CANONICAL_LABELS.index(EMOTION))
    return Classifier("template", net, SPEC, labels=CANONICAL_LABELS, output="softmax")


@pytest.fixture(scope="module")
def calibrated(ict_model, template_classifier, tmp_path_factory) -> tuple[Path, object]:
    """One calibration run with the synthetic classifier."""
    out = tmp_path_factory.mktemp("calib1")
    res = run_calibration(study_cfg(), out, model=ict_model,
                          classifiers={"template": template_classifier},
                          created="2026-01-01T00:00:00+00:00")
    return out, res


def test_recovers_known_optimum_through_real_renderer(calibrated) -> None:
    _, res = calibrated
    found = np.array([res.prototypes[EMOTION].get(a, 0.0) for a in AUS])
    assert np.abs(found - OPTIMUM).max() <= 0.1, found
    row = res.table[(res.table["identities"] == "search") & (res.table["fold"] == "all")]
    p_before, p_after = float(row["p_before"].iloc[0]), float(row["p_after"].iloc[0])
    assert p_after > 0.95 * P_MAX and p_after > p_before + 0.2


def test_same_seed_same_bytes_other_seed_other_search(ict_model, template_classifier,
                                                      calibrated, tmp_path) -> None:
    out1, res1 = calibrated
    kw = {"model": ict_model, "classifiers": {"template": template_classifier},
          "created": "2026-01-01T00:00:00+00:00"}
    run_calibration(study_cfg(), tmp_path / "again", **kw)
    for name in ("prototypes.yaml", "recognition.csv", "history.csv"):
        assert (out1 / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    other = run_calibration(study_cfg(seed=99, design=2, evaluations=6), tmp_path / "other",
                            **kw)
    assert other.history["candidate"].tolist()[1:] != res1.history["candidate"].tolist()[1:3]


def test_prototypes_file_has_provenance_and_reads_back(calibrated, ict_model) -> None:
    out, res = calibrated
    text = (out / "prototypes.yaml").read_text()
    assert text.startswith("# Calibrated expression prototypes")
    data = yaml.safe_load(text)
    prov = data["provenance"]
    assert prov["search_set"] == ["template"]
    assert prov["identities"]["search"] == {"seed": 4321, "n": 2}
    assert prov["budget"]["evaluations"] == 30 and prov["created"].startswith("2026-01-01")
    assert prov["held_out_results"][EMOTION]["template"]["written"]["p"][1] == pytest.approx(
        float(res.table.query("identities == 'holdout'")["p_after"].iloc[0]), abs=1e-4)
    back = read_prototypes_file(out / "prototypes.yaml",
                                validate_config({})["expressions"]["action_units"])
    assert back["prototypes"] == res.prototypes
    assert "Leave one classifier out" not in (out / "recognition.md").read_text()


def test_a_study_uses_the_calibrated_file(calibrated, ict_model, tmp_path) -> None:
    """The file `facesym calibrate` wrote, named by expressions.prototypes_file: the scenes
    stage samples its prototypes and records the file and its calibration provenance; a hand
    edit of its prototypes is refused (the file carries their digest)."""
    import json
    import logging

    from facesym.cubes import open_cube
    from facesym.expressions import prototypes_source_markdown
    from facesym.provenance import file_digest as file_sha256
    from facesym.stages import scenes as scenes_stage
    from facesym.stages.params import stage_config

    out, res = calibrated
    path = out / "prototypes.yaml"
    raw = {"seed": 3, "face_model": {"identity_modes": 10},
           "scenes": {"faces_per_emotion": 2, "emotions": [EMOTION, "neutral"]}}
    cfg = validate_config({**raw, "expressions": {"prototypes_file": str(path)}})
    assert cfg["expressions"]["prototypes"][EMOTION] == res.prototypes[EMOTION]
    ict_model.save(tmp_path / "ict.npz")
    weights = {}
    for name, study in (("file", cfg), ("literature", validate_config(raw))):
        store = tmp_path / f"{name}.zarr"
        scenes_stage.run({"model": str(tmp_path / "ict.npz"), "prototypes": str(path)},
                         {"scenes": str(store)}, stage_config(study, "scenes", faces=[0, 4]),
                         logging.getLogger("test"))
        cube = open_cube(store)
        weights[name] = cube["expression_weight"].values[cube["emotion"].values == EMOTION]
        attrs = cube.attrs
    assert not np.allclose(weights["file"], weights["literature"])
    source = json.loads(open_cube(tmp_path / "file.zarr").attrs["prototypes_source"])
    assert source["sha256"] == file_sha256(path) and source["path"] == str(path)
    assert source["calibration"]["search_set"] == ["template"]
    assert source["calibration"]["budget"]["evaluations"] == 30
    text = prototypes_source_markdown(open_cube(tmp_path / "file.zarr").attrs)
    assert f"calibrated file `{path}`" in text and "searched on classifiers [template]" in text
    assert "Held-out identities, recognition rate before → after" in text
    assert json.loads(attrs["prototypes_source"])["kind"] == "literature"
    edited = tmp_path / "edited.yaml"
    data = yaml.safe_load(path.read_text())
    data["prototypes"][EMOTION]["AU12"] = 0.1
    edited.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="config key expressions.prototypes_file: .*edited "
                                          "after `facesym calibrate`"):
        validate_config({**raw, "expressions": {"prototypes_file": str(edited)}})


def test_prototypes_file_errors(tmp_path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("prototypes: {fear: {AU1: 1}}\n")
    with pytest.raises(ConfigError, match="not a facesym prototypes file"):
        read_prototypes_file(bad)
    bad.write_text("format: facesym-prototypes/1\nprototypes: {fear: {AU99: 1}}\n")
    with pytest.raises(ConfigError, match="unknown action unit 'AU99'"):
        read_prototypes_file(bad, {"AU1": {}})


# ----------------------------------------------------------------------------- fake evaluator


PEAKS = {"a": np.array([0.3, 0.8]), "b": np.array([0.3, 0.8]), "c": np.array([0.9, 0.1])}


def fake_evaluate(names, width=0.25, shift=0.0, n_ids=3):
    """Scores of Gaussian bumps (one per classifier) on 2 AUs, per identity a small shift."""
    def evaluate(candidates: np.ndarray) -> list[Scores]:
        out = []
        for x in candidates:
            p = np.array([[np.exp(-np.sum((x - PEAKS[c] - shift * (i - 1) / 10) ** 2)
                                  / (2 * width**2)) for i in range(n_ids)] for c in names])
            out.append(Scores(p=p, top1=p > 0.5))
        return out
    return evaluate


class FakeEvaluator:
    """Stands in for RenderEvaluator: ``for_emotion`` gives the fake scores, held-out
    identities (a different Identities object) shifted."""

    def __init__(self, names, search_ids) -> None:
        self.names, self.search_ids = names, search_ids

    def for_emotion(self, emotion, aus, ids):
        return fake_evaluate(self.names, shift=0.0 if ids is self.search_ids else 1.0)


def test_leave_one_out_bookkeeping() -> None:
    raw = validate_config({"classifiers": ["mini_xception", "face_api", "facex"]})
    names = ("a", "b", "c")
    settings = calibration_settings({**raw, "calibration": {
        "emotions": ["fear"], "aus": {"fear": ["AU1", "AU2"]}, "search_set": list(names),
        "design": 5, "evaluations": 24, "popsize": 6}})
    search_ids, holdout_ids = object(), object()
    fake = FakeEvaluator(names, search_ids)
    proto, rows, history = calibrate_emotion(fake, settings, "fear", raw["expressions"],
                                             search_ids, holdout_ids)
    import pandas as pd

    table = pd.DataFrame(rows)
    assert sorted(set(table["fold"])) == ["all", "without_a", "without_b", "without_c"]
    for fold, sub in table.groupby("fold"):
        roles = dict(zip(sub["classifier"], sub["role"], strict=False))
        left_out = fold.removeprefix("without_") if fold != "all" else None
        assert roles == {c: ("held_out" if c == left_out else "in_search") for c in names}
    # the fold without c searched on a and b only: it lands on their shared peak, and the
    # table reports c's own score at exactly that point, on held-out identities
    hist = pd.DataFrame(history)
    best_wo_c = hist[hist["best_of"].str.split().apply(lambda f: "without_c" in f)]
    assert len(best_wo_c) == 1
    x = best_wo_c[["AU1", "AU2"]].to_numpy(float)[0]
    assert np.abs(x - PEAKS["a"]).max() < 0.1
    c_held = table.query("fold == 'without_c' and classifier == 'c' and identities == 'holdout'")
    expected = fake_evaluate(names, shift=1.0)(x[None])[0].p[2].mean()
    assert float(c_held["p_after"].iloc[0]) == pytest.approx(expected)
    assert float(c_held["p_after"].iloc[0]) < 0.05  # c never saw it: it does not transfer
    # the written prototype is the "all" fold's best, and the summary keys are right
    all_best = hist[hist["best_of"].str.split().apply(lambda f: "all" in f)]
    assert proto == {a: v for a, v in zip(["AU1", "AU2"], all_best[["AU1", "AU2"]].to_numpy(
        float)[0], strict=True) if v}
    summary = held_out_summary(table)["fear"]
    assert set(summary["c"]) == {"written", "loco"}
    assert summary["c"]["loco"]["p"][1] == pytest.approx(expected, abs=1e-4)


def test_each_fold_keeps_its_own_best_and_bounds_hold() -> None:
    names = ("a", "c")
    folds = make_folds(names, names, True)
    lo, hi = np.array([0.0, 0.0]), np.array([1.0, 0.5])
    # c peaks at (0.9, 0.1); a at (0.3, 0.8), outside AU2's upper bound 0.5
    results, cache = search_emotion(fake_evaluate(names), names, folds, np.array([0.5, 0.2]),
                                    lo, hi, objective="mean_p", design=4, evaluations=30,
                                    popsize=6, sigma=0.3, seed=7)
    xs = np.array(cache.keys)
    assert (xs >= lo).all() and (xs <= hi).all()
    assert len(xs) == len(set(cache.keys))
    for r in results:
        rows = [names.index(c) for c in r.fold.search_set]
        values = [objective_value(cache.scores[k], rows, "mean_p") for k in r.seen]
        assert r.objective_after == max(values) >= r.objective_before
        assert r.evaluations <= 1 + 4 + 30
    without_c = next(r for r in results if r.fold.name == "without_c")  # only a: at the bound
    assert np.abs(np.array(without_c.best) - [0.3, 0.5]).max() < 0.05


def test_one_dimension_uses_pattern_search() -> None:
    def evaluate(c):
        return [Scores(p=np.array([[np.exp(-(x[0] - 0.37) ** 2 / 0.02)]]),
                       top1=np.array([[True]])) for x in c]
    (res,), _ = search_emotion(evaluate, ("a",), make_folds(["a"], ["a"], False),
                               np.array([1.0]), np.array([0.0]), np.array([1.0]),
                               objective="recognition", design=0, evaluations=40, popsize=4,
                               sigma=0.3, seed=1)
    assert abs(res.best[0] - 0.37) < 0.01


def test_settings_refuse_bad_values() -> None:
    cfg = validate_config({})
    for bad, key in [({"nope": 1}, "calibration.nope"),
                     ({"bounds": {"AU26": [1, 0]}}, "calibration.bounds.AU26"),
                     ({"bounds": {"AU99": [0, 1]}}, "calibration.bounds.AU99"),
                     ({"search_set": ["face_api"]}, "calibration.leave_one_out"),
                     ({"emotions": ["contempt"]}, "calibration.emotions"),
                     ({"aus": {"fear": ["AU99"]}}, "calibration.aus.fear"),
                     ({"holdout_seed": 4321}, "calibration.holdout_seed"),
                     ({"objective": "max"}, "calibration.objective")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            calibration_settings({**cfg, "calibration": bad})
    s = calibration_settings({**cfg, "calibration": {"bounds": {"AU26": [0, 1.1]}}})
    assert s.bounds["AU26"] == (0.0, 1.1) and s.bounds["AU27"] == (0.0, 0.8)
    assert "AU2" in s.aus["fear"] and "AU26" in s.aus["fear"]  # EMFACS candidates joined


def test_renderer_config_is_the_untouched_design() -> None:
    cfg = validate_config({})
    r = renderer_config(cfg, 96)
    assert r["render"]["size"] == 96 and r["intervention"]["strengths"] == [0.0]
    assert len(r["intervention"]["sides"]) == 1


def test_the_shipped_upper_bound_config_is_a_valid_calibration():
    """config/calibration_upper_bound.yaml (the README's upper-bound table) parses as the
    calibrate command reads it: every study classifier searched, none held out."""
    repo = Path(__file__).resolve().parents[1]
    from facesym.config import merged_config

    raw = merged_config([repo / "config" / "calibration_upper_bound.yaml"],
                        base=repo / "config" / "config.yaml")
    study = validate_config({k: v for k, v in raw.items() if k != "calibration"})
    cfg = {**study, "calibration": raw["calibration"]}
    settings = calibration_settings(cfg)
    assert set(settings.search_set) == set(cfg["classifiers"])
    assert not settings.leave_one_out
    assert (settings.identities, settings.holdout_identities, settings.evaluations) == (8, 10, 60)
