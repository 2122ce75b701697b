"""A user-supplied FLAME model (``generic_model.pkl`` 2020, ``flame2023.pkl``) → :class:`FaceModel`.

FLAME is not redistributable, so the user brings the file. It is a Python-2-era pickle of a
dict holding chumpy objects, numpy arrays and scipy sparse matrices. Chumpy does not install
on current Python, and an unrestricted ``pickle.load`` of a downloaded file runs whatever the
file names, so :func:`load_flame_pickle` unpickles with an explicit allow-list
(:data:`ALLOWED_GLOBALS`): numpy's array/dtype/scalar reconstructors, scipy's CSC/CSR matrix
classes and chumpy's classes. The scipy and chumpy classes are never imported: they are
replaced by plain holders that only record the pickled state, converted afterwards (a chumpy
``Ch`` keeps its array under ``x``; a sparse matrix is rebuilt from data/indices/indptr/shape).
Any other global raises :class:`pickle.UnpicklingError` naming it, before anything is called.

FLAME's frame: +x is the subject's left, +y up, +z towards the viewer (SMPL's convention), the
same as :class:`FaceModel`'s, so no axis is flipped. Units: FLAME is in metres; the model is
converted to centimetres (× 100) like the rest of the pipeline. ``shapedirs`` (V, 3, 400)
holds 300 identity then 100 expression components, global (no left/right split): expression
shapes are named ``exp000``, ``exp001``, … and none ends in ``_L``/``_R``, so the symmetry
intervention applies the smooth hemiface mask to all of them.

Landmarks: FLAME ships no 68-vertex list, so the caller gives one (68 vertex indices, or a
landmark-embedding file of 68 barycentric points such as DECA's ``landmark_embedding.npy``;
each landmark becomes the vertex of its triangle with the largest barycentric weight). FLAME's
own ``flame_static_embedding.pkl`` has only the 51 inner points (no jaw contour, which FLAME
embeds dynamically), so it is refused with an explanation. Without landmarks, ValueError.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from facesym.facemodel.base import LANDMARK68_MIRROR, FaceModel, compute_mirror_map

try:  # numpy >= 2 (numpy.core is a deprecated alias there)
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

FLAME_IDENTITY_COMPONENTS = 300  # shapedirs[..., :300] = identity, the rest = expression
METRES_TO_CM = 100.0
# FLAME vertices are a few millimetres apart (≥ 2 mm on the face); pairing within 1 mm accepts
# a template that is symmetric to 1 mm without ever pairing two different vertex rows.
FLAME_MIRROR_TOLERANCE_CM = 0.1
# More unpaired vertices than this fraction suggests wrong units, frame or tolerance: warn.
MIRROR_UNPAIRED_WARN_FRACTION = 0.05
REQUIRED_KEYS = ("v_template", "f", "shapedirs")
FLAME_FRAME = "+x subject's left, +y up, +z towards the viewer"


class PickledState:
    """Stand-in for a class a FLAME pickle references but that is never imported.

    ``qualname`` is the pickled ``module.name``; ``args`` the constructor arguments (if the
    pickle passed any) and ``state`` what the pickle restored with BUILD (usually a dict).
    """

    qualname = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledState:
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        keys = sorted(self.state) if isinstance(self.state, dict) else type(self.state).__name__
        return f"<{self.qualname} state={keys}>"


class ChumpyState(PickledState):
    """A chumpy object (``chumpy.ch.Ch`` keeps its value under ``state['x']``)."""


class SparseState(PickledState):
    """A scipy CSC/CSR matrix, rebuilt from its state by :func:`_to_plain`."""

    fmt = "csc"


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Safe ``_codecs.encode``: Python 3 protocol-2 pickles write bytes as encode(str, latin1)."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1",
                                                                             "latin-1"):
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed for latin-1 text, got {type(obj).__name__} / "
            f"{encoding!r}")
    return obj.encode("latin-1", errors)


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Safe ``copy_reg._reconstructor`` (protocol 0/1): only for holders on an object base."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, PickledState)):
        raise pickle.UnpicklingError(
            f"copy_reg._reconstructor is only allowed for chumpy/scipy holders, got {cls!r}")
    return cls.__new__(cls)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.compressed", "scipy.sparse._compressed")
_SPARSE_NAMES = {"csc_matrix": "csc", "csc_array": "csc", "csr_matrix": "csr",
                 "csr_array": "csr"}
CHUMPY_MODULES = ("chumpy", "chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg",
                  "chumpy.logic", "chumpy.utils")

# Exact (module, name) → object. Python 2 module names (__builtin__, copy_reg) come in raw:
# the name fixing of the default find_class is bypassed by overriding it.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_MODULES},
    **{(m, "scalar"): scalar for m in _NUMPY_MODULES},
    **{(m, "_frombuffer"): _frombuffer for m in _NUMERIC_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # chumpy keeps `_dirty_vars` as a set; protocol 2 has no set opcode
    # … and protocol 0/1 pickles of new-style classes name `object` as the base
    **{(m, n): t for m in ("__builtin__", "builtins")
       for n, t in (("set", set), ("frozenset", frozenset), ("object", object))},
    ("_codecs", "encode"): _codecs_encode,
    **{(m, "_reconstructor"): _copyreg_reconstructor for m in ("copy_reg", "copyreg")},
}


class FlameUnpickler(pickle.Unpickler):
    """Unpickler restricted to :data:`ALLOWED_GLOBALS`, chumpy and scipy CSC/CSR (as holders).

    Holder classes are made per unpickler, so a pickle that alters one (BUILD on the class)
    cannot affect another load.
    """

    def __init__(self, file: Any, source: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self._holders: dict[str, type] = {}

    def _holder(self, base: type[PickledState], module: str, name: str, **attrs: Any) -> type:
        key = f"{module}.{name}"
        if key not in self._holders:
            self._holders[key] = type(name, (base,), {"qualname": key, **attrs})
        return self._holders[key]

    def _allowed(self, module: str, name: str) -> Any | None:
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return self._holder(SparseState, module, name, fmt=_SPARSE_NAMES[name])
        if module in CHUMPY_MODULES and name.isidentifier() and not name.startswith("__"):
            return self._holder(ChumpyState, module, name)
        return None

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed(module, name)
        if obj is None:
            raise pickle.UnpicklingError(
                f"{self.source}: forbidden global {module}.{name} in pickle (a FLAME model "
                "holds only numpy arrays, scipy sparse matrices and chumpy objects)")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self.source}: persistent ids are not allowed")


def _to_plain(obj: Any) -> Any:
    """Holders → numpy arrays / scipy sparse matrices, recursively through dicts and lists."""
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_plain(v) for v in obj)
    if isinstance(obj, SparseState):
        st = obj.state if isinstance(obj.state, dict) else {}
        shape = st.get("_shape", st.get("shape"))
        if shape is None or not all(k in st for k in ("data", "indices", "indptr")):
            return obj
        cls = sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix
        return cls((st["data"], st["indices"], st["indptr"]), shape=tuple(int(s) for s in shape))
    if isinstance(obj, ChumpyState):
        if isinstance(obj.state, dict) and "x" in obj.state:
            return np.asarray(_to_plain(obj.state["x"]))
        return obj  # an unevaluated chumpy expression: left as its recorded state
    return obj


def _unpickle(fh: Any, source: str) -> Any:
    try:
        return FlameUnpickler(fh, source).load()
    except pickle.UnpicklingError:
        raise
    except Exception as exc:
        raise pickle.UnpicklingError(f"{source}: not a readable model pickle: {exc}") from exc


def load_flame_pickle(path: str | Path) -> dict[str, Any]:
    """Read a FLAME-layout pickle safely (no chumpy, no code execution) → dict of plain values.

    Chumpy ``Ch`` objects become numpy arrays, CSC/CSR matrices ``scipy.sparse`` matrices (e.g.
    ``J_regressor``); strings (``bs_style``, ``bs_type``) stay strings. A chumpy object without
    an ``x`` value (an unevaluated expression) stays a :class:`ChumpyState`. Raises
    FileNotFoundError, pickle.UnpicklingError (forbidden global, corrupt file) or ValueError
    (not a dict), each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FLAME model file not found: {path}")
    with path.open("rb") as fh:
        data = _unpickle(fh, str(path))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return {str(k): v for k, v in _to_plain(data).items()}


