"""Procedural per-vertex albedo for a face model (ICT has no albedo texture), and the look.

Regions come from the model's vertex sets and its 68 landmarks on the template. Two albedo
variants:

* ``legacy``: hard region colours (skin tone blended between a light and a dark albedo,
  darker lips, tapered brows, a hair cap, white sclera with iris and pupil, teeth, gums, a dark
  mouth socket, black eyelashes): the look before issue 7, kept for the ablation.
* ``procedural`` (default): soft transitions (signed distances to the lip outline, the brow
  line and the hairline), per-face variation (lip and cheek redness, brow density, hair and
  iris colour, hairline height), brows as a textured band, a thin lash line on the upper lid
  instead of a black rim, off-white sclera with a limbal ring, iris and pupil, a near-black
  oral cavity, a muted red tongue, pink gums, off-white teeth (all darkening with depth behind
  the incisors) and a hair cap on the scalp.

Per-face variation is drawn from a stream seeded by the face's skin-tone value (the only
appearance factor the scene cube holds), so it is deterministic per face and needs no new
scene factor. ``Look`` bundles the albedo variant with the shading options that
``facesym.render.render_batch`` takes (``lighting``, ``cavity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as PolyPath

from facesym.facemodel.base import FaceModel

SKIN_LIGHT = np.array([0.93, 0.76, 0.65])
SKIN_DARK = np.array([0.42, 0.28, 0.20])
COLOURS = {
    "lips": np.array([0.62, 0.30, 0.30]),
    "brows": np.array([0.16, 0.11, 0.08]),
    "hair": np.array([0.12, 0.09, 0.07]),
    "sclera": np.array([0.93, 0.92, 0.90]),
    "iris": np.array([0.30, 0.20, 0.12]),
    "pupil": np.array([0.03, 0.03, 0.03]),
    "teeth": np.array([0.93, 0.91, 0.85]),
    "gums_tongue": np.array([0.65, 0.28, 0.28]),
    "mouth_socket": np.array([0.18, 0.06, 0.06]),
    "eye_socket": np.array([0.55, 0.35, 0.32]),
    "eyelashes": np.array([0.05, 0.04, 0.04]),
}
IRIS_ANGLE_DEG = 26.0
PUPIL_ANGLE_DEG = 11.0

# Procedural palette (sRGB-ish 0..1, written to the image without gamma, like the legacy one).
SCLERA = np.array([0.86, 0.83, 0.79])
SCLERA_CORNER = np.array([0.80, 0.62, 0.58])  # pinker towards the canthi
PUPIL = np.array([0.02, 0.02, 0.02])
TEETH = np.array([0.86, 0.83, 0.74])
GUMS = np.array([0.74, 0.44, 0.44])  # pink
TONGUE = np.array([0.50, 0.22, 0.22])  # darker, more muted red than lips
MOUTH_INTERIOR = np.array([0.07, 0.025, 0.02])  # oral cavity: near-black red-brown
# Baked occlusion of the oral cavity: albedo × (floor + (1 − floor)·exp(−depth / scale)), depth
# (cm) behind the front of the incisors, so the tongue tip and incisors are lit and the molars,
# the back of the tongue and the throat fall dark as in photographs of open mouths.
MOUTH_OCCLUSION_SCALE_CM = 2.5
MOUTH_OCCLUSION_FLOOR = 0.2
EYE_SOCKET = np.array([0.40, 0.22, 0.20])
LIP_RED = np.array([0.66, 0.26, 0.28])
CHEEK_RED = np.array([0.85, 0.42, 0.40])
# Iris colours (brown, dark brown, hazel, green-grey, blue-grey) and hair colours (black,
# dark brown, brown, auburn, dark blond); darker skin draws darker ones more often.
IRIS_COLOURS = np.array([[0.33, 0.20, 0.11], [0.18, 0.11, 0.07], [0.42, 0.33, 0.18],
                         [0.36, 0.40, 0.33], [0.36, 0.44, 0.52]])
HAIR_COLOURS = np.array([[0.05, 0.045, 0.04], [0.11, 0.075, 0.055], [0.22, 0.15, 0.10],
                         [0.30, 0.16, 0.09], [0.45, 0.36, 0.24]])
ALBEDO_VARIANTS = ("legacy", "procedural")
LIGHTING_VARIANTS = ("lambert", "sh")


@dataclass(frozen=True)
class Look:
    """How faces look: the albedo variant and the shading options of ``render_batch``.

    ``lighting`` is ``lambert`` (constant ambient + key light) or ``sh`` (second-order
    spherical-harmonics ambient + key light); ``cavity`` the strength of the cavity shading
    computed on each deformed mesh (0 = off); ``cavity_absolute`` the weight of the identity's
    own (resting) concavity where the renderer passes the neutral meshes: 0 = only the folds
    the expression adds darken, 1 = the absolute concavity of the deformed mesh;
    ``wrinkles`` the strength of the wrinkle shading where the expression compresses the
    skin (0 = off, see ``facesym.render.shading.compression``).
    """

    albedo: str = "procedural"
    lighting: str = "sh"
    cavity: float = 0.4
    cavity_absolute: float = 1.0
    wrinkles: float = 0.0

    def __post_init__(self) -> None:
        if self.albedo not in ALBEDO_VARIANTS:
            raise ValueError(f"albedo must be one of {ALBEDO_VARIANTS}, got {self.albedo!r}")
        if self.lighting not in LIGHTING_VARIANTS:
            raise ValueError(f"lighting must be one of {LIGHTING_VARIANTS}, got {self.lighting!r}")
        if self.cavity < 0:
            raise ValueError(f"cavity must be >= 0, got {self.cavity}")
        if not 0 <= self.cavity_absolute <= 1:
            raise ValueError(f"cavity_absolute must be in [0, 1], got {self.cavity_absolute}")
        if self.wrinkles < 0:
            raise ValueError(f"wrinkles must be >= 0, got {self.wrinkles}")

    @classmethod
    def from_config(cls, cfg: Mapping) -> Look:
        """The look of ``render.appearance`` (keys albedo, lighting, cavity, cavity_absolute,
        wrinkles)."""
        return cls(albedo=str(cfg["albedo"]), lighting=str(cfg["lighting"]),
                   cavity=float(cfg["cavity"]), cavity_absolute=float(cfg["cavity_absolute"]),
                   wrinkles=float(cfg["wrinkles"]))

    def shading(self) -> dict:
        """Keyword arguments of ``facesym.render.render_batch`` for this look (the caller adds
        ``neutral_vertices``)."""
        return {"lighting": self.lighting, "cavity": self.cavity,
                "cavity_absolute": self.cavity_absolute, "wrinkles": self.wrinkles}


LEGACY_LOOK = Look(albedo="legacy", lighting="lambert", cavity=0.0, cavity_absolute=1.0)


@dataclass(frozen=True)
class AppearanceMasks:
    """Per-vertex weights of each legacy appearance class (skin is what remains), plus the
    soft fields (V,) the procedural albedo is built from."""

    weights: dict[str, np.ndarray]  # class -> (V,) in [0, 1]
    fields: dict[str, np.ndarray] | None = None


def _eye_geometry(model: FaceModel, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertex indices of one eyeball and each one's angle (deg) from its forward axis."""
    idx = np.flatnonzero(model.region_mask(f"sclera_{side}", f"iris_{side}"))
    v = model.template[idx].astype(np.float64)
    centre = v.mean(axis=0)
    centre[2] = v[:, 2].min() + (v[:, 2].max() - v[:, 2].min()) / 2  # sphere centre in depth
    d = v - centre
    angle = np.degrees(np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1, 1)))
    return idx, angle


