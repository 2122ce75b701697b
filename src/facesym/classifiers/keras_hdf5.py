"""Keras 2 HDF5 full-model files (``model.save("x.hdf5")``) executed as PyTorch modules.

:func:`load_keras_hdf5` reads the ``model_config`` JSON and the ``model_weights`` group with
h5py (no Keras, no TensorFlow) and returns a :class:`KerasGraphModule` that runs the Keras layer
graph in PyTorch. It was written for the FER2013 XCEPTION expression classifiers
(oarriaga/face_classification, the ``fer`` package), whose graphs use InputLayer, Conv2D,
SeparableConv2D, BatchNormalization, Activation, MaxPooling2D, Add and GlobalAveragePooling2D.

Conventions:

* Tensors are NCHW inside the module (Keras is NHWC); layers whose result depends on the layout
  (Flatten, Dense on 4-D input, Concatenate, BatchNormalization axis) translate accordingly.
* ``'same'`` padding follows TensorFlow: total padding ``max((ceil(n/s)-1)*s + k_eff - n, 0)``,
  of which ``total // 2`` goes top/left and the rest bottom/right. For even inputs with stride 2
  this is asymmetric, which ``torch.nn.Conv2d(padding=...)`` cannot express.
* Average pooling with ``'same'`` padding divides by the number of real (unpadded) inputs,
  max pooling pads with ``-inf``; both as in TensorFlow.
* ``forward`` returns the *pre-activation* output of a final softmax (an ``Activation('softmax')``
  layer, or a Conv/Dense layer with ``activation='softmax'``); ``output_activation`` then says
  ``"softmax"``. A model that does not end in softmax returns its final output unchanged and has
  ``output_activation = None``.
* Everything is float32, inference only: Dropout is the identity, BatchNormalization uses the
  stored moving statistics and the epsilon from the layer config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import nn

from facesym.classifiers.keras_layers import (
    CONV_CLASSES,
    SUPPORTED_LAYERS,
    Layer,
    as_str,
    build_layer,
    check_supported,
)

__all__ = ["KerasGraphModule", "load_keras_hdf5", "SUPPORTED_LAYERS"]

# --------------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------------

_Ref = tuple[str, int]  # (layer name, node index): one call of a layer, one output tensor


@dataclass(frozen=True)
class _Call:
    layer: str
    node: int
    inputs: tuple[_Ref, ...]


def _tensor_refs(obj: Any) -> list[tuple[str, int, int]]:
    """(layer, node, tensor) references in a Keras 3 ``inbound_nodes`` args structure."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            hist = obj["config"]["keras_history"]
            return [(str(hist[0]), int(hist[1]), int(hist[2]))]
        return [r for v in obj.values() for r in _tensor_refs(v)]
    if isinstance(obj, list | tuple):
        return [r for v in obj for r in _tensor_refs(v)]
    return []


def _parse_inbound(layer: str, node: Any) -> tuple[_Ref, ...]:
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        refs = _tensor_refs(node.get("args", []))
    else:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        refs = [(str(r[0]), int(r[1]), int(r[2])) for r in node]
    out = []
    for src, node_index, tensor_index in refs:
        if tensor_index != 0:
            raise ValueError(f"layer {layer!r}: multi-output inbound layer {src!r} not supported")
        out.append((src, node_index))
    return tuple(out)


def _endpoint(spec: Any, what: str) -> _Ref:
    if spec and isinstance(spec[0], str):  # Keras 3 may store a single endpoint unnested
        spec = [spec]
    if len(spec) != 1:
        raise ValueError(f"models with {len(spec)} {what} are not supported (need exactly 1)")
    name, node, tensor = spec[0][0], int(spec[0][1]), int(spec[0][2])
    if tensor != 0:
        raise ValueError(f"{what}: multi-output layer {name!r} not supported")
    return (str(name), node)


def _input_shape(cfg: dict) -> list[Any] | None:
    for key in ("batch_input_shape", "batch_shape"):
        if cfg.get(key) is not None:
            return list(cfg[key])
    return None


