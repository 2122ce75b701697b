"""A mirrored template: a face model whose left and right expressions are exact mirror images.

ICT-FaceKit's ``*_R`` shapes mirror its ``*_L`` shapes only to a few per cent, so a left and a
right intervention on the same face differ by more than their side. :func:`mirrored_model`
removes that source of laterality by construction, through the model's mirror map m and the
reflection R about the midline plane (F flips the x component of a displacement):

- one shape of each mirror pair (``X_L``/``X_R``, and ``fooLeft``/``fooRight`` such as
  ``jawLeft``/``jawRight``) is replaced by the reflection of its twin,
  B_R(v) = F B_L(m(v)) (``source="left"``; ``"right"`` keeps the right shapes);
- every other expression shape is symmetrised, B(v) ← (B(v) + F B(m(v))) / 2;
- the template is symmetrised the same way, t(v) ← (t(v) + R t(m(v))) / 2, so the hemiface
  masks (which depend on the template's x) are mirror images too: a 0.005 cm asymmetry of
  ICT's neutral face would otherwise leave ~1e-3 cm differences in the masked shapes.

Identity modes are left as they are (:func:`identity_symmetry` measures them: ICT's PCA basis
holds symmetric and purely antisymmetric modes, so a sampled face has its own asymmetry). Vertices
without a mirror partner keep their own values. Where the mirror map is not reciprocal
(m(m(v)) ≠ v: duplicate eyelash vertices and two tongue vertices of ICT) symmetrised shapes
are exact mirrors only up to the map's own error.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from facesym.facemodel.base import FaceModel

#: config values of ``face_model.mirrored_shapes`` → the side whose shapes are kept
MIRRORED_SHAPES = {"none": None, "from_left": "left", "from_right": "right"}
_FLIP_X = np.array([-1.0, 1.0, 1.0])
_PAIR_PATTERNS = ((re.compile(r"^(.*)_L$"), r"\1_R"), (re.compile(r"^(.*)_R$"), r"\1_L"),
                  (re.compile(r"^(.*)Left(.*)$"), r"\1Right\2"),
                  (re.compile(r"^(.*)Right(.*)$"), r"\1Left\2"))


def mirror_twin(name: str) -> tuple[str, str] | None:
    """(side, twin name) of a shape that has a mirror twin by name, else None.

    >>> mirror_twin("mouthSmile_L"), mirror_twin("jawRight"), mirror_twin("jawOpen")
    (('left', 'mouthSmile_R'), ('right', 'jawLeft'), None)
    """
    for k, (pattern, repl) in enumerate(_PAIR_PATTERNS):
        if pattern.match(name):
            return ("left" if k % 2 == 0 else "right"), pattern.sub(repl, name)
    return None


def _reflect(values: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """F values(partner(v)) for (…, V, 3) displacements."""
    return values[..., partner, :] * _FLIP_X


def mirrored_model(model: FaceModel, source: str = "left",
                   symmetrise_identity: bool = False) -> FaceModel:
    """A copy of ``model`` with expression shapes (and template) exactly mirror-symmetric:
    ``source``-side shapes kept, their twins replaced by reflections, the rest symmetrised
    (see the module docstring). ``symmetrise_identity`` also symmetrises the identity modes
    (an analysis option: the study's faces then lose their own asymmetry).
    ``model.meta["mirrored_shapes"]`` records what was done.
    """
    if source not in ("left", "right"):
        raise ValueError(f"source must be 'left' or 'right', got {source!r}")
    names = list(model.expression_names)
    own = np.arange(model.n_vertices)
    paired = model.mirror >= 0
    partner = np.where(paired, model.mirror, own)
    expr = model.expression.astype(np.float64)
    out = expr.copy()
    replaced, symmetrised = [], []
    for i, name in enumerate(names):
        twin = mirror_twin(name)
        if twin is not None and twin[1] in names:
            if twin[0] != source:  # this one is replaced by its twin's reflection
                out[i] = _reflect(expr[names.index(twin[1])], partner)
                replaced.append(name)
        else:
            out[i] = (expr[i] + _reflect(expr[i], partner)) / 2
            symmetrised.append(name)
    x0 = float(model.midline_x)
    centred = model.template.astype(np.float64) - [x0, 0.0, 0.0]
    template = (centred + _reflect(centred, partner)) / 2 + [x0, 0.0, 0.0]
    # where m(m(v)) ≠ v the average is not exactly mirrored: measured, not hidden
    sym = out[[names.index(n) for n in symmetrised]]
    sym_error = float(np.abs(sym - _reflect(sym, partner)).max()) if symmetrised else 0.0
    meta = dict(model.meta)
    meta["mirrored_shapes"] = {
        "source": source, "replaced": replaced, "symmetrised": symmetrised,
        "template_symmetrised": True,
        "template_change_max": float(np.abs(template - model.template).max()),
        "nonreciprocal_vertices": int((paired & (partner[partner] != own)).sum()),
        "symmetrised_max_error": sym_error,
        "identity_symmetry": identity_symmetry(model),
    }
    identity = model.identity
    if symmetrise_identity:
        ident = model.identity.astype(np.float64)
        identity = ((ident + _reflect(ident, partner)) / 2).astype(np.float32)
    meta["mirrored_shapes"]["identity_symmetrised"] = symmetrise_identity
    return replace(model, template=template.astype(np.float32), identity=identity,
                   expression=out.astype(np.float32), meta=meta)


def identity_symmetry(model: FaceModel, region: str = "face") -> dict:
    """How mirror-symmetric the identity modes are on ``region``.

    Per mode k, the ratio r_k = RMS‖antisymmetric part‖ / RMS‖symmetric part‖ (parts
    (B ± F B∘m) / 2): ``ratio`` lists them, ``symmetric`` / ``antisymmetric`` count modes with
    r < 0.01 / r > 100 (ICT's PCA basis has both kinds), ``max_abs`` is the largest
    antisymmetric displacement of any mode (model units, per unit coefficient).
    """
    if len(model.identity) == 0:
        return {"ratio": [], "symmetric": 0, "antisymmetric": 0, "max_abs": 0.0}
    v = np.flatnonzero(model.region_mask(region) & (model.mirror >= 0))
    ident = model.identity[:, v].astype(np.float64)
    reflected = model.identity[:, model.mirror[v]].astype(np.float64) * _FLIP_X
    anti = np.linalg.norm((ident - reflected) / 2, axis=-1)
    sym = np.linalg.norm((ident + reflected) / 2, axis=-1)
    ratio = np.sqrt((anti**2).mean(1)) / np.maximum(np.sqrt((sym**2).mean(1)), 1e-12)
    return {"ratio": [round(float(r), 4) for r in ratio],
            "symmetric": int((ratio < 0.01).sum()), "antisymmetric": int((ratio > 100).sum()),
            "max_abs": float(anti.max())}


def shape_pair_asymmetry(model: FaceModel, region: str | None = None) -> dict[str, float]:
    """For each left shape with a right twin (``X_L``/``X_R``, ``fooLeft``/``fooRight``):
    Σ‖B_R − F B_L∘m‖ / Σ‖B_R‖ over the paired vertices (of ``region``, or all): how far the
    right shape is from the mirror of the left one (0 = exact mirrors)."""
    names = model.expression_names
    inside = model.region_mask(region) if region else np.ones(model.n_vertices, bool)
    v = np.flatnonzero(inside & (model.mirror >= 0))
    out = {}
    for i, name in enumerate(names):
        twin = mirror_twin(name)
        if twin is None or twin[0] != "left" or twin[1] not in names:
            continue
        right = model.expression[names.index(twin[1])][v].astype(np.float64)
        mirrored = model.expression[i][model.mirror[v]].astype(np.float64) * _FLIP_X
        den = np.linalg.norm(right, axis=-1).sum()
        out[name[:-2] if name.endswith("_L") else name] = (
            float(np.linalg.norm(right - mirrored, axis=-1).sum() / den) if den > 0 else 0.0)
    return out
