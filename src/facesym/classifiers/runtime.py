"""How a classifier's network is executed: the zoo entry's ``runtime`` and ``batch_size``.

Every runtime computes the same function (outputs within 1e-5 of the plain torch module,
checked per model by ``tests/test_classifier_runtime.py``); they differ only in speed:

- ``torch``: the module as loaded, NCHW (contiguous) tensors;
- ``torch_channels_last``: the module and its input in NHWC memory (oneDNN's fastest
  convolutions on CPU for most of these models); the default;
- ``torch_compile``: ``torch.compile`` (inductor, C++ codegen) of the channels-last module,
  at a fixed batch (the last batch is padded) so that it compiles once; the compile is paid
  once per job;
- ``onnxruntime``: the module exported to ONNX (TorchScript exporter, opset 17, fixed batch)
  and run by ONNX Runtime's CPU provider on the same number of threads as torch.

Runtimes other than the plain torch ones are CPU-only: on another device the runner falls
back to ``torch_channels_last`` and says so in :attr:`Runner.runtime` (as it does for
``onnxruntime`` when ONNX Runtime is not installed); the provenance then records both the
requested and the actual runtime.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Callable, Mapping

import torch

RUNTIMES = ("torch", "torch_channels_last", "torch_compile", "onnxruntime")
DEFAULT_RUNTIME = "torch_channels_last"


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES`, else ValueError naming the allowed values.

    >>> check_runtime("onnxruntime")
    'onnxruntime'
    >>> check_runtime("tensorrt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: runtime must be one of torch, ..., onnxruntime; got 'tensorrt'
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    return runtime


def _pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` with its first axis padded to ``batch`` by repeating the last row."""
    if x.shape[0] == batch:
        return x
    pad = x[-1:].expand(batch - x.shape[0], *x.shape[1:])
    return torch.cat([x, pad])