def _graph_from_config(
    model_cfg: dict,
) -> tuple[list[dict], dict[_Ref, _Call], str, list[Any], _Ref]:
    """Normalise Sequential / functional configs to (layers, calls, input name, shape, output)."""
    cls = model_cfg.get("class_name")
    body = model_cfg.get("config")
    if cls == "Sequential":
        layers = list(body if isinstance(body, list) else body["layers"])
        if not layers:
            raise ValueError("empty Sequential model")
        if layers[0]["class_name"] == "InputLayer":
            input_name = layers[0]["config"]["name"]
            shape = _input_shape(layers[0]["config"])
            layers = layers[1:]
        else:
            input_name = "__input__"
            shape = _input_shape(layers[0]["config"])
        calls: dict[_Ref, _Call] = {}
        prev: _Ref = (input_name, 0)
        all_layers = []
        for layer in layers:
            name = layer["config"]["name"]
            calls[(name, 0)] = _Call(name, 0, (prev,))
            prev = (name, 0)
            all_layers.append({**layer, "name": name})
        if shape is None:
            raise ValueError("Sequential model without an input shape")
        return all_layers, calls, input_name, shape, prev

    if cls not in ("Model", "Functional"):
        raise ValueError(f"unsupported model class {cls!r} (need Sequential or Model/Functional)")
    layers = [
        {**layer, "name": layer.get("name", layer["config"]["name"])} for layer in body["layers"]
    ]
    input_ref = _endpoint(body["input_layers"], "inputs")
    output_ref = _endpoint(body["output_layers"], "outputs")
    calls = {}
    shape = None
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            if layer["name"] == input_ref[0]:
                shape = _input_shape(layer["config"])
            continue
        for k, node in enumerate(layer.get("inbound_nodes", [])):
            calls[(layer["name"], k)] = _Call(layer["name"], k, _parse_inbound(layer["name"], node))
    if shape is None:
        raise ValueError(f"input layer {input_ref[0]!r} has no input shape")
    return layers, calls, input_ref[0], shape, output_ref


def _topological(calls: dict[_Ref, _Call], input_ref: _Ref, output: _Ref) -> list[_Call]:
    """The calls needed for ``output``, dependencies first (iterative DFS)."""
    order: list[_Call] = []
    done: set[_Ref] = {input_ref}
    active: set[_Ref] = set()
    stack: list[tuple[_Ref, bool]] = [(output, False)]
    while stack:
        ref, expanded = stack.pop()
        if ref in done:
            continue
        if expanded:
            active.discard(ref)
            done.add(ref)
            order.append(calls[ref])
            continue
        if ref not in calls:
            raise ValueError(f"graph refers to unknown layer call {ref[0]!r} (node {ref[1]})")
        if ref in active:
            raise ValueError(f"cycle in the layer graph at {ref[0]!r}")
        active.add(ref)
        stack.append((ref, True))
        stack.extend((dep, False) for dep in calls[ref].inputs if dep not in done)
    return order


