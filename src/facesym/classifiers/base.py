"""One adapter interface over every classifier: crop → preprocess → forward → canonical labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

CANONICAL_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# Names classifiers use for the canonical labels.
LABEL_SYNONYMS = {
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "scared": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
}
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's RGB→grey


def canonical_index(labels: Sequence[str]) -> np.ndarray:
    """For each native label its canonical index (−1 = label outside the canonical set).

    >>> canonical_index(["angry", "happy", "contempt"]).tolist()
    [0, 3, -1]
    """
    out = []
    for lab in labels:
        canon = LABEL_SYNONYMS.get(lab.lower())
        out.append(CANONICAL_LABELS.index(canon) if canon else -1)
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class InputSpec:
    """How a classifier wants its input: square size, colour, normalisation in pixel units."""

    size: int
    colour: str  # "grey" or "rgb"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    margin: float = 0.2  # crop side = landmark-box side × (1 + margin)
    channels: int = 0  # network input channels (0 = 1 for grey, 3 for rgb)

    @property
    def in_channels(self) -> int:
        """Channels fed to the network (grey may be repeated to 3)."""
        return self.channels or (1 if self.colour == "grey" else 3)


def square_crop_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """Square crop boxes (x0, y0, x1, y1) around landmark boxes, side × (1 + margin)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values * (1 + margin)
    half = (side / 2).unsqueeze(1)
    return torch.cat([centre - half, centre + half], dim=1)


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int,
                supersample: int = 2) -> torch.Tensor:
    """Crop float images (B, C, H, W) to boxes (B, 4) in pixels and resize to size².

    Bilinear sampling at ``supersample``× the output resolution followed by average pooling,
    so downscaling does not alias; outside the image is filled with the edge value.
    """
    b, _, h, w = images.shape
    n = size * supersample
    t = (torch.arange(n, dtype=images.dtype, device=images.device) + 0.5) / n  # (n,)
    x0, y0, x1, y1 = boxes.to(images.dtype).unbind(1)
    px = x0[:, None] + t[None] * (x1 - x0)[:, None]  # pixel coords of sample centres
    py = y0[:, None] + t[None] * (y1 - y0)[:, None]
    gx = px / w * 2 - 1  # align_corners=False normalised coordinates
    gy = py / h * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return F.avg_pool2d(out, supersample) if supersample > 1 else out


