"""The ``NetworkV2`` expression classifier of the PyPI package ``facial-emotion-recognition``.

Re-implementation of ``facial_emotion_recognition/networks.py`` (sdist version 0.3.4) for the
checkpoint ``facial_emotion_recognition/model/model.pkl`` shipped in that sdist (a dict whose
``"network"`` entry is the state dict; it also holds the Adam state, ``epochs`` = 50 and
``accuracy`` ≈ 0.957). The package builds ``NetworkV2(in_c=1, nl=32, out_f=7)``::

    x: (N, 1, 48, 48), grey, (v / 255 - 0.5) / 0.5
    conv_1: ReflectionPad2d(1), Conv2d 3x3 s1 (1 -> 32),    BatchNorm2d, ReLU   -> 48x48
    conv_2: ReflectionPad2d(1), Conv2d 3x3 s2 (32 -> 64),   BatchNorm2d, ReLU   -> 24x24
    conv_3: ReflectionPad2d(1), Conv2d 3x3 s2 (64 -> 128),  BatchNorm2d, ReLU   -> 12x12
    conv_4: ReflectionPad2d(1), Conv2d 3x3 s2 (128 -> 256), BatchNorm2d, ReLU   -> 6x6
    flatten NCHW (C, H, W order)                                                -> 9216
    linear: Linear(9216 -> 256), ReLU, Linear(256 -> 7), Sigmoid

No pooling and no dropout; BatchNorm uses the stored running statistics (eps 1e-5).

Here ``forward`` stops before the final ``Sigmoid`` and returns the 7 pre-activation values;
``torch.sigmoid`` of them is what the original module returns (``output_activation``). The
package's ``EmotionRecognition._predict`` then takes ``torch.exp`` of those sigmoid outputs (as
if they were log-probabilities) and reports only the argmax label, so the exp changes nothing
observable. Its preprocessing (torchvision): the MTCNN box is cut from the OpenCV BGR→grey frame
(tight box, no margin, not squared), ``ToPILImage`` → ``Resize((48, 48))`` (PIL bilinear) →
``ToTensor`` (v / 255) → ``Normalize([0.5], [0.5])``; :func:`normalize_networkv2_input` does the
last two steps. Label order (``self.emotions`` in the package): Angry, Disgust, Fear, Happy, Sad,
Surprise, Neutral (FER2013).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "NETWORKV2_LABELS",
    "NetworkV2",
    "StateDictMismatchError",
    "load_networkv2",
    "networkv2_from_state_dict",
    "normalize_networkv2_input",
]

#: Output order of NetworkV2 (the package's ``emotions`` dict, lower-cased).
NETWORKV2_LABELS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)


class StateDictMismatchError(ValueError):
    """A state dict does not fit :class:`NetworkV2` (missing, unexpected or mis-shaped keys)."""


def _conv_stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # Index layout (0 pad, 1 conv, 2 norm, 3 relu) fixes the checkpoint's key names.
    return nn.Sequential(
        nn.ReflectionPad2d(1),
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=0),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class NetworkV2(nn.Module):
    """``facial-emotion-recognition``'s NetworkV2 without its final Sigmoid.

    Input: float32 NCHW ``(N, 1, 48, 48)`` grey, normalised ``(v / 255 - 0.5) / 0.5``
    (see :func:`normalize_networkv2_input`). ``forward`` returns ``(N, 7)`` pre-activation
    values in :data:`NETWORKV2_LABELS` order; ``torch.sigmoid`` gives the original's outputs.
    """

    output_activation: str = "sigmoid"
    input_shape_hw: tuple[int, int] = (48, 48)
    input_channels: int = 1
    labels: tuple[str, ...] = NETWORKV2_LABELS

    def __init__(self, width: int = 32) -> None:
        """Build the layers with ``width`` channels in the first stage (the package uses 32)."""
        super().__init__()
        self.conv_1 = _conv_stage(self.input_channels, width, stride=1)
        self.conv_2 = _conv_stage(width, 2 * width, stride=2)
        self.conv_3 = _conv_stage(2 * width, 4 * width, stride=2)
        self.conv_4 = _conv_stage(4 * width, 8 * width, stride=2)
        h, w = self.input_shape_hw
        n_flat = 8 * width * (h // 8) * (w // 8)  # three stride-2 stages: 48 -> 6
        # Sequential indices 0 and 2 match the checkpoint; the original's Sigmoid (index 3) is
        # left out so that forward returns pre-activation values.
        self.linear = nn.Sequential(
            nn.Linear(n_flat, 256),
            nn.ReLU(),
            nn.Linear(256, len(self.labels)),
        )
        self.checkpoint_info: dict[str, Any] = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened convolutional features ``(N, 9216)`` (NCHW order, as the original)."""
        expected = (self.input_channels, *self.input_shape_hw)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"NetworkV2 expects (N, {expected[0]}, {expected[1]}, {expected[2]}) normalised "
                f"input, got {tuple(x.shape)}"
            )
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation outputs ``(N, 7)``; ``torch.sigmoid`` of them is the original output."""
        return self.linear(self.features(x))


def _check_keys(model: nn.Module, state: Mapping[str, Any]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        raise StateDictMismatchError(
            "state dict does not match NetworkV2 (" + "; ".join(parts) + ")"
        )
    bad = []
    for key, ref in expected.items():
        val = state[key]
        if not isinstance(val, torch.Tensor):
            bad.append(f"{key}: not a tensor ({type(val).__name__})")
        elif tuple(val.shape) != tuple(ref.shape):
            bad.append(f"{key}: shape {tuple(val.shape)}, expected {tuple(ref.shape)}")
    if bad:
        raise StateDictMismatchError("state dict does not match NetworkV2: " + "; ".join(bad))


def networkv2_from_state_dict(state_dict: Mapping[str, Any]) -> NetworkV2:
    """Build :class:`NetworkV2` (float32, eval mode) from a state dict, strictly.

    Raises :class:`StateDictMismatchError` naming every missing or unexpected key, or every
    tensor whose shape differs from the architecture's.
    """
    model = NetworkV2()
    _check_keys(model, state_dict)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def load_networkv2(path: str | Path) -> NetworkV2:
    """Load ``model.pkl`` of ``facial-emotion-recognition`` into :class:`NetworkV2`.

    ``path`` is a ``torch.save`` file holding either the package's checkpoint dict (state dict
    under ``"network"``) or a bare state dict. It is read on the CPU with ``weights_only=True``
    (the package's own ``torch.load`` without ``map_location`` fails on machines without CUDA:
    the stored optimiser state lives on a CUDA device). Returns the model in eval mode, float32;
    ``checkpoint_info`` holds the checkpoint's ``epochs``/``accuracy`` entries when present.

    >>> import torch
    >>> from facesym.resources import resource_file
    >>> net = load_networkv2(resource_file(
    ...     "facial_emotion_recognition", "facial_emotion_recognition/model/model.pkl"))
    >>> tuple(net(torch.zeros(2, 1, 48, 48)).shape)
    (2, 7)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NetworkV2 checkpoint not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, Mapping):
        raise StateDictMismatchError(
            f"{path}: expected a checkpoint dict or state dict, got {type(blob).__name__}"
        )
    state = blob.get("network", blob)
    if not isinstance(state, Mapping):
        raise StateDictMismatchError(
            f"{path}: 'network' entry is a {type(state).__name__}, not a state dict"
        )
    try:
        model = networkv2_from_state_dict(state)
    except StateDictMismatchError as err:
        raise StateDictMismatchError(f"{path}: {err}") from None
    model.checkpoint_info = {
        k: blob[k] for k in ("epochs", "accuracy") if "network" in blob and k in blob
    }
    return model


def normalize_networkv2_input(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) grey uint8 -> float32 NCHW ``(v / 255 - 0.5) / 0.5``, as the package.

    Same float32 operations as torchvision's ``ToTensor`` + ``Normalize([0.5], [0.5])``.
    """
    x = torch.as_tensor(np.asarray(images_uint8))
    if x.ndim != 3:
        raise ValueError(f"expected (N, H, W) grey images, got shape {tuple(x.shape)}")
    x = x.to(torch.float32).div(255)
    return x.sub(0.5).div(0.5).unsqueeze(1).contiguous()
