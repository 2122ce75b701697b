"""Shared fixtures: the real resources (fetched once per machine) and the real ICT model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from facesym.config import validate_config
from facesym.facemodel.base import FaceModel
from facesym.facemodel.ict import build_ict_model
from facesym.resources import default_cache_dir, fetch_resource

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The resource cache the tests share ($FACESYM_CACHE or ~/.cache/facesym)."""
    return default_cache_dir()


@pytest.fixture(scope="session")
def ict_folder(cache_dir: Path) -> Path:
    """The verified ICT-FaceKit FaceXModel folder."""
    fetch_resource("ict_facekit", cache_dir)
    return cache_dir / "ict_facekit" / "FaceXModel"


@pytest.fixture(scope="session")
def ict_model(ict_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceModel:
    """The real ICT-FaceKit model with 10 identity modes (built once per session)."""
    path = tmp_path_factory.mktemp("model") / "ict.npz"
    build_ict_model(ict_folder, identity_modes=10).save(path)
    return FaceModel.load(path)


@pytest.fixture()
def default_config() -> dict:
    """The default study configuration, validated."""
    return validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


@pytest.fixture()
def rng() -> np.random.Generator:
    """A seeded generator for test data."""
    return np.random.default_rng(1234)
