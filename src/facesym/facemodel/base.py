"""The one face-model interface every stage uses, and its compact on-disk cache."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

# Standard 68-point (Multi-PIE) landmark mirror pairs: index -> index of the mirrored landmark.
LANDMARK68_MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
     27, 28, 29, 30,  # nose bridge
     35, 34, 33, 32, 31,  # nostrils
     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
     64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.int64,
)


@dataclass
class FaceModel:
    """A linear morphable face model with a symmetric topology.

    Mesh = template + Σ β_k identity[k] + Σ w_e expression[e]. ``x`` is the subject's left.
    ``split`` maps each one-sided expression shape to its side ("left"/"right"); shapes absent
    from it move both sides. ``mirror`` maps vertex i to its mirror partner (−1 = none found).
    """

    name: str
    template: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (F, 3) int64, rendered triangles
    identity: np.ndarray  # (K, V, 3) float32
    expression: np.ndarray  # (E, V, 3) float32
    expression_names: list[str]
    landmarks: np.ndarray  # (68,) int64 vertex indices
    region: np.ndarray  # (V,) int16 region code
    region_names: list[str]
    mirror: np.ndarray  # (V,) int64
    mirror_error: np.ndarray  # (V,) float32 distance of the mirrored partner (model units)
    midline_x: float = 0.0
    units: str = "cm"
    meta: dict = field(default_factory=dict)

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return int(self.template.shape[0])

    def shape_index(self, name: str) -> int:
        """Index of expression shape ``name``; KeyError lists the known shapes."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(
                f"face model {self.name} has no expression shape {name!r}; known: "
                f"{', '.join(self.expression_names)}"
            ) from None

    def shape_side(self, name: str) -> str | None:
        """'left' for ``*_L`` shapes, 'right' for ``*_R``, None for shapes moving both sides."""
        if name.endswith("_L"):
            return "left"
        if name.endswith("_R"):
            return "right"
        return None

    def region_mask(self, *names: str) -> np.ndarray:
        """Boolean (V,) mask of the vertices in any of the named regions."""
        codes = [self.region_names.index(n) for n in names]
        return np.isin(self.region, codes)

    def identity_mesh(self, beta: np.ndarray) -> np.ndarray:
        """Template plus identity displacement for coefficients ``beta`` (K,) → (V, 3)."""
        k = beta.shape[-1]
        return self.template + np.tensordot(beta, self.identity[:k], axes=(0, 0))

    def with_mirrored_shapes(self, source: str = "left") -> FaceModel:
        """A copy whose ``source``-side expression shapes are mirrored onto the other side and
        whose other shapes and template are symmetrised (:func:`facemodel.mirror.mirrored_model`).
        """
        from facesym.facemodel.mirror import mirrored_model

        return mirrored_model(self, source)

    def save(self, path: str | Path) -> None:
        """Write the model to a compressed ``.npz`` (arrays + JSON metadata)."""
        meta = {
            "name": self.name, "expression_names": self.expression_names,
            "region_names": self.region_names, "midline_x": self.midline_x,
            "units": self.units, "meta": self.meta,
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp-write.npz")
        np.savez(
            tmp, template=self.template, triangles=self.triangles, identity=self.identity,
            expression=self.expression, landmarks=self.landmarks, region=self.region,
            mirror=self.mirror, mirror_error=self.mirror_error,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FaceModel:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != "meta"}
        return cls(
            name=meta["name"], expression_names=meta["expression_names"],
            region_names=meta["region_names"], midline_x=meta["midline_x"],
            units=meta["units"], meta=meta["meta"], **arrays,
        )


def compute_mirror_map(
    vertices: np.ndarray, region: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pair every vertex with its mirror image across the midline plane x = x0.

    Partners are searched within the same region (nearest neighbour of the reflected vertex).
    The midline x0 is estimated from the vertices' own reflection. Returns (mirror, error, x0),
    with mirror = −1 where the nearest reflected partner is farther than ``tol``.
    """
    x0 = float(np.median(vertices[:, 0]))
    for _ in range(2):  # refine the midline from the pairs found
        mirror, err = _pair_by_region(vertices, region, x0)
        ok = err < tol
        if ok.sum() > 0:
            x0 = float(np.median((vertices[ok, 0] + vertices[mirror[ok], 0]) / 2))
    mirror, err = _pair_by_region(vertices, region, x0)
    mirror = np.where(err < tol, mirror, -1)
    return mirror, err.astype(np.float32), x0


def _pair_by_region(vertices: np.ndarray, region: np.ndarray, x0: float):
    reflected = vertices.copy()
    reflected[:, 0] = 2 * x0 - reflected[:, 0]
    mirror = np.full(len(vertices), -1, dtype=np.int64)
    err = np.full(len(vertices), np.inf)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        tree = cKDTree(vertices[idx])
        d, j = tree.query(reflected[idx])
        mirror[idx] = idx[j]
        err[idx] = d
    return mirror, err
