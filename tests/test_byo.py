"""Readers for user-supplied classifier files, checked against small real models exported here."""

from __future__ import annotations

import hashlib
import sys
import textwrap
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facesym.classifiers.base import LABEL_SYNONYMS, Classifier, InputSpec
from facesym.classifiers.byo import (
    ENTRY_KEYS,
    INPUT_KEYS,
    OnnxModule,
    check_entry,
    check_user_file,
    load_entry,
    load_factory_state_dict,
    load_onnx,
    load_torchscript,
)
from facesym.classifiers.zoo import check_zoo

# TorchScript is deprecated in recent torch but still what many users have.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

TEMPLATES = resources.files("facesym").joinpath("data", "zoo_byo_templates.yaml")


class TinyNet(torch.nn.Module):
    """A small conv classifier: (N, 3, 16, 16) → (N, 5) logits."""

    def __init__(self, classes: int = 5, width: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(width)
        self.head = torch.nn.Linear(width * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 4)
        return self.head(y.flatten(1))


class TwoHeads(TinyNet):
    """TinyNet that also returns its pooled features."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 4).flatten(1)
        return self.head(y), y


class ChannelsLast(TinyNet):
    """TinyNet fed (N, H, W, C), as a tf2onnx export of a Keras model would be."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2))


def _net(cls: type[TinyNet] = TinyNet, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    net = cls()
    with torch.no_grad():  # non-trivial BN statistics so eval mode matters
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _batch(n: int = 3, size: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def _export(net: torch.nn.Module, path: Path, example: torch.Tensor, dynamic: bool,
            output_names: list[str] | None = None) -> Path:
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    names = output_names or ["logits"]
    axes = {"input": {0: "batch"}, **{n: {0: "batch"} for n in names}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(path), input_names=["input"],
                          output_names=names, dynamic_axes=axes, dynamo=False)
    return path


@pytest.fixture(scope="module")
def net() -> TinyNet:
    return _net()


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory, net: TinyNet) -> dict[str, Path]:
    pytest.importorskip("onnxruntime")
    d = tmp_path_factory.mktemp("onnx")
    return {
        "dynamic": _export(net, d / "dynamic.onnx", _batch(2), dynamic=True),
        "fixed1": _export(net, d / "fixed1.onnx", _batch(1), dynamic=False),
        "fixed3": _export(net, d / "fixed3.onnx", _batch(3), dynamic=False),
        "two": _export(_net(TwoHeads), d / "two.onnx", _batch(2), dynamic=True,
                       output_names=["logits", "features"]),
        "nhwc": _export(_net(ChannelsLast), d / "nhwc.onnx",
                        _batch(2).permute(0, 2, 3, 1), dynamic=True),
    }


# ----------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("kind", ["dynamic", "fixed1"])
def test_onnx_matches_source(onnx_files: dict[str, Path], net: TinyNet, kind: str) -> None:
    module = load_onnx(onnx_files[kind])
    assert isinstance(module, OnnxModule) and not module.training
    assert module.fixed_batch == (None if kind == "dynamic" else 1)
    for n in (1, 5):
        x = _batch(n)
        with torch.no_grad():
            want = net(x)
        got = module(x)
        assert got.dtype == torch.float32 and got.shape == (n, 5)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_onnx_fixed_batch_other_than_one(onnx_files: dict[str, Path], net: TinyNet) -> None:
    module = load_onnx(onnx_files["fixed3"])
    x = _batch(3)
    with torch.no_grad():
        torch.testing.assert_close(module(x), net(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="fixed batch of 3"):
        module(_batch(2))


def test_onnx_empty_batch(onnx_files: dict[str, Path]) -> None:
    assert load_onnx(onnx_files["fixed1"])(_batch(0)).shape == (0, 5)


def test_onnx_threads_follow_torch(onnx_files: dict[str, Path]) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert load_onnx(onnx_files["dynamic"]).intra_op_threads == 2
    finally:
        torch.set_num_threads(before)


def test_onnx_validates_input(onnx_files: dict[str, Path]) -> None:
    module = load_onnx(onnx_files["dynamic"])
    assert module.input_shape == (None, 3, 16, 16)
    with pytest.raises(ValueError, match=r"channel count 1 .*\(N, 3, 16, 16\)"):
        module(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="height 32"):
        module(torch.zeros(2, 3, 32, 16))
    with pytest.raises(ValueError, match="4-d"):
        module(torch.zeros(3, 16, 16))


def test_onnx_output_name(onnx_files: dict[str, Path]) -> None:
    src = _net(TwoHeads)
    x = _batch(4)
    with torch.no_grad():
        logits, feats = src(x)
    torch.testing.assert_close(load_onnx(onnx_files["two"])(x), logits, atol=1e-5, rtol=1e-5)
    got = load_onnx(onnx_files["two"], output_name="features")(x)
    torch.testing.assert_close(got, feats, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no output named 'probs'.*logits, features"):
        load_onnx(onnx_files["two"], output_name="probs")


def test_onnx_channels_last(onnx_files: dict[str, Path]) -> None:
    src = _net(ChannelsLast)
    x = _batch(3)
    module = load_onnx(onnx_files["nhwc"], layout="nhwc")
    assert module.input_shape == (None, 3, 16, 16)
    with torch.no_grad():
        want = src(x.permute(0, 2, 3, 1))
    torch.testing.assert_close(module(x), want, atol=1e-5, rtol=1e-5)


def test_onnx_behind_classifier(onnx_files: dict[str, Path], net: TinyNet) -> None:
    spec = InputSpec(size=16, colour="rgb", mean=(127.5,) * 3, std=(64.0,) * 3)
    labels = ("anger", "disgust", "fear", "happiness", "neutral")
    clf = Classifier("tiny_onnx", load_onnx(onnx_files["fixed1"]), spec, labels, "softmax")
    ref = Classifier("tiny_torch", net, spec, labels, "softmax")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 40, 40, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[8.0, 8.0, 30.0, 30.0]], dtype=np.float32), (4, 1))
    raw, probs = clf.predict(images, boxes, batch_size=3)
    raw_ref, probs_ref = ref.predict(images, boxes, batch_size=3)
    np.testing.assert_allclose(raw, raw_ref, atol=1e-5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- TorchScript


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_matches_source(tmp_path: Path, net: TinyNet, how: str) -> None:
    x = _batch(4)
    scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, _batch(2))
    path = tmp_path / f"{how}.pt"
    torch.jit.save(scripted, str(path))
    module = load_torchscript(path)
    assert not module.training
    with torch.no_grad():
        torch.testing.assert_close(module(x), net(x), atol=1e-6, rtol=1e-6)


def test_torchscript_rejects_state_dict(tmp_path: Path, net: TinyNet) -> None:
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path)
    with pytest.raises(ValueError, match="format: factory"):
        load_torchscript(path)