def preprocess(images: np.ndarray | torch.Tensor, boxes: np.ndarray | torch.Tensor,
               spec: InputSpec) -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) + face boxes → normalised network input (B, C, s, s).

    >>> import numpy as np
    >>> spec = InputSpec(size=48, colour="grey", mean=(127.5,), std=(127.5,))
    >>> images = np.full((2, 100, 100, 3), 255, dtype=np.uint8)
    >>> boxes = np.array([[20.0, 20.0, 80.0, 80.0]] * 2)
    >>> x = preprocess(images, boxes, spec)
    >>> tuple(x.shape), float(x.min()), float(x.max())
    ((2, 1, 48, 48), 1.0, 1.0)
    """
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float()
    crops = crop_resize(x, square_crop_boxes(torch.as_tensor(boxes).float(), spec.margin),
                        spec.size)
    if spec.colour == "grey":
        wts = torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1)
        crops = (crops * wts).sum(1, keepdim=True)
        if spec.in_channels == 3:
            crops = crops.expand(-1, 3, -1, -1)
    elif spec.colour != "rgb":
        raise ValueError(f"colour must be 'grey' or 'rgb', got {spec.colour!r}")
    # The original engines see integer pixel values after their resize.
    crops = crops.round().clamp(0, 255)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (crops - mean) / std


@dataclass
class Classifier:
    """A loaded expression classifier behind the common interface.

    ``module`` maps the normalised input (B, C, s, s) to raw outputs in ``labels`` order;
    ``output`` says what they are. A tiny hand-made module shows the interface:

    >>> import numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(1, 2))
    >>> spec = InputSpec(size=32, colour="grey", mean=(0.0,), std=(255.0,))
    >>> clf = Classifier("toy", net, spec, labels=("happy", "sad"), output="softmax")
    >>> images = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    >>> boxes = np.array([[8.0, 8.0, 56.0, 56.0]] * 3)
    >>> raw, probs = clf.predict(images, boxes, batch_size=2)
    >>> raw.shape, bool(np.allclose(probs.sum(axis=1), 1.0))
    ((3, 2), True)
    >>> clf.to_canonical(probs).shape  # columns in CANONICAL_LABELS order, missing ones NaN
    (3, 7)
    >>> clf.engine_info["engine"]
    'torch'
    """

    name: str
    module: torch.nn.Module
    spec: InputSpec
    labels: tuple[str, ...]
    output: str  # "softmax" (module gives logits), "probs", or "sigmoid"
    weights_sha256: dict[str, str] = field(default_factory=dict)
    channels_last: bool = True
    runtime: str | None = None  # see facesym.classifiers.runtime; None: from channels_last
    batch_size: int | None = None  # overrides predict()'s batch_size when set
    preprocess_mode: str = "facesym"  # or "original" (the package's own pipeline)
    original: str | None = None  # which original pipeline (facesym.classifiers.original)

    def __post_init__(self) -> None:
        self.canonical = canonical_index(self.labels)
        if self.output not in ("softmax", "probs", "sigmoid"):
            raise ValueError(f"classifier {self.name}: output must be softmax, probs or sigmoid")
        if self.runtime is None:
            self.runtime = "torch_channels_last" if self.channels_last else "torch"
        self._runner = None

    @property
    def has_logits(self) -> bool:
        """Whether the module's raw outputs are logits."""
        return self.output == "softmax"

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network input → (raw outputs, class probabilities) in native label order."""
        return self.activate(self.module(x))

    def activate(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs → (raw outputs, class probabilities) per ``output``."""
        if self.output == "softmax":
            probs = torch.softmax(raw, dim=1)
        elif self.output == "sigmoid":
            scores = torch.sigmoid(raw)
            probs = scores / scores.sum(1, keepdim=True)
        else:
            probs = raw
        return raw, probs

    @property
    def engine_info(self) -> dict[str, str | int]:
        """What runs the network, for provenance: ``engine`` ("torch" or "litert"),
        ``kernels`` (e.g. "float", "hybrid-emulated", "xnnpack"), ``engine_version``, threads."""
        info = getattr(self.module, "engine_info", None)
        if info is not None:
            info = dict(info)
        else:
            info = {"engine": "torch", "kernels": "float", "engine_version": torch.__version__,
                    "threads": torch.get_num_threads()}
        info["runtime"] = self.runtime
        info["preprocess"] = (f"original:{self.original}" if self.preprocess_mode == "original"
                              else "facesym")
        if self._runner is not None:
            info.update(self._runner.info)
        return info

    def reset_runner(self) -> None:
        """Forget the built runtime (after changing ``runtime`` or ``batch_size``)."""
        self._runner = None

    def prepare(self, images: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """Images + face boxes → network input, by facesym's or the package's preprocessing."""
        if self.preprocess_mode == "original":
            from facesym.classifiers.original import original_preprocess

            return original_preprocess(images, boxes, self.original or "", self.spec.size,
                                       mean=self.spec.mean)
        if self.preprocess_mode != "facesym":
            raise ValueError(f"classifier {self.name}: preprocess must be facesym or original")
        return preprocess(images, boxes, self.spec)

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        """Reorder native-label columns (…, L) onto CANONICAL_LABELS (missing ones NaN)."""
        out = np.full((*native.shape[:-1], len(CANONICAL_LABELS)), np.nan, dtype=np.float32)
        keep = self.canonical >= 0
        out[..., self.canonical[keep]] = native[..., keep]
        return out

    def predict(self, images: np.ndarray, boxes: np.ndarray, batch_size: int = 64,
                device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """Images (N, H, W, 3) uint8 and boxes (N, 4) → (raw (N, L), probs (N, L)), native order.

        The network runs on ``runtime`` (facesym.classifiers.runtime; channels-last by
        default: oneDNN's convolutions are 1.5–2.6× faster so on these models, with the same
        results to float round-off) in batches of ``self.batch_size`` or ``batch_size``.
        """
        from facesym.classifiers.runtime import Runner

        batch_size = self.batch_size or batch_size
        runner = self._runner
        if runner is None or runner.device != torch.device(device) or runner.batch != batch_size:
            runner = self._runner = Runner(self.module, self.runtime or "torch", batch_size,
                                           device)
        raws, probs = [], []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                sl = slice(start, start + batch_size)
                raw, p = self.activate(runner(self.prepare(images[sl], boxes[sl])))
                raws.append(raw.float().cpu().numpy())
                probs.append(p.float().cpu().numpy())
        return np.concatenate(raws), np.concatenate(probs)