def _eye_classes(model: FaceModel, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx, angle = _eye_geometry(model, side)
    return idx, angle < PUPIL_ANGLE_DEG, (angle >= PUPIL_ANGLE_DEG) & (angle < IRIS_ANGLE_DEG)



def _segment_distances(points: np.ndarray, line: np.ndarray):
    """For each segment of a 2D polyline: (parameter 0..1 of the nearest point on it, distance)
    of every point."""
    for a, b in zip(line[:-1], line[1:], strict=True):
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0, 1)
        yield t, np.linalg.norm(points - (a + t[:, None] * ab), axis=1)

def _segment_distance(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of 2D ``points`` to a polyline and the arc parameter (0..1) of the nearest
    point along it."""
    seg_len = np.linalg.norm(np.diff(line, axis=0), axis=1)
    start = np.concatenate([[0.0], np.cumsum(seg_len)]) / max(seg_len.sum(), 1e-9)
    best = np.full(len(points), np.inf)
    where = np.zeros(len(points))
    for i, (t, dist) in enumerate(_segment_distances(points, line)):
        closer = dist < best
        best[closer] = dist[closer]
        where[closer] = start[i] + t[closer] * (start[i + 1] - start[i])
    return best, where


def _near_polyline(points: np.ndarray, line: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Soft weight of 2D ``points`` within a per-segment-tapered ``radius`` of a polyline."""
    best = np.zeros(len(points))
    for i, (t, dist) in enumerate(_segment_distances(points, line)):
        r = radius[i] + t * (radius[i + 1] - radius[i])
        best = np.maximum(best, np.clip(1.5 - dist / r, 0, 1))
    return best


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _signed_polygon_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Signed distance of 2D points to a closed polygon (negative inside)."""
    dist, _ = _segment_distance(points, np.vstack([polygon, polygon[:1]]))
    inside = PolyPath(polygon).contains_points(points)
    return np.where(inside, -dist, dist)


def _legacy_weights(model: FaceModel) -> dict[str, np.ndarray]:
    n = model.n_vertices
    v = model.template.astype(np.float64)
    lm = v[model.landmarks]
    w: dict[str, np.ndarray] = {}
    face = model.region_mask("face")
    front = face & (v[:, 2] > lm[:, 2].min() - 1.0)

    lips = np.zeros(n)
    lips[front] = PolyPath(lm[48:60, :2]).contains_points(v[front, :2], radius=0.05)
    w["lips"] = lips

    brows = np.zeros(n)
    taper = np.array([0.25, 0.45, 0.5, 0.45, 0.35]) * 0.9
    for sl, r in ((slice(17, 22), taper), (slice(22, 27), taper[::-1])):
        brows[front] = np.maximum(brows[front], _near_polyline(v[front, :2], lm[sl, :2], r))
    w["brows"] = brows

    brow_top = lm[17:27, 1].max()
    hair = np.zeros(n)
    head = model.region_mask("head")
    hair[face] = np.clip((v[face, 1] - (brow_top + 5.0)) / 0.8, 0, 1)
    hair[head] = np.clip((v[head, 1] - (brow_top - 1.0)) / 1.0, 0, 1) * (v[head, 2] < 8)
    w["hair"] = hair

    for cls in ("sclera", "iris", "pupil"):
        w[cls] = np.zeros(n)
    for side in ("left", "right"):
        idx, pupil, iris = _eye_classes(model, side)
        w["pupil"][idx[pupil]] = 1
        w["iris"][idx[iris]] = 1
        w["sclera"][idx[~(pupil | iris)]] = 1
    for region in ("teeth", "gums_tongue", "mouth_socket", "eye_socket", "eyelashes"):
        w[region] = model.region_mask(region).astype(np.float64)
    return w


def _vertex_noise(model: FaceModel, seed: int, smooth: int) -> np.ndarray:
    """Fixed per-vertex noise in [-1, 1], smoothed over the mesh ``smooth`` times."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, model.n_vertices)
    tri = model.triangles
    for _ in range(smooth):
        acc = np.zeros_like(x)
        cnt = np.zeros_like(x)
        for c in range(3):
            np.add.at(acc, tri[:, c], x[tri[:, (c + 1) % 3]] + x[tri[:, (c + 2) % 3]])
            np.add.at(cnt, tri[:, c], 2)
        x = 0.5 * x + 0.5 * acc / np.maximum(cnt, 1)
    return x / max(np.abs(x).max(), 1e-9)


def _procedural_fields(model: FaceModel) -> dict[str, np.ndarray]:
    """Soft per-vertex fields in template space: weights in 0..1 unless said otherwise."""
    n = model.n_vertices
    v = model.template.astype(np.float64)
    lm = v[model.landmarks]
    face = model.region_mask("face")
    head = model.region_mask("head")
    front = face & (v[:, 2] > lm[:, 2].min() - 1.0)
    xy = v[front, :2]
    f: dict[str, np.ndarray] = {}

    def on_front(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        out[front] = values
        return out

    # Lips: soft edge (0.12 cm) around the outer lip outline; vermilion darkest at the centre.
    sd = _signed_polygon_distance(xy, lm[48:60, :2])
    f["lips"] = on_front(_smoothstep(0.5 - sd / 0.16))
    # Cheeks: broad blobs below the eyes, over the cheekbones.
    cheek = np.zeros(len(xy))
    for a, b in ((31, 2), (35, 14)):
        centre = 0.45 * lm[a, :2] + 0.55 * lm[b, :2] + np.array([0.0, 0.9])
        cheek = np.maximum(cheek, np.exp(-np.sum((xy - centre) ** 2, axis=1) / (2 * 1.5**2)))
    f["cheeks"] = on_front(cheek)
    # Nose tip and alae slightly redder.
    nose = np.exp(-np.sum((xy - lm[30, :2]) ** 2, axis=1) / (2 * 0.9**2))
    f["nose"] = on_front(nose)
    # Around the eyes a little darker (periorbital shading of real skin).
    peri = np.zeros(len(xy))
    for sl in (slice(36, 42), slice(42, 48)):
        centre = lm[sl, :2].mean(axis=0) - np.array([0.0, 0.3])
        peri = np.maximum(peri, np.exp(-np.sum(((xy - centre) / [1.8, 1.0]) ** 2, axis=1) / 2))
    f["periorbital"] = on_front(peri)
    # Brows: distance to the brow line with a tapered half-width (thick inner, thin tail),
    # and the arc position for the texture's direction.
    band = np.zeros(len(xy))
    along = np.zeros(len(xy))
    for sl, inner_first in ((slice(17, 22), False), (slice(22, 27), True)):
        line = lm[sl, :2] + np.array([0.0, 0.05])
        dist, t = _segment_distance(xy, line)
        t_inner = t if inner_first else 1 - t  # 0 at the inner end, 1 at the tail
        half = 0.55 - 0.30 * t_inner
        w = _smoothstep((half - dist) / 0.2 + 0.5)
        band = np.maximum(band, w)
        along = np.where(w >= band, t_inner, along)
    f["brows"] = on_front(band)
    f["brow_along"] = on_front(along)
    # Lash line: thin dark line along the upper lids, from the outer to the inner corner.
    lash = np.zeros(len(xy))
    for idx in ((36, 37, 38, 39), (42, 43, 44, 45)):
        dist, t = _segment_distance(xy, lm[list(idx), :2] + np.array([0.0, 0.03]))
        width = 0.06 + 0.06 * np.sin(np.pi * t)  # thicker in the middle
        lash = np.maximum(lash, _smoothstep((width - dist) / 0.06 + 0.5))
    f["lash_line"] = on_front(lash)
    # Hair: height (cm) above a hairline that rises towards the temples; negative below it.
    brow_top = lm[17:27, 1].max()
    height = np.full(n, -100.0)
    height[face] = v[face, 1] - (brow_top + 3.8 + 0.04 * v[face, 0] ** 2)
    # on the scalp (head region) the hair covers the top and back, not the ears and neck
    ear_top = brow_top - 1.5
    back = v[head, 2] < 8
    height[head] = np.where(back, v[head, 1] - ear_top, v[head, 1] - (brow_top + 2.0))
    f["hair_height"] = height
    # Eyes: angle from each eyeball's forward axis.
    angle = np.full(n, -1.0)
    for side in ("left", "right"):
        idx, a = _eye_geometry(model, side)
        angle[idx] = a
    f["eye_angle"] = angle
    # Fixed grain textures (skin blotches, brow hairs, hair strands).
    f["noise_coarse"] = _vertex_noise(model, 11, 6)
    f["noise_fine"] = _vertex_noise(model, 12, 1)
    for region in ("teeth", "gums_tongue", "mouth_socket", "eye_socket", "eyelashes"):
        f[region] = model.region_mask(region).astype(np.float64)
    # Models without an oral cavity (FLAME): no tongue, no occlusion.
    f["gums"], f["tongue"], f["mouth_depth"] = f["gums_tongue"], np.zeros(n), np.zeros(n)
    if f["teeth"].any() and f["gums_tongue"].any():
        f.update(_mouth_fields(model))
    return f


def _mouth_fields(model: FaceModel) -> dict[str, np.ndarray]:
    """Tongue (the gums_tongue vertices inside the lower dental arch or behind the teeth; the
    rest are gums) and the depth (cm) of the mouth-interior vertices behind the incisors."""
    v = model.template.astype(np.float64)
    teeth = v[model.region_mask("teeth")]
    gt = np.flatnonzero(model.region_mask("gums_tongue"))
    p = v[gt]
    # Lower teeth: below the occlusal plane (midway between upper and lower tooth centres).
    occlusal = np.median(teeth[:, 1])
    lower = teeth[teeth[:, 1] < occlusal]
    # Lingual edge of the lower arch in the x-z plane: per 0.25 cm depth bin, the smallest |x|
    # of the lower teeth there (the front incisors span x ≈ 0, so in front of the arch's
    # bend nothing is "inside").
    z0 = lower[:, 2].min()
    bins = np.floor((lower[:, 2] - z0) / 0.25).astype(int)
    inner = np.full(bins.max() + 1, np.inf)
    np.minimum.at(inner, bins, np.abs(lower[:, 0]))
    pb = np.clip(np.floor((p[:, 2] - z0) / 0.25).astype(int), 0, bins.max())
    inside = (np.abs(p[:, 0]) < inner[pb] - 0.05) & (p[:, 1] < occlusal)
    behind = p[:, 2] < z0
    tongue = np.zeros(model.n_vertices)
    tongue[gt[inside | behind]] = 1.0
    interior = model.region_mask("teeth", "gums_tongue", "mouth_socket")
    depth = np.zeros(model.n_vertices)
    depth[interior] = np.clip(teeth[:, 2].max() - v[interior, 2], 0.0, None)
    gums = model.region_mask("gums_tongue") * (1.0 - tongue)
    return {"tongue": tongue, "gums": gums, "mouth_depth": depth}


def appearance_masks(model: FaceModel) -> AppearanceMasks:
    """Compute the appearance classes and procedural fields of every vertex."""
    return AppearanceMasks(weights=_legacy_weights(model), fields=_procedural_fields(model))


def _legacy_albedo(masks: AppearanceMasks, tones: np.ndarray) -> np.ndarray:
    skin = SKIN_LIGHT[None] + tones[:, None] * (SKIN_DARK - SKIN_LIGHT)[None]  # (B, 3)
    n = len(next(iter(masks.weights.values())))
    out = np.broadcast_to(skin[:, None, :], (len(tones), n, 3)).copy()
    for cls, weight in masks.weights.items():
        colour = COLOURS[cls]
        if cls == "lips":  # lips follow the skin tone, darker and redder
            colour = 0.72 * skin + 0.28 * COLOURS["lips"]
            colour = colour[:, None, :]
        out += weight[None, :, None] * (colour - out)
    return out


def face_variation(tone: float) -> dict[str, float]:
    """Per-face appearance parameters drawn from a stream seeded by the skin-tone value."""
    seed = int.from_bytes(np.float64(tone).tobytes(), "little")
    rng = np.random.default_rng([seed, 7])
    u = rng.random(10)
    dark = float(np.clip(tone, 0, 1))
    # Darker skin tones draw darker hair and irises more often (index 0..4 from dark to light).
    hair_pick = int(np.clip(np.floor(u[0] ** (1 + 2 * dark) * 5), 0, 4))
    iris_pick = int(np.clip(np.floor(u[1] ** (1 + 3 * dark) * 5), 0, 4))
    return {
        "hue": 0.04 * (u[2] - 0.5),  # red-yellow balance of the skin
        "lip_red": 0.35 + 0.35 * u[3],
        "cheek_red": 0.10 + 0.20 * u[4],
        "brow_density": 0.75 + 0.25 * u[5],
        "hairline": 1.2 * (u[6] - 0.5),  # cm up (+) or down (-)
        "hair": float(hair_pick),
        "iris": float(iris_pick),
        "grain": 0.03 + 0.03 * u[7],
    }


def _procedural_albedo(f: Mapping[str, np.ndarray], tone: float) -> np.ndarray:
    p = face_variation(tone)
    skin = SKIN_LIGHT + tone * (SKIN_DARK - SKIN_LIGHT)
    skin = skin * np.array([1 + p["hue"], 1.0, 1 - p["hue"]])
    n = len(f["lips"])
    out = np.broadcast_to(skin, (n, 3)).copy()
    # Large-scale blotchiness and fine grain of the skin.
    out *= (1 + p["grain"] * f["noise_coarse"] + 0.02 * f["noise_fine"])[:, None]

    def blend(weight: np.ndarray, colour: np.ndarray) -> None:
        out[:] += weight[:, None] * (colour - out)

    blend(p["cheek_red"] * f["cheeks"], skin * CHEEK_RED / SKIN_LIGHT)
    blend(0.12 * f["nose"], skin * CHEEK_RED / SKIN_LIGHT)
    out *= (1 - 0.10 * f["periorbital"])[:, None]
    lip = (1 - p["lip_red"]) * skin * 0.82 + p["lip_red"] * LIP_RED * (0.55 + 0.45 * (1 - tone))
    blend(f["lips"], lip)
    # Brows: hairs along the brow (fine noise) in the hair colour, denser at the inner end.
    hair = HAIR_COLOURS[int(p["hair"])]
    brow_colour = 0.5 * hair + 0.5 * HAIR_COLOURS[1]
    hairs = np.clip(0.5 + 0.8 * f["noise_fine"], 0, 1)
    density = p["brow_density"] * (1 - 0.3 * f["brow_along"])
    blend(f["brows"] * density * (0.7 + 0.3 * hairs), brow_colour)
    blend(0.85 * f["lash_line"], 0.5 * hair + 0.02)
    # Hair cap: soft hairline (0.5 cm), strands as fine noise.
    cap = _smoothstep((f["hair_height"] - p["hairline"]) / 0.5 + 0.5)
    strands = hair * (1 + 0.35 * f["noise_fine"] + 0.15 * f["noise_coarse"])[:, None]
    out[:] += cap[:, None] * (strands - out)
    # Eyes: sclera off-white, pinker towards the corners; iris with a darker limbal ring.
    angle = f["eye_angle"]
    eye = angle >= 0
    iris_colour = IRIS_COLOURS[int(p["iris"])]
    sclera = SCLERA + _smoothstep((angle - 45.0) / 30.0)[:, None] * (SCLERA_CORNER - SCLERA)
    ring = _smoothstep((angle - (IRIS_ANGLE_DEG - 5.0)) / 5.0)[:, None]
    iris = iris_colour * (1 - 0.5 * ring) * (1 + 0.25 * f["noise_fine"])[:, None]
    eye_colour = np.where((angle < PUPIL_ANGLE_DEG)[:, None], PUPIL,
                          np.where((angle < IRIS_ANGLE_DEG)[:, None], iris, sclera))
    out[eye] = eye_colour[eye]
    # Mouth and eye interiors; lashes a dark, semi-transparent fringe over the skin.
    for region, colour in (("teeth", TEETH), ("gums", GUMS), ("tongue", TONGUE),
                           ("mouth_socket", MOUTH_INTERIOR), ("eye_socket", EYE_SOCKET)):
        blend(f[region], colour)
    occlusion = MOUTH_OCCLUSION_FLOOR + (1 - MOUTH_OCCLUSION_FLOOR) * np.exp(
        -f["mouth_depth"] / MOUTH_OCCLUSION_SCALE_CM)
    out *= occlusion[:, None]
    blend(0.45 * f["eyelashes"], 0.6 * hair + 0.02)
    return out


def vertex_albedo(masks: AppearanceMasks, skin_tone: float | np.ndarray,
                  look: Look | None = None) -> np.ndarray:
    """Per-vertex RGB albedo (B, V, 3) float32 in 0..1 for skin tone(s) in [0, 1].

    ``look.albedo`` picks the variant (default: procedural, with per-face variation seeded by
    each face's skin-tone value).
    """
    look = look or Look()
    tones = np.atleast_1d(np.asarray(skin_tone, dtype=np.float64))
    if look.albedo == "legacy" or masks.fields is None:
        out = _legacy_albedo(masks, tones)
    else:
        out = np.stack([_procedural_albedo(masks.fields, float(t)) for t in tones])
    return np.clip(out, 0.0, 1.0).astype(np.float32)
