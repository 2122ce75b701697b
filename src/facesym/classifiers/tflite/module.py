"""The torch engine: :class:`TFLiteModule` runs a parsed TFLite subgraph in PyTorch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from facesym.classifiers.tflite.builder import GraphBuilder
from facesym.classifiers.tflite.ops import SUPPORTED_OPS, Softmax, Step
from facesym.classifiers.tflite.reader import TFLiteGraph


def check_graph(graph: TFLiteGraph) -> None:
    """Refuse graphs this engine cannot run: no inputs/outputs, unknown ops, non-float input."""
    tensors = graph.tensors
    if len(graph.inputs) < 1 or len(graph.outputs) < 1:
        raise ValueError("TFLite subgraph declares no inputs or outputs")
    unsupported = sorted({op.name for op in graph.operators} - SUPPORTED_OPS)
    if unsupported:
        raise ValueError(f"unsupported TFLite op(s): {', '.join(unsupported)}")
    for i in graph.inputs:
        if tensors[i].type_name != "FLOAT32":
            raise ValueError(
                f"input {tensors[i].name!r} is {tensors[i].type_name}; only float32 "
                "activations (float or hybrid models) are supported"
            )


def release_plan(steps: Sequence[Step], keep: Sequence[int]) -> list[list[int]]:
    """For each step, the runtime tensors last used by it (freed after it), except ``keep``."""
    last_use: dict[int, int] = {}
    for k, step in enumerate(steps):
        for i in step.inputs:
            last_use[i] = k
    release: list[list[int]] = [[] for _ in steps]
    for i, k in last_use.items():
        if i not in keep:
            release[k].append(i)
    return release


class TFLiteModule(nn.Module):
    """A TFLite subgraph executed in PyTorch (float32, inference only).

    See :mod:`facesym.classifiers.tflite` for the conventions. Attributes: ``graph`` (the
    parsed :class:`TFLiteGraph`), ``input_shape_hw``, ``input_channels``,
    ``output_activation`` (``"softmax"`` or ``None``), ``op_names``, ``hybrid_layers``
    (number of layers with 8-bit weights), ``emulate_hybrid``, ``engine`` (``"torch"``) and
    ``kernels`` (``"hybrid-emulated"`` or ``"float"``).
    """

    engine = "torch"

    def __init__(self, graph: TFLiteGraph, emulate_hybrid: bool = False) -> None:
        super().__init__()
        self.graph = graph
        check_graph(graph)
        builder = GraphBuilder(graph)
        steps = builder.build()
        self._bind_outputs(steps)
        for o in self._outputs:
            if builder.is_const(o):
                raise ValueError(f"graph output {graph.tensors[o].name!r} is a constant")
        self.steps = nn.ModuleList(steps)
        self._inputs = list(graph.inputs)
        self._release = release_plan(steps, self._outputs)
        self._describe_input()
        self.op_names = graph.op_names
        self.hybrid_layers = sum(1 for s in steps if getattr(s, "hybrid", None) is not None)
        self.emulate_hybrid = emulate_hybrid
        self.eval()

    def _bind_outputs(self, steps: list[Step]) -> None:
        """Pick the graph outputs; a final SOFTMAX giving the only output is returned as its
        (``beta``-scaled) input, i.e. logits (removes that step from ``steps``)."""
        graph = self.graph
        self.output_activation: str | None = None
        self._logit_scale = 1.0
        if (
            len(graph.outputs) == 1
            and steps
            and isinstance(steps[-1], Softmax)
            and steps[-1].output == graph.outputs[0]
        ):
            last = steps.pop()
            self.output_activation = "softmax"
            self._logit_scale = last.beta
            self._outputs = [last.inputs[0]]
        else:
            self._outputs = list(graph.outputs)

    def _describe_input(self) -> None:
        """Set ``input_shape_hw`` and ``input_channels`` from the first input tensor."""
        first = self.graph.tensors[self._inputs[0]]
        if len(first.shape) == 4:
            self.input_shape_hw: tuple[int, int] | None = (first.shape[1], first.shape[2])
            self.input_channels: int | None = first.shape[3]
        else:
            self.input_shape_hw = None
            self.input_channels = first.shape[-1] if first.shape else None

    @property
    def kernels(self) -> str:
        """Which arithmetic the hybrid layers use: ``"hybrid-emulated"`` or ``"float"``."""
        return "hybrid-emulated" if self._emulate_hybrid else "float"

    @property
    def engine_info(self) -> dict[str, str | int]:
        """What runs the model, for provenance: engine, kernels, engine version, threads."""
        return {"engine": self.engine, "kernels": self.kernels,
                "engine_version": torch.__version__, "threads": torch.get_num_threads()}

    @property
    def emulate_hybrid(self) -> bool:
        """Whether hybrid layers reproduce TFLite's on-the-fly int8 activation quantisation."""
        return self._emulate_hybrid

    @emulate_hybrid.setter
    def emulate_hybrid(self, value: bool) -> None:
        value = bool(value)
        if value:
            for s in self.steps:
                hyb = getattr(s, "hybrid", None)
                if hyb is not None and (
                    hyb.per_channel or getattr(s, "groups", 1) != 1 or getattr(s, "asymmetric", 0)
                ):
                    raise ValueError(
                        f"{s.op_name} #{s.op_index}: emulate_hybrid supports per-tensor hybrid "
                        "CONV_2D / FULLY_CONNECTED weights with symmetric input quantisation only"
                    )
        self._emulate_hybrid = value
        for s in self.steps:
            if hasattr(s, "emulate"):
                s.emulate = value

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the graph on float32 inputs (rank-4 as NCHW); see the module docstring."""
        if len(xs) != len(self._inputs):
            raise ValueError(f"expected {len(self._inputs)} input(s), got {len(xs)}")
        return self._execute(dict(zip(self._inputs, xs, strict=True)), release=True)

    def tensor_index(self, name: str) -> int:
        """Index of the tensor called ``name`` in the TFLite subgraph."""
        for t in self.graph.tensors:
            if t.name == name:
                return t.index
        raise KeyError(f"no tensor named {name!r}")

    def run_from(
        self, feeds: Mapping[int | str, torch.Tensor]
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the part of the graph downstream of intermediate tensors given in ``feeds``.

        ``feeds`` maps tensor names or indices to float32 values (rank-4 as NCHW). Every op
        whose inputs are all known runs, in graph order; the result is what :meth:`forward`
        returns. Raises :class:`ValueError` when the feeds do not determine the output.
        """
        values = {(k if isinstance(k, int) else self.tensor_index(k)): v for k, v in feeds.items()}
        return self._execute(values, release=False)

    def _execute(
        self, values: dict[int, torch.Tensor], release: bool
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        for i, x in values.items():
            if x.dtype != torch.float32:
                name = self.graph.tensors[i].name
                raise TypeError(f"tensor {name!r} must be float32, got {x.dtype}")
        for step, drop in zip(self.steps, self._release, strict=True):
            if step.output in values or not all(i in values for i in step.inputs):
                continue
            values[step.output] = step(*(values[i] for i in step.inputs))
            if release:
                for i in drop:
                    values.pop(i, None)
        missing = [self.graph.tensors[o].name for o in self._outputs if o not in values]
        if missing:
            raise ValueError(f"the given tensors do not determine output(s) {missing}")
        outs = [values[o] for o in self._outputs]
        if self.output_activation == "softmax" and self._logit_scale != 1.0:
            outs = [o * self._logit_scale for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)