# ----------------------------------------------------------------------------- factory

FACTORY_SRC = '''
import torch


class UserNet(torch.nn.Module):
    def __init__(self, classes=5, width=4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(width)
        self.head = torch.nn.Linear(width * 4 * 4, classes)

    def forward(self, x):
        y = torch.nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 4)
        return self.head(y.flatten(1))


class TupleNet(UserNet):
    def forward(self, x):
        return None, super().forward(x)


def build(classes=5, width=4):
    return UserNet(classes=classes, width=width)


def not_a_module():
    return 42
'''


@pytest.fixture()
def user_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package of the user's own model code, written to tmp_path and put on sys.path."""
    pkg = tmp_path / "userpkg_byo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(textwrap.dedent(FACTORY_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "userpkg_byo.nets"
    for mod in [m for m in sys.modules if m.startswith("userpkg_byo")]:
        del sys.modules[mod]


def _user_sd(width: int = 4) -> dict[str, torch.Tensor]:
    """TinyNet's weights; the user net has the same parameter names."""
    torch.manual_seed(0)
    net = TinyNet(width=width)
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
    return net.eval().state_dict(), net


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_state_dict", "dataparallel"])
def test_factory_matches_source(tmp_path: Path, user_pkg: str, wrap: str) -> None:
    sd, src = _user_sd()
    if wrap == "state_dict":
        obj = {"state_dict": sd, "epoch": 3, "best_acc": 0.9}
    elif wrap == "model_state_dict":
        obj = {"iter": 21, "model_state_dict": sd}
    elif wrap == "dataparallel":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    else:
        obj = sd
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    module = load_factory_state_dict(path, f"{user_pkg}:build", {"width": 4})
    assert not module.training
    x = _batch(3)
    with torch.no_grad():
        torch.testing.assert_close(module(x), src(x), atol=1e-6, rtol=1e-6)