def _load_npy(path: Path) -> Any:
    """A ``.npy`` file; object arrays (e.g. a pickled dict) go through :class:`FlameUnpickler`."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{path}: unsupported .npy version {version} for an object array")
        arr = _to_plain(_unpickle(fh, str(path)))
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.shape == ():
        return _to_plain(arr.item())
    return arr


# Barycentric landmark-embedding keys: (face indices, barycentric coordinates), best first.
_EMBEDDING_KEYS = (
    ("full_lmk_faces_idx", "full_lmk_bary_coords"),  # DECA landmark_embedding.npy: 68 points
    ("lmk_face_idx", "lmk_b_coords"),  # FLAME flame_static_embedding.pkl: 51 points
    ("static_lmk_faces_idx", "static_lmk_bary_coords"),
)


def landmark_vertices(source: str | Path, triangles: np.ndarray) -> np.ndarray:
    """68 landmark vertex indices from a file.

    ``.npy`` of 68 integers: the vertex indices themselves. A ``.pkl``/``.npy`` dict holding a
    barycentric embedding (keys :data:`_EMBEDDING_KEYS`): for each landmark, the vertex of its
    triangle with the largest barycentric weight.
    """
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"FLAME landmark file not found: {path}")
    data = _load_npy(path) if path.suffix == ".npy" else load_flame_pickle(path)
    if isinstance(data, np.ndarray) and np.issubdtype(data.dtype, np.integer):
        return data.astype(np.int64)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected 68 vertex indices or a landmark-embedding dict")
    for fkey, bkey in _EMBEDDING_KEYS:
        if fkey in data and bkey in data:
            faces = np.asarray(data[fkey]).astype(np.int64).reshape(-1)
            bary = np.asarray(data[bkey], dtype=np.float64).reshape(-1, 3)
            break
    else:
        raise ValueError(
            f"{path}: no landmark embedding found; expected one of the key pairs "
            f"{', '.join(f'{f}/{b}' for f, b in _EMBEDDING_KEYS)} (keys: {', '.join(data)})")
    if len(faces) != 68 or len(bary) != 68:
        raise ValueError(
            f"{path}: {fkey} holds {len(faces)} landmarks, 68 are needed (FLAME's static "
            "embedding has 51: no jaw contour). Give 68 vertex indices or a 68-point "
            "embedding such as DECA's landmark_embedding.npy (full_lmk_faces_idx)")
    if faces.min() < 0 or faces.max() >= len(triangles):
        raise ValueError(f"{path}: {fkey} indexes faces outside 0..{len(triangles) - 1}")
    return triangles[faces, bary.argmax(axis=1)].astype(np.int64)


def _check_landmarks(lm: Any, n_vertices: int, source: str) -> np.ndarray:
    arr = np.asarray(lm)
    if arr.shape != (68,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{source}: landmarks must be 68 integer vertex indices, "
                         f"got shape {arr.shape} of {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_vertices:
        raise ValueError(f"{source}: landmark vertex indices must lie in 0..{n_vertices - 1}")
    return arr


def _check_landmark_sides(lm: np.ndarray, template: np.ndarray, source: str) -> None:
    """Landmarks of the subject's right (36, 0…) must lie at −x, their twins at +x."""
    right = np.array([i for i in range(68) if i < LANDMARK68_MIRROR[i]])
    dx = template[lm[LANDMARK68_MIRROR[right]], 0] - template[lm[right], 0]
    if dx.mean() <= 0:
        raise ValueError(
            f"{source}: landmarks are mirrored: the subject's right-side points (e.g. 36, the "
            f"right eye's outer corner) must lie at −x of their twins ({FLAME_FRAME})")


