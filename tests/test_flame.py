"""The FLAME loader on a synthetic FLAME-layout pickle (chumpy objects, no chumpy installed)."""

from __future__ import annotations

import builtins
import importlib.util
import io
import os
import pickle
import pickletools
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from facesym.facemodel.base import LANDMARK68_MIRROR, FaceModel
from facesym.facemodel.flame import (
    ChumpyState,
    build_flame_model,
    landmark_vertices,
    load_flame_pickle,
)
from facesym.interventions import (
    displacement_parts,
    intervene,
    intervention_masks,
    shape_groups,
)
from facesym.symmetry import asymmetry_3d

NX, NY = 21, 15  # grid of vertices 1 cm apart, x from −10 to 10 cm (metres in the file)
N_GRID = NX * NY
N_VERTS = N_GRID + 1  # plus one vertex with no mirror partner
FLIP = np.array([-1.0, 1.0, 1.0])
SPARED = ["jaw*", "eyeLook*", "PupilDilate*"]
WIDTH = 1.0  # hemiface mask band (cm)
FAR = 2.5 * WIDTH  # beyond the band: 1 − m < 1e-6
SYMMETRIC_EXPR = (0, 1, 4)  # expression components built symmetric


def _partner() -> np.ndarray:
    """Expected mirror partner of every vertex (−1 for the extra one)."""
    i, j = np.divmod(np.arange(N_GRID), NY)
    return np.concatenate([(NX - 1 - i) * NY + j, [-1]])