def test_factory_configurable_key_prefix_and_output_index(tmp_path: Path, user_pkg: str) -> None:
    sd, src = _user_sd()
    path = tmp_path / "ema.pth"
    torch.save({"model": {}, "ema": {"step": torch.tensor(5),
                                     **{f"ema_model.{k}": v for k, v in sd.items()}}}, path)
    module = load_factory_state_dict(path, f"{user_pkg}:TupleNet", state_dict_key="ema",
                                     key_prefix="ema_model.", output_index=1)
    x = _batch(2)
    with torch.no_grad():
        torch.testing.assert_close(module(x), src(x), atol=1e-6, rtol=1e-6)


def test_factory_strict_on_renamed_key(tmp_path: Path, user_pkg: str) -> None:
    sd, _ = _user_sd()
    sd["classifier.weight"] = sd.pop("head.weight")
    path = tmp_path / "renamed.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError) as err:
        load_factory_state_dict(path, f"{user_pkg}:build")
    msg = str(err.value)
    assert "renamed.pth" in msg
    assert "missing keys" in msg and "head.weight" in msg
    assert "unexpected keys" in msg and "classifier.weight" in msg


def test_factory_shape_mismatch(tmp_path: Path, user_pkg: str) -> None:
    sd, _ = _user_sd()
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="size mismatch"):
        load_factory_state_dict(path, f"{user_pkg}:build", {"classes": 7})


def test_factory_bad_names(tmp_path: Path, user_pkg: str) -> None:
    sd, _ = _user_sd()
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    with pytest.raises(ImportError, match="'no_such_pkg_byo.nets'"):
        load_factory_state_dict(path, "no_such_pkg_byo.nets:build")
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        load_factory_state_dict(path, f"{user_pkg}:nope")
    with pytest.raises(ValueError, match="package.module:callable"):
        load_factory_state_dict(path, f"{user_pkg}.build")
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        load_factory_state_dict(path, f"{user_pkg}:not_a_module")
    with pytest.raises(KeyError, match="no key 'weights'"):
        load_factory_state_dict(path, f"{user_pkg}:build", state_dict_key="weights")


class Pickled:
    """An arbitrary object, like a training-state recorder saved next to the weights."""