def _get(data: dict, key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path}: FLAME model has no {key!r} key (keys: {', '.join(data)})")
    value = data[key]
    if isinstance(value, PickledState):
        raise ValueError(f"{path}: {key!r} is an unevaluated {value.qualname}, not an array")
    if sp.issparse(value):
        value = value.toarray()
    return np.asarray(value)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_flame_model(
    path: str | Path, identity_modes: int = 100, expression_modes: int = 50,
    landmarks: Sequence[int] | np.ndarray | str | Path | None = None, *,
    mirror_tolerance_cm: float = FLAME_MIRROR_TOLERANCE_CM,
) -> FaceModel:
    """Load a user-supplied FLAME pickle into a FaceModel in centimetres.

    ``landmarks``: 68 vertex indices (iBUG/Multi-PIE order), or a file for
    :func:`landmark_vertices`; required. All vertices form one region, "face".
    """
    path = Path(path)
    data = load_flame_pickle(path)
    template_m = _get(data, "v_template", path).astype(np.float64)
    tris = _get(data, "f", path)
    shapedirs = _get(data, "shapedirs", path)
    if template_m.ndim != 2 or template_m.shape[1] != 3:
        raise ValueError(f"{path}: 'v_template' must be (V, 3), got {template_m.shape}")
    n = len(template_m)
    if tris.ndim != 2 or tris.shape[1] != 3 or not np.issubdtype(tris.dtype, np.integer):
        raise ValueError(f"{path}: 'f' must be (F, 3) integer, got {tris.shape} {tris.dtype}")
    tris = tris.astype(np.int64)
    if tris.min() < 0 or tris.max() >= n:
        raise ValueError(f"{path}: 'f' indexes vertices outside 0..{n - 1}")
    n_expr = shapedirs.shape[-1] - FLAME_IDENTITY_COMPONENTS if shapedirs.ndim == 3 else -1
    if shapedirs.shape[:2] != (n, 3) or shapedirs.ndim != 3 or n_expr < 1:
        raise ValueError(f"{path}: 'shapedirs' must be ({n}, 3, {FLAME_IDENTITY_COMPONENTS} + "
                         f"expression components), got {shapedirs.shape}")
    if not 0 <= identity_modes <= FLAME_IDENTITY_COMPONENTS:
        raise ValueError(f"identity_modes must lie in 0..{FLAME_IDENTITY_COMPONENTS}, "
                         f"got {identity_modes}")
    if not 1 <= expression_modes <= n_expr:
        raise ValueError(f"expression_modes must lie in 1..{n_expr} for {path}, "
                         f"got {expression_modes}")

    def basis(lo: int, count: int) -> np.ndarray:  # (V, 3, count) m → (count, V, 3) cm
        block = np.asarray(shapedirs[:, :, lo : lo + count], dtype=np.float64)
        return np.ascontiguousarray((block * METRES_TO_CM).transpose(2, 0, 1), dtype=np.float32)

    identity = basis(0, identity_modes)
    expression = basis(FLAME_IDENTITY_COMPONENTS, expression_modes)
    expr_names = [f"exp{i:03d}" for i in range(expression_modes)]
    template = (template_m * METRES_TO_CM).astype(np.float32)

    region = np.zeros(n, dtype=np.int16)
    mirror, err, x0 = compute_mirror_map(template.astype(np.float64), region,
                                         mirror_tolerance_cm)
    paired = mirror >= 0
    unpaired = int((~paired).sum())
    reciprocal = float((mirror[mirror[paired]] == np.flatnonzero(paired)).mean()) \
        if paired.any() else 0.0
    if unpaired > MIRROR_UNPAIRED_WARN_FRACTION * n:
        warnings.warn(
            f"{path}: {unpaired} of {n} FLAME vertices have no mirror partner within "
            f"{mirror_tolerance_cm} cm (wrong units or frame, or an asymmetric template?)",
            stacklevel=2)

    if landmarks is None:
        raise ValueError(
            f"{path}: FLAME has no built-in 68-landmark vertex list; pass landmarks= as 68 "
            "vertex indices (iBUG order) or a 68-point barycentric embedding file (e.g. "
            "DECA's landmark_embedding.npy)")
    if isinstance(landmarks, str | Path):
        lm_source, landmark_source = str(landmarks), Path(landmarks).name
        lm = landmark_vertices(landmarks, tris)
    else:
        lm_source, landmark_source = "landmarks", "vertex indices"
        lm = landmarks
    lm = _check_landmarks(lm, n, lm_source)
    _check_landmark_sides(lm, template, lm_source)

    meta = {
        "source": "FLAME (user-supplied)",
        "file": path.name,
        "sha256": _sha256(path),
        "units_conversion": "FLAME metres x 100 -> cm",
        "frame": FLAME_FRAME,
        "identity_modes": int(identity_modes),
        "expression_modes": int(expression_modes),
        "expression_components_in_file": int(n_expr),
        "bs_style": str(data.get("bs_style", "")),
        "bs_type": str(data.get("bs_type", "")),
        "regions": "single region 'face' (all vertices)",
        "mirror_tolerance_cm": float(mirror_tolerance_cm),
        "mirror_unpaired": unpaired,
        "mirror_reciprocal_fraction": reciprocal,
        "mirror_max_error_cm": float(err[paired].max()) if paired.any() else None,
        "landmark_source": landmark_source,
        "landmark_mirror_consistency": float(
            (mirror[lm] == lm[LANDMARK68_MIRROR]).mean()),
    }
    return FaceModel(
        name="flame", template=template, triangles=tris, identity=identity,
        expression=expression, expression_names=expr_names, landmarks=lm, region=region,
        region_names=["face"], mirror=mirror, mirror_error=err, midline_x=x0, units="cm",
        meta=meta,
    )
