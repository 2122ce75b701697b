"""The LiteRT engine: the ``.tflite`` file run by ``ai-edge-litert``, TFLite's own runtime.

:class:`LiteRTModule` wraps a LiteRT ``Interpreter`` behind the same ``nn.Module`` interface as
the torch port (:class:`~facesym.classifiers.tflite.module.TFLiteModule`): NCHW float32 in,
logits out when the graph ends in SOFTMAX. The logits are LiteRT's own: the file's output is
redirected to the softmax input (:func:`~facesym.classifiers.tflite.reader.with_outputs`), so
nothing is recomputed outside the interpreter.

Kernel sets (``kernels``), which disagree by up to ~0.14 in probability on hybrid models because
each hybrid layer quantises its float input on the fly and float round-off flips roundings:

* ``"xnnpack"``: LiteRT's default resolver, float ops in the XNNPACK delegate, hybrid layers in
  the builtin kernels (what ``Interpreter(model_path)`` gives a facex user);
* ``"builtin"``: builtin kernels only (no default delegate);
* ``"reference"``: the reference kernels (slow).

The input tensor is resized to the batch it is given (re-planned only when the batch changes).
Outputs are deterministic for a given input, batch size, thread count and CPU.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facesym.classifiers.tflite.module import check_graph
from facesym.classifiers.tflite.reader import read_tflite, with_outputs

KERNEL_SETS = ("xnnpack", "builtin", "reference")


def litert_available() -> bool:
    """Whether ``ai-edge-litert`` imports in this environment."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def litert_version() -> str:
    """Installed ``ai-edge-litert`` version ("unknown" if its metadata is missing)."""
    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover - imported without metadata
        return "unknown"


def _resolver(kernels: str) -> Any:
    from ai_edge_litert.interpreter import OpResolverType

    names = {
        "xnnpack": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": OpResolverType.BUILTIN_REF,
    }
    if kernels not in names:
        raise ValueError(f"unknown LiteRT kernel set {kernels!r}; allowed: {', '.join(names)}")
    return names[kernels]


class LiteRTModule(nn.Module):
    """A ``.tflite`` model executed by LiteRT, with the torch port's interface.

    Attributes: ``graph`` (parsed by :func:`read_tflite`), ``input_shape_hw``,
    ``input_channels``, ``output_activation`` (``"softmax"`` or ``None``), ``op_names``,
    ``engine`` (``"litert"``), ``kernels`` (the kernel set), ``num_threads`` and
    ``engine_version``. Inference only; the interpreter is not thread-safe.
    """

    engine = "litert"

    def __init__(self, source: str | Path | bytes, num_threads: int | None = None,
                 kernels: str = "xnnpack") -> None:
        super().__init__()
        from ai_edge_litert.interpreter import Interpreter

        content = bytes(source) if isinstance(source, bytes | bytearray) else Path(
            source).read_bytes()
        self.graph = read_tflite(content)
        check_graph(self.graph)
        self.kernels = kernels
        self.num_threads = int(num_threads or torch.get_num_threads())
        self.engine_version = litert_version()
        self.op_names = self.graph.op_names
        self._logit_scale = 1.0
        self.output_activation: str | None = None
        softmax = self._final_softmax()
        if softmax is not None:
            self.output_activation = "softmax"
            self._logit_scale = float(softmax.options.get("beta", 1.0))
            content = with_outputs(content, [softmax.inputs[0]])
        self._interpreter = Interpreter(
            model_content=content, num_threads=self.num_threads,
            experimental_op_resolver_type=_resolver(kernels),
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        shape = self.graph.tensors[self.graph.inputs[0]].shape
        self.input_shape_hw = (shape[1], shape[2]) if len(shape) == 4 else None
        self.input_channels = shape[-1] if shape else None
        self._batch: int | None = None
        self.eval()

    def _final_softmax(self) -> Any:
        """The SOFTMAX operator producing the graph's only output, if any."""
        graph = self.graph
        if len(graph.outputs) != 1:
            return None
        for op in graph.operators:
            if op.name == "SOFTMAX" and op.outputs and op.outputs[0] == graph.outputs[0]:
                return op
        return None

    def _plan(self, shape: tuple[int, ...]) -> None:
        if self._batch != shape[0]:
            self._interpreter.resize_tensor_input(self._input, list(shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on NCHW float32 ``x``; returns logits (N, classes) as float32."""
        if x.dtype != torch.float32:
            raise TypeError(f"input must be float32, got {x.dtype}")
        nhwc = x.detach().cpu().permute(0, 2, 3, 1) if x.dim() == 4 else x.detach().cpu()
        data = np.ascontiguousarray(nhwc.numpy())
        self._plan(data.shape)
        self._interpreter.set_tensor(self._input, data)
        self._interpreter.invoke()
        out = torch.from_numpy(self._interpreter.get_tensor(self._output).copy())
        if self._logit_scale != 1.0:
            out = out * self._logit_scale
        return out

    @property
    def engine_info(self) -> dict[str, str | int]:
        """What runs the model, for provenance: engine, kernels, engine version, threads."""
        return {"engine": self.engine, "kernels": self.kernels,
                "engine_version": self.engine_version, "threads": self.num_threads}

    def extra_repr(self) -> str:
        return f"kernels={self.kernels}, num_threads={self.num_threads}"