def test_factory_never_unpickles_objects(tmp_path: Path, user_pkg: str) -> None:
    sd, _ = _user_sd()
    path = tmp_path / "full.pth"
    torch.save({"state_dict": sd, "recorder": Pickled()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_factory_state_dict(path, f"{user_pkg}:build")


# ----------------------------------------------------------------------------- user files


def test_missing_file_names_file_and_entry(tmp_path: Path) -> None:
    missing = tmp_path / "byo" / "enet_b0_8_best_afew.onnx"
    with pytest.raises(FileNotFoundError) as err:
        check_user_file(missing, "the ONNX export of HSEmotion enet_b0_8_best_afew",
                        "hsemotion_enet_b0")
    msg = str(err.value)
    assert str(missing) in msg
    assert "zoo entry hsemotion_enet_b0" in msg
    assert "the ONNX export of HSEmotion enet_b0_8_best_afew" in msg
    assert "weights.path" in msg


def test_sha256_checked(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really a model")
    good = hashlib.sha256(b"not really a model").hexdigest()
    assert check_user_file(path, "a file", "e", sha256=good.upper()) == path
    wrong = "0" * 64
    with pytest.raises(ValueError) as err:
        check_user_file(path, "a file", "some_entry", sha256=wrong)
    msg = str(err.value)
    assert str(path) in msg and wrong in msg and good in msg and "some_entry" in msg


def test_unquoted_all_digit_sha256_is_refused(tmp_path: Path) -> None:
    """YAML reads an unquoted all-digit sha256 as an int: refused, never skipped."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    digits = yaml.safe_load("sha256: " + "1" * 64)["sha256"]
    assert isinstance(digits, int)
    with pytest.raises(ValueError, match="must be a quoted string of 64 hex digits"):
        check_user_file(path, "a file", "e", sha256=digits)


def test_relative_user_path_resolves_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, net: TinyNet) -> None:
    torch.jit.save(torch.jit.script(net), str(tmp_path / "ts.pt"))
    entry = {"format": "torchscript", "weights": {"path": "ts.pt"},
             "input": {"size": 16, "colour": "rgb", "mean": [0], "std": [1]},
             "labels": ["a", "b", "c", "d", "e"], "output": "softmax"}
    monkeypatch.chdir(tmp_path)
    x = _batch(2)
    with torch.no_grad():
        torch.testing.assert_close(load_entry("t", entry)(x), net(x), atol=1e-5, rtol=1e-5)
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(FileNotFoundError, match="working directory"):
        load_entry("t", entry)


def test_load_entry_reads_each_format(tmp_path: Path, onnx_files: dict[str, Path],
                                      user_pkg: str, net: TinyNet) -> None:
    sd, src = _user_sd()
    torch.save({"net": sd}, tmp_path / "w.pth")
    torch.jit.save(torch.jit.script(net), str(tmp_path / "ts.pt"))
    common = {"input": {"size": 16, "colour": "rgb", "mean": [0], "std": [1]},
              "labels": ["a", "b", "c", "d", "e"], "output": "softmax"}
    x = _batch(2)
    entries = {
        "o": ({"format": "onnx", "weights": {"path": str(onnx_files["dynamic"]), "sha256": None},
               "output_columns": [0, 3], **common}, net),
        "t": ({"format": "torchscript", "weights": {"path": "ts.pt"}, **common}, net),
        "f": ({"format": "factory", "weights": {"path": "w.pth"}, "factory": f"{user_pkg}:build",
               "factory_kwargs": {"width": 4}, "state_dict_key": "net", **common}, src),
    }
    for name, (entry, ref) in entries.items():
        module = load_entry(name, entry, base_dir=tmp_path)
        with torch.no_grad():
            want = ref(x)[:, :3] if name == "o" else ref(x)
            torch.testing.assert_close(module(x), want, atol=1e-5, rtol=1e-5)
    bad = dict(entries["o"][0], input={**common["input"], "size": 32})
    with pytest.raises(ValueError, match="input.size 32"):
        load_entry("o", bad)
    gone = dict(entries["t"][0], weights={"path": "absent.pt"}, supply="your TorchScript file")
    with pytest.raises(FileNotFoundError, match="(?s)absent.pt.*your TorchScript file.*entry t"):
        load_entry("t", gone, base_dir=tmp_path)


# ----------------------------------------------------------------------------- templates


def test_templates_have_required_keys() -> None:
    templates = yaml.safe_load(TEMPLATES.read_text())
    check_zoo(templates, "templates")  # the zoo schema holds for every template
    assert len(templates) >= 8
    formats = set()
    for name, entry in templates.items():
        check_entry(name, entry)
        for key in ENTRY_KEYS:
            assert key in entry, (name, key)
        for key in INPUT_KEYS:
            assert key in entry["input"], (name, key)
        assert set(entry["weights"]) >= {"path", "sha256"}, name
        assert entry["output"] in ("softmax", "probs", "sigmoid"), name
        assert entry["input"]["colour"] in ("grey", "rgb"), name
        n_mean, n_std = len(entry["input"]["mean"]), len(entry["input"]["std"])
        assert n_mean == n_std and n_mean in (1, 3), name
        assert all(s > 0 for s in entry["input"]["std"]), name
        assert len(entry["labels"]) == len(set(entry["labels"])) >= 7, name
        unknown = {lab for lab in entry["labels"] if lab.lower() not in LABEL_SYNONYMS}
        assert unknown <= {"contempt", "other"}, (name, unknown)
        assert "TEMPLATE" in entry["description"], name
        if entry["format"] == "factory":
            assert ":" in entry["factory"], name
        formats.add(entry["format"])
        # the spec builds as the zoo would build it
        InputSpec(size=int(entry["input"]["size"]), colour=entry["input"]["colour"],
                  mean=tuple(entry["input"]["mean"]), std=tuple(entry["input"]["std"]),
                  channels=int(entry["input"].get("channels", 0)))
    assert formats == {"onnx", "torchscript", "factory"}
    assert templates["hsemotion_enet_b0_8_best_afew"]["labels"] == [
        "anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def test_template_entry_missing_file_message() -> None:
    templates = yaml.safe_load(TEMPLATES.read_text())
    entry = templates["hsemotion_enet_b0_8_best_afew"]
    with pytest.raises(FileNotFoundError) as err:
        load_entry("hsemotion_enet_b0_8_best_afew", entry, base_dir="/nonexistent-byo-root")
    msg = str(err.value)
    assert "enet_b0_8_best_afew.onnx" in msg and "hsemotion_enet_b0_8_best_afew" in msg
    assert "ONNX export of HSEmotion enet_b0_8_best_afew" in msg