class KerasGraphModule(nn.Module):
    """A Keras functional/Sequential graph executed in PyTorch (NCHW, float32, inference).

    Attributes: ``input_shape_hw`` ((H, W) from the Keras input layer, or None when the model
    accepts any size), ``input_channels``, ``output_activation`` ("softmax" when ``forward``
    returns the logits feeding a final softmax, else None), ``layer_types`` ((layer name, Keras
    class name) pairs in config order) and ``keras_version`` (as recorded in the file).
    """

    def __init__(
        self,
        layers: dict[str, Layer],
        steps: list[tuple[str, str, tuple[str, ...], bool]],
        input_key: str,
        output_key: str,
        input_shape_hw: tuple[int, int] | None,
        input_channels: int,
        output_activation: str | None,
        layer_types: tuple[tuple[str, str], ...],
        keras_version: str | None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self._steps = steps  # (module key, output key, input keys, skip activation)
        self._input_key = input_key
        self._output_key = output_key
        self.input_shape_hw = input_shape_hw
        self.input_channels = input_channels
        self.output_activation = output_activation
        self.layer_types = layer_types
        self.keras_version = keras_version
        last_use: dict[str, int] = {}
        for i, (_, _, inputs, _) in enumerate(steps):
            for key in inputs:
                last_use[key] = i
        self._free_after = [
            tuple(k for k in dict.fromkeys(inputs) if last_use[k] == i and k != output_key)
            for i, (_, _, inputs, _) in enumerate(steps)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on NCHW input (already normalised); return logits (see class doc)."""
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"expected input of shape (N, {self.input_channels}, H, W), got {tuple(x.shape)}"
            )
        values: dict[str, torch.Tensor] = {self._input_key: x.to(torch.float32)}
        for (key, out, inputs, skip_act), free in zip(self._steps, self._free_after, strict=True):
            module = self.layers[key]
            args = [values[k] for k in inputs]
            values[out] = module.pre_activation(*args) if skip_act else module(*args)
            for k in free:
                del values[k]
        return values[self._output_key]


def _module_key(name: str, used: set[str]) -> str:
    key = name.replace(".", "_") or "layer"
    base, i = key, 1
    while key in used:
        i += 1
        key = f"{base}_{i}"
    used.add(key)
    return key


def load_keras_hdf5(path: str | Path) -> KerasGraphModule:
    """Load a Keras 2 HDF5 full-model file as a :class:`KerasGraphModule` in eval mode.

    Raises ValueError for files without a model config, unsupported layer types (naming the
    layer and its type), channels_first models and graphs with several inputs or outputs.

    >>> import torch
    >>> from facesym.resources import resource_file
    >>> model = load_keras_hdf5(resource_file("fer", "fer/data/emotion_model.hdf5"))
    >>> (model.input_shape_hw, model.input_channels, model.output_activation)
    ((64, 64), 1, 'softmax')
    >>> tuple(model(torch.zeros(2, 1, 64, 64)).shape)
    (2, 7)
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path}: no 'model_config' attribute (weights-only file?)")
        model_cfg = json.loads(as_str(f.attrs["model_config"]))
        keras_version = as_str(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
        weights_root = f.get("model_weights", f)
        layers, calls, input_name, shape, output_ref = _graph_from_config(model_cfg)

        if len(shape) != 4 or shape[3] is None:
            raise ValueError(f"{path}: need an image input (N, H, W, C) with known C, got {shape}")
        hw = (int(shape[1]), int(shape[2])) if None not in shape[1:3] else None
        channels = int(shape[3])

        for layer in layers:  # fail fast, also for layers off the path to the output
            check_supported(layer["class_name"], layer["name"])
        by_name = {layer["name"]: layer for layer in layers}
        input_ref: _Ref = (input_name, 0)
        order = _topological(calls, input_ref, output_ref)

        # A final softmax is stripped so that forward() returns its logits.
        output_activation = None
        out_call = calls.get(output_ref)
        out_key_ref = output_ref
        skip_activation: set[_Ref] = set()
        if out_call is not None:
            out_layer = by_name[out_call.layer]
            act = out_layer["config"].get("activation")
            if act == "softmax" and out_layer["class_name"] == "Activation":
                output_activation = "softmax"
                order = [c for c in order if (c.layer, c.node) != output_ref]
                out_key_ref = out_call.inputs[0]
            elif act == "softmax" and out_layer["class_name"] in CONV_CLASSES:
                output_activation = "softmax"
                skip_activation.add(output_ref)

        modules: dict[str, Layer] = {}
        keys: dict[str, str] = {}
        used: set[str] = set()
        for call in order:
            if call.layer in keys:
                continue
            layer = by_name[call.layer]
            key = _module_key(call.layer, used)
            modules[key] = build_layer(
                layer["class_name"], call.layer, layer["config"], weights_root
            )
            keys[call.layer] = key

    def tkey(ref: _Ref) -> str:
        return f"{ref[0]}:{ref[1]}"

    steps = [
        (
            keys[c.layer],
            tkey((c.layer, c.node)),
            tuple(tkey(r) for r in c.inputs),
            (c.layer, c.node) in skip_activation,
        )
        for c in order
    ]
    module = KerasGraphModule(
        modules,
        steps,
        input_key=tkey(input_ref),
        output_key=tkey(out_key_ref),
        input_shape_hw=hw,
        input_channels=channels,
        output_activation=output_activation,
        layer_types=tuple((layer["name"], layer["class_name"]) for layer in layers),
        keras_version=keras_version,
    )
    return module.eval()