def _mesh() -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(-(NX // 2), NX // 2 + 1) * 0.01  # exactly symmetric in float
    ys = np.arange(NY) * 0.01 - 0.07
    x, y = np.meshgrid(xs, ys, indexing="ij")
    z = 0.05 - 2.0 * x**2 - 0.5 * y**2
    verts = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    verts = np.vstack([verts, [[0.035, 0.095, 0.02]]])  # lonely vertex: no partner
    tris = []
    for i in range(NX - 1):
        for j in range(NY - 1):
            a, b, c, d = i * NY + j, (i + 1) * NY + j, (i + 1) * NY + j + 1, i * NY + j + 1
            tris += [(a, b, c), (a, c, d)]
    return verts, np.asarray(tris, dtype=np.uint32)


def _symmetrize(field: np.ndarray) -> np.ndarray:
    """(V, 3) field → its mirror-symmetric part d(v) = F d(m(v))."""
    p = _partner()
    p[p < 0] = N_VERTS - 1
    return (field + field[p] * FLIP) / 2


def _shapedirs(verts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = len(verts)
    dirs = np.zeros((v, 3, 400))
    for k in range(300):  # identity: symmetric
        dirs[:, :, k] = _symmetrize(rng.normal(scale=1e-3, size=(v, 3)))
    x = verts[:, 0]
    expr = [
        # 0: symmetric smile-like bumps on both cheeks
        np.exp(-((np.abs(x) - 0.04) ** 2 + verts[:, 1] ** 2) / 0.0008)[:, None]
        * np.array([0.0, 0.002, 0.001]),
        _symmetrize(rng.normal(scale=1e-3, size=(v, 3))),  # 1: symmetric
        (x > 0.005)[:, None] * rng.normal(scale=1e-3, size=(v, 3)),  # 2: left side only
        np.tile([0.002, 0.0, 0.0], (v, 1)),  # 3: global x shift (asymmetric)
        np.tile([0.0, 0.0, 0.002], (v, 1)),  # 4: global z shift (symmetric)
    ]
    for e in range(100):
        dirs[:, :, 300 + e] = expr[e] if e < len(expr) else rng.normal(scale=1e-3, size=(v, 3))
    return dirs


def _fake_chumpy() -> tuple[types.ModuleType, types.ModuleType, type, type]:
    pkg = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:  # chumpy.ch.Ch pickles its __dict__, the value under "x"
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    class Select:  # an unevaluated chumpy expression
        def __init__(self, a, idxs):
            self.a, self.idxs, self._dirty_vars = a, idxs, {"a"}

    for cls, mod in ((Ch, ch), (Select, reordering)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    pkg.ch, pkg.reordering = ch, reordering
    return pkg, ch, Ch, Select


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), like pickles made by Python 2."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        n = len(raw)
        head = (pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                else pickle.BINSTRING + struct.pack("<i", n))
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_dumps(obj) -> bytes:
    """A Python-2-era protocol-2 pickle: py2 strings and module paths (numpy.core, scipy.csc)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return (buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            .replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n"))


def _pickle_with_chumpy(make_payload, path: Path, protocol: int = 2, py2: bool = False) -> None:
    """Pickle ``make_payload(Ch, Select)`` while a fake chumpy is importable, then remove it."""
    pkg, ch, ch_cls, select_cls = _fake_chumpy()
    names = ("chumpy", "chumpy.ch", "chumpy.reordering")
    assert not any(n in sys.modules for n in names)
    sys.modules.update(zip(names, (pkg, ch, pkg.reordering), strict=True))
    try:
        obj = make_payload(ch_cls, select_cls)
        path.write_bytes(_py2_dumps(obj) if py2 else pickle.dumps(obj, protocol=protocol))
    finally:
        for n in names:
            del sys.modules[n]


def _landmarks(rng: np.random.Generator) -> np.ndarray:
    """68 vertices following the iBUG mirror table: the subject's right points at −x."""
    partner = _partner()
    right = [v for v in range(N_GRID) if v // NY < NX // 2]
    mid = [v for v in range(N_GRID) if v // NY == NX // 2]
    pick_r = iter(rng.choice(right, 34, replace=False))
    pick_m = iter(rng.choice(mid, 10, replace=False))
    lm = np.full(68, -1, dtype=np.int64)
    for i, p in enumerate(LANDMARK68_MIRROR):
        if i == p:
            lm[i] = next(pick_m)
        elif i < p:
            lm[i] = next(pick_r)
            lm[p] = partner[lm[i]]
    return lm


@pytest.fixture(scope="module")
def flame(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(7)
    verts, tris = _mesh()
    dirs = _shapedirs(verts, rng)
    j_reg = sp.csc_matrix(rng.random((5, N_VERTS)) * (rng.random((5, N_VERTS)) < 0.05))
    arrays = {"v_template": verts, "f": tris, "shapedirs": dirs, "J_regressor": j_reg,
              "posedirs": rng.normal(size=(N_VERTS, 3, 36)),
              "weights": rng.random((N_VERTS, 5)),
              "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]])}

    def payload(ch, select):
        return {"v_template": ch(verts), "f": tris, "shapedirs": ch(dirs),
                "J_regressor": j_reg, "posedirs": ch(arrays["posedirs"]),
                "weights": ch(arrays["weights"]), "kintree_table": arrays["kintree_table"],
                "J": select(ch(verts), np.arange(5)), "bs_style": "lbs", "bs_type": "lrotmin"}

    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    _pickle_with_chumpy(payload, path)
    lm = _landmarks(rng)
    model = build_flame_model(path, identity_modes=20, expression_modes=10, landmarks=lm)
    return types.SimpleNamespace(path=path, arrays=arrays, model=model, landmarks=lm,
                                 payload=payload)


# ---------------------------------------------------------------- loading


def test_pickle_references_chumpy_which_is_not_installed(flame):
    assert importlib.util.find_spec("chumpy") is None
    assert "chumpy" not in sys.modules
    globals_ = {arg for op, arg, _ in pickletools.genops(flame.path.read_bytes())
                if op.name == "GLOBAL"}
    assert {"chumpy.ch Ch", "chumpy.reordering Select"} <= globals_
    assert any(g.startswith("scipy.sparse") for g in globals_)


def test_arrays_round_trip(flame):
    data = load_flame_pickle(flame.path)
    for key in ("v_template", "f", "shapedirs", "posedirs", "weights", "kintree_table"):
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_array_equal(data[key], flame.arrays[key])
    assert sp.issparse(data["J_regressor"])
    np.testing.assert_array_equal(data["J_regressor"].toarray(),
                                  flame.arrays["J_regressor"].toarray())
    assert data["bs_style"] == "lbs" and data["bs_type"] == "lrotmin"
    assert isinstance(data["J"], ChumpyState) and data["J"].qualname == "chumpy.reordering.Select"
    assert "chumpy" not in sys.modules


def test_protocol_0_pickle_loads_too(flame, tmp_path):
    path = tmp_path / "p0.pkl"
    _pickle_with_chumpy(flame.payload, path, protocol=0)
    assert b"copy_reg\n_reconstructor" in path.read_bytes()
    data = load_flame_pickle(path)
    np.testing.assert_array_equal(data["shapedirs"], flame.arrays["shapedirs"])


def test_python2_style_pickle(flame, tmp_path):
    path = tmp_path / "py2.pkl"
    _pickle_with_chumpy(flame.payload, path, py2=True)
    ops = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    globals_ = {arg for op, arg, _ in pickletools.genops(path.read_bytes())
                if op.name == "GLOBAL"}
    assert "BINSTRING" in ops and "BINUNICODE" not in ops
    assert {"numpy.core.multiarray _reconstruct", "scipy.sparse.csc csc_matrix",
            "__builtin__ set", "chumpy.ch Ch"} <= globals_
    data = load_flame_pickle(path)
    for key in ("v_template", "f", "shapedirs", "kintree_table"):
        np.testing.assert_array_equal(data[key], flame.arrays[key])
    np.testing.assert_array_equal(data["J_regressor"].toarray(),
                                  flame.arrays["J_regressor"].toarray())
    assert data["bs_type"] == "lrotmin"


def test_model_is_in_cm(flame):
    m, a = flame.model, flame.arrays
    assert m.name == "flame" and m.units == "cm"
    np.testing.assert_array_equal(m.template, (a["v_template"] * 100).astype(np.float32))
    np.testing.assert_array_equal(m.triangles, a["f"].astype(np.int64))
    assert m.triangles.dtype == np.int64
    assert m.identity.shape == (20, N_VERTS, 3) and m.expression.shape == (10, N_VERTS, 3)
    np.testing.assert_allclose(m.identity[7], a["shapedirs"][:, :, 7] * 100, rtol=1e-6)
    np.testing.assert_allclose(m.expression[3], a["shapedirs"][:, :, 303] * 100, rtol=1e-6)
    assert m.expression_names == [f"exp{i:03d}" for i in range(10)]
    assert all(m.shape_side(n) is None for n in m.expression_names)
    assert m.region_names == ["face"] and (m.region == 0).all()
    assert "cm" in m.meta["units_conversion"] and m.meta["bs_style"] == "lbs"


def test_mirror_map_pairs_vertices(flame):
    m = flame.model
    np.testing.assert_array_equal(m.mirror, _partner())
    assert m.meta["mirror_unpaired"] == 1
    assert m.meta["mirror_reciprocal_fraction"] == 1.0
    assert m.midline_x == 0.0
    # frame: +x is the subject's left, so the subject's left eye corner (45) lies at +x
    assert m.template[m.landmarks[45], 0] > 0 > m.template[m.landmarks[36], 0]
    np.testing.assert_array_equal(m.mirror[m.landmarks], m.landmarks[LANDMARK68_MIRROR])
    assert m.meta["landmark_mirror_consistency"] == 1.0


def test_cache_round_trip(flame, tmp_path):
    flame.model.save(tmp_path / "flame.npz")
    back = FaceModel.load(tmp_path / "flame.npz")
    np.testing.assert_array_equal(back.expression, flame.model.expression)
    np.testing.assert_array_equal(back.mirror, flame.model.mirror)
    assert back.meta == flame.model.meta and back.expression_names == flame.model.expression_names


# ---------------------------------------------------------------- safety


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func", [os.system, builtins.eval, builtins.exec, np.load])
def test_forbidden_global_is_refused_and_not_run(tmp_path, func):
    marker = tmp_path / "ran"
    arg = (f"touch {marker}" if func is os.system
           else f"open({str(marker)!r}, 'w')" if func in (builtins.eval, builtins.exec)
           else str(marker))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(func, arg)}, protocol=2))
    # as named in the pickle (protocol 2 writes Python 2 names: builtins → __builtin__)
    (qualname,) = [arg.replace(" ", ".") for op, arg, _ in pickletools.genops(path.read_bytes())
                   if op.name == "GLOBAL" and arg.endswith(f" {func.__name__}")]
    assert qualname.split(".")[0] in (func.__module__, "__builtin__")
    with pytest.raises(pickle.UnpicklingError, match=qualname.replace(".", r"\.")) as exc:
        load_flame_pickle(path)
    assert str(path) in str(exc.value)
    assert not marker.exists()


def test_holders_cannot_reach_other_bases(tmp_path):
    # copy_reg._reconstructor(chumpy.ch.Ch, numpy.ndarray, None): only `object` is accepted
    raw = b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\ncnumpy\nndarray\nNtR."
    path = tmp_path / "odd.pkl"
    path.write_bytes(raw)
    with pytest.raises(pickle.UnpicklingError, match="_reconstructor"):
        load_flame_pickle(path)


# ---------------------------------------------------------------- errors


def test_missing_key_names_file_and_key(flame, tmp_path):
    path = tmp_path / "no_dirs.pkl"

    def payload(ch, select):
        full = flame.payload(ch, select)
        del full["shapedirs"]
        return full

    _pickle_with_chumpy(payload, path)
    with pytest.raises(ValueError, match=r"no_dirs\.pkl.*'shapedirs'"):
        build_flame_model(path, landmarks=flame.landmarks)


def test_bad_inputs(flame, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_flame_pickle(tmp_path / "missing.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match=r"list\.pkl.*dict"):
        load_flame_pickle(tmp_path / "list.pkl")
    with pytest.raises(ValueError, match="landmark"):
        build_flame_model(flame.path, identity_modes=2, expression_modes=2)
    with pytest.raises(ValueError, match="68"):
        build_flame_model(flame.path, identity_modes=2, expression_modes=2,
                          landmarks=flame.landmarks[:51])
    with pytest.raises(ValueError, match="mirrored"):
        build_flame_model(flame.path, identity_modes=2, expression_modes=2,
                          landmarks=flame.landmarks[LANDMARK68_MIRROR])
    with pytest.raises(ValueError, match="identity_modes"):
        build_flame_model(flame.path, identity_modes=301, landmarks=flame.landmarks)
    with pytest.raises(ValueError, match="expression_modes"):
        build_flame_model(flame.path, expression_modes=101, landmarks=flame.landmarks)


def _embedding(lm: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces, bary = [], []
    for v in lm:
        f = int(np.flatnonzero((tris == v).any(axis=1))[0])
        b = np.full(3, 0.15)
        b[int(np.flatnonzero(tris[f] == v)[0])] = 0.7
        faces.append(f)
        bary.append(b)
    return np.asarray(faces, dtype=np.uint32), np.asarray(bary)


def test_landmarks_from_barycentric_embedding(flame, tmp_path):
    tris = flame.model.triangles
    faces, bary = _embedding(flame.landmarks, tris)
    deca = tmp_path / "landmark_embedding.npy"  # DECA layout: np.save of a dict
    np.save(deca, {"full_lmk_faces_idx": faces[None], "full_lmk_bary_coords": bary[None],
                   "static_lmk_faces_idx": faces[None, 17:]})
    np.testing.assert_array_equal(landmark_vertices(deca, tris), flame.landmarks)
    model = build_flame_model(flame.path, identity_modes=2, expression_modes=2, landmarks=deca)
    np.testing.assert_array_equal(model.landmarks, flame.landmarks)
    assert model.meta["landmark_source"] == "landmark_embedding.npy"

    static = tmp_path / "flame_static_embedding.pkl"  # FLAME's: 51 points, no jaw contour
    static.write_bytes(pickle.dumps({"lmk_face_idx": faces[17:], "lmk_b_coords": bary[17:]},
                                    protocol=2))
    with pytest.raises(ValueError, match="51"):
        landmark_vertices(static, tris)
    plain = tmp_path / "lm.npy"
    np.save(plain, flame.landmarks)
    np.testing.assert_array_equal(landmark_vertices(plain, tris), flame.landmarks)


# ---------------------------------------------------------------- intervention


def _weights(rng: np.random.Generator, n: int, symmetric: bool) -> np.ndarray:
    w = np.zeros(n)
    idx = list(SYMMETRIC_EXPR) if symmetric else list(range(n))
    w[idx] = rng.uniform(0.3, 1.0, len(idx))
    return w


@pytest.fixture(scope="module")
def setup(flame):
    m = flame.model
    groups = shape_groups(m, SPARED, mode="mask")
    masks = intervention_masks(m, WIDTH)
    rng = np.random.default_rng(3)
    parts = {s: displacement_parts(m, _weights(rng, 10, s), groups) for s in (True, False)}
    return groups, masks, parts


def test_all_flame_shapes_are_masked_bilateral(flame):
    for mode in ("mask", "split"):
        g = shape_groups(flame.model, SPARED, mode=mode)
        assert g.bilateral.all() and not (g.left | g.right | g.spared).any()


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("side", ["left", "right", "control"])
def test_zero_strength_is_untouched(setup, side, symmetric):
    _, masks, parts = setup
    p = parts[symmetric]
    np.testing.assert_array_equal(intervene(p, side, 0.0, masks), p.total)


@pytest.mark.parametrize("symmetric", [True, False])
def test_full_strength_clears_affected_hemiface(flame, setup, symmetric):
    _, masks, parts = setup
    p = parts[symmetric]
    scale = np.abs(p.total).max()
    x = flame.model.template[:, 0] - flame.model.midline_x
    for side, sign in (("left", 1.0), ("right", -1.0)):
        d = intervene(p, side, 1.0, masks)
        affected, other = x * sign > FAR, x * sign < -FAR
        assert affected.sum() > 50 and other.sum() > 50
        np.testing.assert_allclose(d[affected], 0.0, atol=1e-5 * scale)
        np.testing.assert_allclose(d[other], p.total[other], rtol=1e-5, atol=1e-6 * scale)


def test_asymmetry_grows_with_strength(flame, setup):
    _, masks, parts = setup
    p = parts[True]
    strengths = np.linspace(0.0, 1.0, 11)
    assert asymmetry_3d(p.total, flame.model) < 1e-6
    for side in ("left", "right"):
        asym = np.array([asymmetry_3d(intervene(p, side, a, masks), flame.model)
                         for a in strengths])
        assert asym[0] < 1e-6
        assert (np.diff(asym) > 0).all()
        assert asym[-1] > 0.5


def test_left_is_the_mirror_image_of_right(flame, setup):
    m = flame.model
    _, masks, parts = setup
    p = parts[True]
    beta = np.random.default_rng(5).normal(size=20).astype(np.float32)
    v = np.flatnonzero(m.mirror >= 0)
    for a in (0.3, 1.0):
        d_left, d_right = intervene(p, "left", a, masks), intervene(p, "right", a, masks)
        scale = np.abs(d_left).max()
        np.testing.assert_allclose(d_left[v], d_right[m.mirror[v]] * FLIP, atol=1e-5 * scale)
        mesh_left = m.identity_mesh(beta) + d_left
        mesh_right = m.identity_mesh(beta) + d_right
        np.testing.assert_allclose(mesh_left[v], mesh_right[m.mirror[v]] * FLIP, atol=1e-4)


@pytest.mark.parametrize("symmetric", [True, False])
def test_control_adds_no_asymmetry(flame, setup, symmetric):
    _, masks, parts = setup
    p = parts[symmetric]
    base = asymmetry_3d(p.total, flame.model)
    for a in (0.25, 0.5, 1.0):
        d = intervene(p, "control", a, masks)
        np.testing.assert_allclose(asymmetry_3d(d, flame.model), base, atol=1e-6)
        np.testing.assert_allclose(d, p.total * (1 - a / 2), rtol=1e-6, atol=1e-7)
