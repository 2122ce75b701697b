"""Readers for user-supplied ("bring your own") classifier files.

The paper-era classifiers (HSEmotion, POSTER++, DAN, DDAMFN, EmoNeXt, Residual Masking Network,
ARBEx) cannot be downloaded by the pipeline; researchers bring their files. Each reader here turns
such a file into a ``torch.nn.Module`` in eval mode that takes normalised NCHW float32 input and
returns raw outputs, so it plugs into :class:`facesym.classifiers.base.Classifier` like the
built-in readers:

* :func:`load_onnx` — an ONNX export, run by onnxruntime (:class:`OnnxModule`);
* :func:`load_torchscript` — a TorchScript archive (``torch.jit.save``);
* :func:`load_factory_state_dict` — a plain state dict plus a ``"package.module:callable"``
  that builds the network from the user's own code (weights read with
  ``torch.load(weights_only=True)``, never unrestricted unpickling).

:func:`check_user_file` gives the error a researcher sees when a file is missing or differs from
the declared sha256; :func:`load_entry` reads a whole template entry of
``facesym/data/zoo_byo_templates.yaml`` (or a study's own ``zoo:`` entry).
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "BYO_FORMATS",
    "OnnxModule",
    "OutputAdapter",
    "adapt_output",
    "check_entry",
    "check_user_file",
    "file_sha256",
    "load_entry",
    "load_factory_state_dict",
    "load_onnx",
    "load_torchscript",
]

BYO_FORMATS = ("onnx", "torchscript", "factory")
# Keys every template entry must carry (``input`` needs the INPUT_KEYS too).
ENTRY_KEYS = ("format", "weights", "input", "labels", "output")
INPUT_KEYS = ("size", "colour", "mean", "std")
# Top-level checkpoint keys that commonly wrap the state dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "network", "net")
_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}


# ----------------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_user_file(path: str | Path, what: str, entry: str | None = None,
                    sha256: str | None = None) -> Path:
    """Check a user-supplied file exists (and matches ``sha256`` if given); return its path.

    ``what`` says what to supply (e.g. "the ONNX export of HSEmotion enet_b0_8_best_afew"),
    ``entry`` names the zoo entry it belongs to. A missing file raises FileNotFoundError naming
    the file, the entry and what to supply; a checksum mismatch raises ValueError naming the
    file, the expected and the found sha256.
    """
    p = Path(path).expanduser()
    owner = f"zoo entry {entry}" if entry else "no zoo entry given"
    if not p.is_file():
        problem = "is a directory, not a file" if p.is_dir() else "not found"
        raise FileNotFoundError(
            f"classifier file {problem}: {p}\n"
            f"  supply {what} ({owner}): put the file there or set weights.path of "
            f"{entry or 'the entry'} under zoo: in your study config (a relative path is "
            f"taken from the working directory, where snakemake runs: {Path.cwd()})")
    if sha256 is not None and not isinstance(sha256, str):
        raise ValueError(
            f"weights.sha256 of {owner} must be a quoted string of 64 hex digits, got "
            f"{type(sha256).__name__} {sha256!r} (YAML reads an unquoted all-digit value as a "
            f"number: write sha256: \"<digits>\")")
    if sha256:
        found = file_sha256(p)
        if found != sha256.strip().lower():
            raise ValueError(
                f"sha256 mismatch for {p} ({owner}):\n  expected {sha256.strip().lower()}\n"
                f"  found    {found}\n  supply {what}, or update weights.sha256 if this file "
                f"is the one you mean to use")
    return p


# ----------------------------------------------------------------------------- outputs


class OutputAdapter(torch.nn.Module):
    """Wraps a module whose forward returns a tuple/dict or extra columns.

    ``index`` picks one element of a tuple/list (int) or dict (str) output; ``columns``
    ``(start, stop)`` keeps those columns of the (N, K) result, e.g. the 8 emotion logits of a
    multi-task model that also outputs valence and arousal.
    """

    def __init__(self, module: torch.nn.Module, index: int | str | None = None,
                 columns: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.inner = module
        self.index = index
        self.columns = None if columns is None else (int(columns[0]), int(columns[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.index is not None:
            out = out[self.index]
        elif isinstance(out, tuple | list | Mapping):
            raise TypeError(f"the module returned a {type(out).__name__} of {len(out)} "
                            f"outputs; set output_index to pick the logits")
        if self.columns is not None:
            out = out[:, self.columns[0]:self.columns[1]]
        return out

    def extra_repr(self) -> str:
        return f"index={self.index!r}, columns={self.columns!r}"


def adapt_output(module: torch.nn.Module, index: int | str | None = None,
                 columns: Sequence[int] | None = None) -> torch.nn.Module:
    """``module`` itself, or wrapped in an :class:`OutputAdapter` when index/columns are set."""
    if index is None and columns is None:
        return module
    if columns is not None and len(columns) != 2:
        raise ValueError(f"output columns must be [start, stop], got {list(columns)}")
    cols = None if columns is None else (int(columns[0]), int(columns[1]))
    return OutputAdapter(module, index=index, columns=cols).eval()


# ----------------------------------------------------------------------------- ONNX


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading ONNX classifiers needs onnxruntime: pip install onnxruntime "
            "(or pip install 'facesym[onnx]')") from err
    return onnxruntime


def _dim(d: Any) -> int | None:
    """A declared ONNX dimension as int, or None when symbolic/unknown."""
    return d if isinstance(d, int) and d > 0 else None


class OnnxModule(torch.nn.Module):
    """An onnxruntime InferenceSession behind the ``torch.nn.Module`` interface.

    forward(x) runs the session on ``x`` (N, C, H, W) and returns the chosen output as a float32
    tensor on x's device. A model with a fixed batch of 1 is run once per sample; a model with a
    dynamic batch (or a fixed batch equal to N) in one call. The session uses
    ``torch.get_num_threads()`` intra-op threads (read when the session is created) unless
    ``intra_op_threads`` is given. ``layout="nhwc"`` feeds models exported with channels last
    (e.g. via tf2onnx); the module still takes NCHW input.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 output_name: str | None = None, layout: str = "nchw",
                 intra_op_threads: int | None = None) -> None:
        super().__init__()
        ort = _import_onnxruntime()
        if layout not in ("nchw", "nhwc"):
            raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
        self.path = Path(path)
        self.layout = layout
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads or torch.get_num_threads())
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(self.path), sess_options=opts,
            providers=list(providers) if providers else ["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: the model has {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); only single-input "
                             f"image classifiers are supported")
        inp = inputs[0]
        if inp.type not in _ONNX_DTYPES:
            raise ValueError(f"{self.path}: input {inp.name!r} has type {inp.type}; "
                             f"supported: {', '.join(_ONNX_DTYPES)}")
        if len(inp.shape) != 4:
            raise ValueError(f"{self.path}: input {inp.name!r} has shape {inp.shape}; "
                             f"expected a 4-d image batch")
        self.input_name: str = inp.name
        self.declared_shape: list = list(inp.shape)
        self._np_dtype = _ONNX_DTYPES[inp.type]
        names = [o.name for o in self.session.get_outputs()]
        if output_name is not None and output_name not in names:
            raise ValueError(f"{self.path}: no output named {output_name!r}; "
                             f"outputs: {', '.join(names)}")
        self.output_name: str = output_name if output_name is not None else names[0]
        self.fixed_batch: int | None = _dim(inp.shape[0])

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared (N, C, H, W) of the network input (None = dynamic), in NCHW order."""
        dims = tuple(_dim(d) for d in self.declared_shape)
        return dims if self.layout == "nchw" else (dims[0], dims[3], dims[1], dims[2])

    @property
    def intra_op_threads(self) -> int:
        """Intra-op thread count of the session."""
        return self.session.get_session_options().intra_op_num_threads

    def _validate(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"{self.path.name}: expected NCHW input (4-d), got shape "
                             f"{tuple(x.shape)}")
        want = self.input_shape
        for axis, what in ((1, "channel count"), (2, "height"), (3, "width")):
            if want[axis] is not None and want[axis] != x.shape[axis]:
                declared = ", ".join("?" if d is None else str(d) for d in want[1:])
                raise ValueError(
                    f"{self.path.name}: input {what} {x.shape[axis]} does not match the "
                    f"model's declared input (N, C, H, W) = (N, {declared}); "
                    f"got {tuple(x.shape)}")
        if self.fixed_batch not in (None, 1) and x.shape[0] != self.fixed_batch:
            raise ValueError(f"{self.path.name}: the model has a fixed batch of "
                             f"{self.fixed_batch}; got a batch of {x.shape[0]}")

    def _run(self, a: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: a})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._validate(x)
        t = x.detach().to("cpu")
        if self.layout == "nhwc":
            t = t.permute(0, 2, 3, 1)
        a = np.ascontiguousarray(t.numpy(), dtype=self._np_dtype)
        if self.fixed_batch == 1 and a.shape[0] != 1:
            if a.shape[0] == 0:  # run once on a blank sample to learn the output shape
                out = self._run(np.zeros((1, *a.shape[1:]), dtype=a.dtype))[:0]
            else:
                out = np.concatenate([self._run(a[i:i + 1]) for i in range(a.shape[0])])
        else:
            out = self._run(a)
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    def extra_repr(self) -> str:
        return (f"path={str(self.path)!r}, input={self.input_name}{self.declared_shape}, "
                f"output={self.output_name!r}, layout={self.layout!r}")


def load_onnx(path: str | Path, providers: Sequence[str] | None = None,
              output_name: str | None = None, layout: str = "nchw") -> OnnxModule:
    """Read an ONNX classifier into an :class:`OnnxModule` (eval mode); see its docstring."""
    return OnnxModule(path, providers=providers, output_name=output_name, layout=layout).eval()


# ----------------------------------------------------------------------------- TorchScript


def load_torchscript(path: str | Path) -> torch.nn.Module:
    """Read a TorchScript archive (``torch.jit.save``) onto the CPU, in eval mode."""
    try:
        with warnings.catch_warnings():  # deprecated in recent torch, still readable
            warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated",
                                    DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path}: not a readable TorchScript archive ({err}). A file written with "
            f"torch.save(model.state_dict()) is a state dict: use format: factory") from err
    return module.eval()


# ----------------------------------------------------------------------------- state dicts


def _resolve_factory(factory: str) -> Callable[..., Any]:
    """Import ``"package.module:callable"`` (the attribute may be dotted: ``mod:Class.build``)."""
    mod_name, sep, attr = factory.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"factory must look like 'package.module:callable', got {factory!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as err:
        raise ImportError(f"factory {factory!r}: cannot import module {mod_name!r} ({err}); "
                          f"put the code that defines the network on PYTHONPATH") from err
    owner = mod_name
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise AttributeError(f"factory {factory!r}: {owner!r} has no attribute "
                                 f"{part!r}") from err
        owner = f"{owner}.{part}"
    if not callable(obj):
        raise TypeError(f"factory {factory!r} is not callable")
    return obj


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def _unwrap(obj: Any, path: Path, key: str | None) -> Mapping[str, torch.Tensor]:
    """The state dict inside a checkpoint: ``obj[key]``, or the first common wrapper key."""
    if key is not None:
        for part in key.split("/"):
            if not isinstance(obj, Mapping) or part not in obj:
                have = list(obj) if isinstance(obj, Mapping) else type(obj).__name__
                raise KeyError(f"{path}: no key {part!r} in the checkpoint (state_dict_key "
                               f"{key!r}); top-level keys: {have}")
            obj = obj[part]
    else:
        for _ in range(3):  # e.g. {"state_dict": {...}} or {"checkpoint": {"model": {...}}}
            if _is_state_dict(obj) or not isinstance(obj, Mapping):
                break
            found = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if found is None:
                break
            obj = obj[found]
    if not _is_state_dict(obj):
        if isinstance(obj, Mapping):
            bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:10]
            raise ValueError(f"{path}: not a state dict; non-tensor entries {bad}. Set "
                             f"state_dict_key to the key that holds the weights")
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return obj


def _clean_keys(sd: Mapping[str, torch.Tensor], path: Path, key_prefix: str | None,
                strip_prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    out = dict(sd)
    if key_prefix:
        out = {k[len(key_prefix):]: v for k, v in out.items() if k.startswith(key_prefix)}
        if not out:
            raise ValueError(f"{path}: no key starts with key_prefix {key_prefix!r}")
    for prefix in strip_prefixes:
        while prefix and out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def _listing(keys: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, … ({len(keys)} in all)" if len(keys) > limit else shown


def load_factory_state_dict(path: str | Path, factory: str, kwargs: dict | None = None, *,
                            state_dict_key: str | None = None, key_prefix: str | None = None,
                            strip_prefixes: Sequence[str] = ("module.",),
                            output_index: int | str | None = None) -> torch.nn.Module:
    """Build a network with ``factory(**kwargs)`` and load the state dict at ``path`` strictly.

    ``factory`` is ``"package.module:callable"`` from the user's own code (imported with
    importlib). The file is read with ``torch.load(weights_only=True)``. The state dict is
    ``ckpt[state_dict_key]`` when the key is given ("a/b" descends nested dicts), else the
    first of ``WRAPPER_KEYS`` present, else the file itself. ``key_prefix`` keeps only keys
    with that prefix (and drops it, e.g. ``"ema_model."``); each of ``strip_prefixes`` is
    removed when every key carries it (``"module."`` from DataParallel). Missing or unexpected
    keys raise ValueError listing them. ``output_index`` picks the logits from a network that
    returns a tuple (see :class:`OutputAdapter`).
    """
    p = Path(path)
    build = _resolve_factory(factory)
    try:
        module = build(**(kwargs or {}))
    except Exception as err:
        raise RuntimeError(f"factory {factory!r} failed with kwargs {kwargs or {}}: "
                           f"{type(err).__name__}: {err}") from err
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"factory {factory!r} returned a {type(module).__name__}, "
                        f"not a torch.nn.Module")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{p}: cannot be read with torch.load(weights_only=True): it holds Python objects "
            f"besides tensors (training state, custom classes). In the environment that wrote "
            f"it, save the weights alone, e.g. torch.save(ckpt['state_dict'], 'weights.pth').\n"
            f"  {str(err).splitlines()[0]}") from err
    sd = _clean_keys(_unwrap(ckpt, p, state_dict_key), p, key_prefix, strip_prefixes)
    try:
        result = module.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches are raised even when strict=False
        raise ValueError(f"{p}: state dict does not fit {factory!r}: {err}") from err
    if result.missing_keys or result.unexpected_keys:
        lines = [f"{p}: state dict does not match the network built by {factory!r}"]
        if result.missing_keys:
            lines.append(f"  missing keys (in the network, not the file): "
                         f"{_listing(result.missing_keys)}")
        if result.unexpected_keys:
            lines.append(f"  unexpected keys (in the file, not the network): "
                         f"{_listing(result.unexpected_keys)}")
        raise ValueError("\n".join(lines))
    return adapt_output(module.eval(), index=output_index)


# ----------------------------------------------------------------------------- entries


def check_entry(name: str, entry: Mapping) -> None:
    """Raise ValueError if a BYO zoo entry lacks a required key or has an unknown format."""
    missing = [k for k in ENTRY_KEYS if k not in entry]
    inp = entry.get("input")
    if isinstance(inp, Mapping):
        missing += [f"input.{k}" for k in INPUT_KEYS if k not in inp]
    w = entry.get("weights")
    if isinstance(w, Mapping) and "path" not in w:
        missing.append("weights.path")
    if entry.get("format") == "factory" and "factory" not in entry:
        missing.append("factory")
    if missing:
        raise ValueError(f"zoo entry {name}: missing {', '.join(missing)}")
    if entry["format"] not in BYO_FORMATS:
        raise ValueError(f"zoo entry {name}: format {entry['format']!r} is not one of "
                         f"{', '.join(BYO_FORMATS)}")


def load_entry(name: str, entry: Mapping, base_dir: str | Path | None = None) -> torch.nn.Module:
    """Check and read the user file of a BYO zoo entry into a module (eval mode).

    Relative ``weights.path`` values resolve against ``base_dir`` (default: the working
    directory, where snakemake runs). Optional entry keys: ``supply`` (what to supply, for
    the missing-file message),
    ``output_name``/``layout`` (onnx), ``factory_kwargs``/``state_dict_key``/``key_prefix``
    (factory), ``output_index``/``output_columns`` (any format).
    """
    check_entry(name, entry)
    w = entry["weights"]
    path = Path(w["path"]).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()) / path
    what = entry.get("supply") or f"the {entry['format']} file of {name}"
    path = check_user_file(path, what, name, w.get("sha256"))
    fmt = entry["format"]
    if fmt == "onnx":
        module: torch.nn.Module = load_onnx(path, output_name=entry.get("output_name"),
                                            layout=entry.get("layout", "nchw"))
        size = int(entry["input"]["size"])
        _, _, h, w_ = module.input_shape
        if (h is not None and h != size) or (w_ is not None and w_ != size):
            raise ValueError(f"zoo entry {name}: input.size {size} but {path.name} declares "
                             f"{h}×{w_} input")
    elif fmt == "torchscript":
        module = load_torchscript(path)
    else:
        module = load_factory_state_dict(path, entry["factory"], entry.get("factory_kwargs"),
                                         state_dict_key=entry.get("state_dict_key"),
                                         key_prefix=entry.get("key_prefix"))
    return adapt_output(module, index=entry.get("output_index"),
                        columns=entry.get("output_columns"))