class Runner:
    """Callable network input (B, C, s, s) → raw outputs (B, L), executed by one runtime.

    Built lazily by :meth:`facesym.classifiers.base.Classifier.predict`; ``batch`` is the
    fixed batch of the compiled/exported runtimes (smaller inputs are padded up to it, larger
    ones are run in slices of it).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten()).eval()
    >>> x = torch.rand(5, 1, 8, 8)
    >>> runner = Runner(net, "torch", batch=4)
    >>> bool(torch.equal(runner(x), net(x).detach()))
    True
    >>> runner.runtime
    'torch'
    """

    def __init__(self, module: torch.nn.Module, runtime: str, batch: int,
                 device: str | torch.device = "cpu") -> None:
        self.requested = check_runtime(runtime)
        self.batch = int(batch)
        self.device = torch.device(device)
        if self.device.type != "cpu" and runtime in ("torch_compile", "onnxruntime"):
            runtime = DEFAULT_RUNTIME
        if runtime == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
            warnings.warn("runtime onnxruntime requested but onnxruntime is not installed "
                          "(pip install 'facesym[onnx]'); running torch_channels_last",
                          RuntimeWarning, stacklevel=2)
            runtime = DEFAULT_RUNTIME
        self.runtime = runtime
        self.module = module
        self.fmt = (torch.contiguous_format if runtime == "torch"
                    else torch.channels_last)
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.setup_seconds = 0.0

    def _build(self, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        # Outside inference mode: ``.to`` replaces the parameters in place, and parameters made
        # under inference mode would break the caller's module for autograd and tracing.
        with torch.inference_mode(False), torch.no_grad():
            module = self.module.to(device=self.device, memory_format=self.fmt).eval()
        if self.runtime in ("torch", "torch_channels_last"):
            return module
        if self.runtime == "torch_compile":
            compiled = torch.compile(module, dynamic=False)
            return lambda x: compiled(_pad_batch(x, self.batch))[: x.shape[0]]
        return _onnx_runner(module, _pad_batch(example, self.batch))

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs of the network for input ``x`` (any batch size)."""
        x = x.to(self.device).contiguous(memory_format=self.fmt)
        if self._fn is None:
            import time

            start = time.perf_counter()
            self._fn = self._build(x[: self.batch])
            self._fn(x[: self.batch])  # compile / plan now, so setup time is measured
            self.setup_seconds = time.perf_counter() - start
        if self.runtime in ("torch", "torch_channels_last"):
            return self._fn(x)
        return torch.cat([self._fn(x[i:i + self.batch]) for i in range(0, len(x), self.batch)])

    @property
    def info(self) -> dict[str, str | int]:
        """Provenance of the runtime: requested and actual runtime, fixed batch."""
        info: dict[str, str | int] = {"runtime": self.runtime, "runtime_batch": self.batch}
        if self.runtime != self.requested:
            info["runtime_requested"] = self.requested
        if self.runtime == "onnxruntime":
            import onnxruntime

            info["onnxruntime_version"] = onnxruntime.__version__
        return info


def export_onnx(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    """The module as an ONNX model (bytes) at ``example``'s fixed shape.

    Uses the TorchScript exporter (``dynamo=False``): the dynamo exporter needs the
    ``onnxscript`` package, which facesym does not depend on. The batch axis is fixed because
    the ports compute TF "SAME" padding from the input's shape, which the tracer records as
    constants (a dynamic batch axis produced graphs ONNX Runtime rejects).
    """
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example.clone(),), buf, dynamo=False, input_names=["x"],
                          output_names=["y"], opset_version=17, do_constant_folding=True)
    return buf.getvalue()


def _onnx_runner(module: torch.nn.Module, example: torch.Tensor
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(export_onnx(module, example.contiguous()), opts,
                                   providers=["CPUExecutionProvider"])
    batch = example.shape[0]

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(_pad_batch(x, batch).float().cpu().numpy())
        return torch.from_numpy(session.run(None, {"x": arr})[0][: x.shape[0]])

    return run


def entry_options(entry: Mapping) -> dict:
    """The :class:`~facesym.classifiers.base.Classifier` keyword arguments a zoo entry sets:
    ``runtime``, ``batch_size``, ``preprocess`` and ``original``.

    ``runtime`` defaults from the older ``channels_last`` key; a TFLite model running on the
    LiteRT engine (not a torch graph) always runs as ``torch`` (the engine is the runtime).

    >>> entry_options({"format": "keras_hdf5", "runtime": "onnxruntime", "batch_size": 32})
    {'runtime': 'onnxruntime', 'batch_size': 32, 'preprocess': 'facesym', 'original': None}
    >>> entry_options({"format": "tflite", "engine": "litert", "runtime": "onnxruntime"})["runtime"]
    'torch'
    """
    fmt = entry.get("format")
    default = DEFAULT_RUNTIME if entry.get("channels_last", fmt != "tflite") else "torch"
    runtime = check_runtime(str(entry.get("runtime", default)))
    if fmt == "tflite" and entry.get("engine", "torch") != "torch":
        runtime = "torch"
    batch = entry.get("batch_size")
    preprocess = str(entry.get("preprocess", "facesym"))
    return {"runtime": runtime, "batch_size": int(batch) if batch else None,
            "preprocess": preprocess, "original": entry.get("original_preprocess")}


def configure(clf: object, entry: Mapping) -> object:
    """Apply the zoo entry's execution and preprocessing options to a loaded classifier.

    The loader calls this on the :class:`~facesym.classifiers.base.Classifier` it built.
    """
    from facesym.classifiers.base import Classifier
    from facesym.classifiers.original import check_original

    if not isinstance(clf, Classifier):
        raise TypeError("configure() takes a Classifier")
    opts = entry_options(entry)
    if opts["preprocess"] not in ("facesym", "original"):
        raise ValueError(f"classifier {clf.name}: preprocess must be facesym or original; "
                         f"got {opts['preprocess']!r}")
    if opts["preprocess"] == "original":
        check_original(opts["original"], clf.name)
    clf.runtime = opts["runtime"]
    clf.batch_size = opts["batch_size"]
    clf.preprocess_mode = opts["preprocess"]
    clf.original = opts["original"]
    clf.channels_last = opts["runtime"] != "torch"
    clf.reset_runner()
    return clf
