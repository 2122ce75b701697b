"""Tests of the tfjs weights reader and the face-api FaceExpressionNet port.

The parity fixture ``tests/fixtures/parity_face_api.npz`` was produced by running face-api
1.7.15 itself under node (scripts/parity/faceapi_reference.mjs -> faceapi_fixture.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesym.classifiers.tfjs_faceapi import (
    FACEAPI_EXPRESSION_LABELS,
    FaceExpressionNet,
    load_faceapi_expression,
    normalize_faceapi_input,
    read_tfjs_weights,
)

FIXTURE = Path(__file__).parent / "fixtures" / "parity_face_api.npz"
MANIFEST_REL = "package/model/face_expression_model-weights_manifest.json"
PROB_TOL = 1e-4


# ------------------------------------------------------------------ parity with face-api (node)


@pytest.fixture(scope="module")
def faceapi_manifest() -> Path:
    from facesym.resources import resource_file

    return Path(resource_file("face_api", MANIFEST_REL))


@pytest.fixture(scope="module")
def fixture_data() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_fixture_matches_resource_weights(faceapi_manifest: Path, fixture_data) -> None:
    """The fixture was made from the very .bin the resource provides."""
    bin_path = faceapi_manifest.with_name("face_expression_model.bin")
    digest = hashlib.sha256(bin_path.read_bytes()).hexdigest()
    assert str(fixture_data["bin_sha256"]) == digest
    assert str(fixture_data["package_version"]) == "1.7.15"
    assert tuple(fixture_data["labels"]) == FACEAPI_EXPRESSION_LABELS


def test_parity_with_faceapi(faceapi_manifest: Path, fixture_data) -> None:
    net = load_faceapi_expression(faceapi_manifest)
    assert not net.training
    assert net.output_activation == "softmax"
    assert net.input_shape_hw == (112, 112)
    assert net.input_channels == 3
    assert net.labels == FACEAPI_EXPRESSION_LABELS

    images = fixture_data["images_uint8"]
    expected = fixture_data["probs"].astype(np.float64)
    assert images.dtype == np.uint8 and images.shape[1:] == (112, 112, 3)
    x = normalize_faceapi_input(images)
    assert x.dtype == torch.float32 and x.shape == (images.shape[0], 3, 112, 112)
    with torch.no_grad():
        logits = net(x)
    assert logits.dtype == torch.float32 and logits.shape == (images.shape[0], 7)
    probs = torch.softmax(logits, dim=1).double().numpy()
    max_delta = float(np.abs(probs - expected).max())
    print(f"face-api parity: max |dprob| = {max_delta:.3e} over {images.shape[0]} images")
    assert max_delta <= PROB_TOL, f"max |dprob| = {max_delta:.3e} > {PROB_TOL}"
    np.testing.assert_array_equal(probs.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(logits.numpy(), fixture_data["logits"], atol=1e-3)


# ------------------------------------------------------------------ network shape behaviour


def test_network_shapes_and_attributes() -> None:
    net = FaceExpressionNet().eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 112, 112))
    assert out.shape == (2, 7)
    assert net.labels == FACEAPI_EXPRESSION_LABELS
    with pytest.raises(ValueError, match="112"):
        net(torch.zeros(1, 3, 96, 96))


# ------------------------------------------------------------------ read_tfjs_weights unit tests


def _write_manifest(tmp: Path, groups: list[dict], name: str = "m-weights_manifest.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(groups), encoding="utf-8")
    return path


@pytest.fixture()
def two_shard_model(tmp_path: Path) -> dict:
    """A manifest with a float32 + uint8 + uint16 group split over two shards, and a float16
    group in a third file; weights straddle the shard boundary."""
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((2, 3, 4)).astype("<f4")  # 96 bytes
    q8 = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)  # 35 bytes
    q16 = rng.integers(0, 65536, size=(6,), dtype=np.uint16).astype("<u2")  # 12 bytes
    bias = np.array([0.5, -1.25, 3.0], dtype="<f4")  # 12 bytes
    s8, m8 = 0.0123456789, -0.987654321
    s16, m16 = 1.5e-5, -0.25
    blob = f32.tobytes() + q8.tobytes() + q16.tobytes() + bias.tobytes()
    cut = 100  # inside the uint8 weight
    (tmp_path / "group1-shard1of2.bin").write_bytes(blob[:cut])
    (tmp_path / "group1-shard2of2.bin").write_bytes(blob[cut:])
    h16 = np.array([[1.0, -2.5], [0.000123, 65504.0]], dtype="<f2")
    (tmp_path / "group2-shard1of1.bin").write_bytes(h16.tobytes())
    groups = [
        {
            "paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
            "weights": [
                {"name": "a/kernel", "shape": [2, 3, 4], "dtype": "float32"},
                {
                    "name": "b/q8",
                    "shape": [5, 7],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": s8, "min": m8},
                },
                {
                    "name": "c/q16",
                    "shape": [6],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint16", "scale": s16, "min": m16},
                },
                {"name": "d/bias", "shape": [3], "dtype": "float32"},
            ],
        },
        {
            "paths": ["group2-shard1of1.bin"],
            "weights": [
                {
                    "name": "e/half",
                    "shape": [2, 2],
                    "dtype": "float32",
                    "quantization": {"dtype": "float16"},
                }
            ],
        },
    ]
    manifest = _write_manifest(tmp_path, groups)
    return {
        "manifest": manifest,
        "f32": f32,
        "q8": q8,
        "q16": q16,
        "bias": bias,
        "h16": h16,
        "s8": s8,
        "m8": m8,
        "s16": s16,
        "m16": m16,
    }


def test_read_tfjs_weights_values(two_shard_model: dict) -> None:
    m = two_shard_model
    w = read_tfjs_weights(m["manifest"])
    assert list(w) == ["a/kernel", "b/q8", "c/q16", "d/bias", "e/half"]
    assert all(v.dtype == np.float32 for v in w.values())
    np.testing.assert_array_equal(w["a/kernel"], m["f32"])
    np.testing.assert_array_equal(w["d/bias"], m["bias"])
    # tfjs: q * scale + min in float64, stored as float32
    exp8 = (m["q8"].astype(np.float64) * m["s8"] + m["m8"]).astype(np.float32)
    exp16 = (m["q16"].astype(np.float64) * m["s16"] + m["m16"]).astype(np.float32)
    assert w["b/q8"].shape == (5, 7) and w["c/q16"].shape == (6,)
    np.testing.assert_array_equal(w["b/q8"], exp8)
    np.testing.assert_array_equal(w["c/q16"], exp16)
    # and spot-check the formula by hand
    assert w["b/q8"][0, 0] == pytest.approx(int(m["q8"][0, 0]) * m["s8"] + m["m8"], abs=1e-6)
    assert w["b/q8"].min() >= m["m8"] - 1e-6
    assert w["b/q8"].max() <= m["m8"] + 255 * m["s8"] + 1e-6
    np.testing.assert_array_equal(w["e/half"], m["h16"].astype(np.float32))


def test_read_tfjs_weights_bin_dir(two_shard_model: dict, tmp_path: Path) -> None:
    m = two_shard_model
    elsewhere = tmp_path / "manifests"
    elsewhere.mkdir()
    moved = elsewhere / "moved-weights_manifest.json"
    moved.write_bytes(m["manifest"].read_bytes())
    w = read_tfjs_weights(moved, bin_dir=tmp_path)
    np.testing.assert_array_equal(w["a/kernel"], m["f32"])
    with pytest.raises(FileNotFoundError, match="group1-shard1of2.bin"):
        read_tfjs_weights(moved)


def test_read_tfjs_weights_truncated_shard(two_shard_model: dict, tmp_path: Path) -> None:
    shard = tmp_path / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(ValueError, match="group1-shard2of2.bin"):
        read_tfjs_weights(two_shard_model["manifest"])


def test_read_tfjs_weights_oversized_shard(two_shard_model: dict, tmp_path: Path) -> None:
    shard = tmp_path / "group2-shard1of1.bin"
    shard.write_bytes(shard.read_bytes() + b"\0\0")
    with pytest.raises(ValueError, match="group2-shard1of1.bin"):
        read_tfjs_weights(two_shard_model["manifest"])


def test_read_tfjs_weights_missing_shard(two_shard_model: dict, tmp_path: Path) -> None:
    (tmp_path / "group1-shard1of2.bin").unlink()
    with pytest.raises(FileNotFoundError, match="group1-shard1of2.bin"):
        read_tfjs_weights(two_shard_model["manifest"])


def test_read_tfjs_weights_bad_quantisation(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(bytes(4))
    entry = {"name": "x", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8"}}
    manifest = _write_manifest(tmp_path, [{"paths": ["w.bin"], "weights": [entry]}])
    with pytest.raises(ValueError, match="scale"):
        read_tfjs_weights(manifest)
