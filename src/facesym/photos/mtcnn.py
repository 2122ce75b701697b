"""MTCNN face detector (P-, R-, O-net cascade) in plain PyTorch, weights from facenet-pytorch.

The ``facenet-pytorch`` package imports torchvision at import time (for its NMS and image
transforms), and PyPI's torchvision does not load beside this project's torch, so the package
is never imported: its three state dicts are fetched and checksummed as the resource
``facenet_pytorch`` and loaded here into the same layer layout. Facts of that layout: PReLU
after every convolution and hidden dense layer, ceil-mode max pooling, and the R/O-nets
flatten their feature maps as (batch, W, H, C) before the dense layers. Inputs are RGB in
(v − 127.5) / 128. Coordinates are in the renderer's convention (pixel centres at i + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RESOURCE = "facenet_pytorch"
WEIGHTS = {name: f"facenet_pytorch/data/{name}.pt" for name in ("pnet", "rnet", "onet")}


def _conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k), nn.PReLU(cout)]


class _Net(nn.Module):
    """A cascade stage: convolutional trunk, then dense (R/O) or 1×1 conv (P) heads."""

    def __init__(self, layers: dict[str, nn.Module], heads: tuple[str, ...], dense: bool):
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.order = list(layers)
        self.heads = heads
        self.dense = dense

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        trunk = [n for n in self.order if n not in self.heads]
        for name in trunk:
            if self.dense and name.startswith("dense"):
                x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1) if x.ndim == 4 else x
            x = getattr(self, name)(x)
        return [getattr(self, h)(x) for h in self.heads]


def _pnet() -> _Net:
    c1, c2, c3 = _conv(3, 10, 3), _conv(10, 16, 3), _conv(16, 32, 3)
    return _Net({"conv1": c1[0], "prelu1": c1[1], "pool1": nn.MaxPool2d(2, 2, ceil_mode=True),
                 "conv2": c2[0], "prelu2": c2[1], "conv3": c3[0], "prelu3": c3[1],
                 "conv4_1": nn.Conv2d(32, 2, 1), "conv4_2": nn.Conv2d(32, 4, 1)},
                heads=("conv4_1", "conv4_2"), dense=False)


def _rnet() -> _Net:
    c1, c2, c3 = _conv(3, 28, 3), _conv(28, 48, 3), _conv(48, 64, 2)
    return _Net({"conv1": c1[0], "prelu1": c1[1], "pool1": nn.MaxPool2d(3, 2, ceil_mode=True),
                 "conv2": c2[0], "prelu2": c2[1], "pool2": nn.MaxPool2d(3, 2, ceil_mode=True),
                 "conv3": c3[0], "prelu3": c3[1], "dense4": nn.Linear(576, 128),
                 "prelu4": nn.PReLU(128), "dense5_1": nn.Linear(128, 2),
                 "dense5_2": nn.Linear(128, 4)},
                heads=("dense5_1", "dense5_2"), dense=True)


def _onet() -> _Net:
    c1, c2, c3, c4 = _conv(3, 32, 3), _conv(32, 64, 3), _conv(64, 64, 3), _conv(64, 128, 2)
    return _Net({"conv1": c1[0], "prelu1": c1[1], "pool1": nn.MaxPool2d(3, 2, ceil_mode=True),
                 "conv2": c2[0], "prelu2": c2[1], "pool2": nn.MaxPool2d(3, 2, ceil_mode=True),
                 "conv3": c3[0], "prelu3": c3[1], "pool3": nn.MaxPool2d(2, 2, ceil_mode=True),
                 "conv4": c4[0], "prelu4": c4[1], "dense5": nn.Linear(1152, 256),
                 "prelu5": nn.PReLU(256), "dense6_1": nn.Linear(256, 2),
                 "dense6_2": nn.Linear(256, 4), "dense6_3": nn.Linear(256, 10)},
                heads=("dense6_1", "dense6_2", "dense6_3"), dense=True)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union"
        ) -> np.ndarray:
    """Greedy non-maximum suppression; overlap = IoU (``union``) or over the smaller (``min``)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x0, y0, x1, y1 = boxes.T
    area = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]).max(1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    wh = np.tile(boxes[:, 2:4] - boxes[:, :2], 2)
    return boxes[:, :4] + reg * wh


def _crops(image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Crops of one normalised image (1, 3, H, W) at boxes (K, 4) → (K, 3, size, size).

    All crops are sampled by one grid_sample call on a tall grid (no copies of the image);
    bilinear at 2× then 2×2 averaging, zeros outside the image as in the original MTCNN.
    """
    _, _, h, w = image.shape
    k, n = len(boxes), size * 2
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    b = torch.as_tensor(boxes, dtype=torch.float32)
    px = b[:, 0:1] + t[None] * (b[:, 2:3] - b[:, 0:1])
    py = b[:, 1:2] + t[None] * (b[:, 3:4] - b[:, 1:2])
    gx = (px / w * 2 - 1)[:, None, :].expand(k, n, n)
    gy = (py / h * 2 - 1)[:, :, None].expand(k, n, n)
    grid = torch.stack([gx, gy], -1).reshape(1, k * n, n, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(3, k, n, n).permute(1, 0, 2, 3)
    return F.avg_pool2d(out, 2)


@dataclass
class MTCNNResult:
    """Faces found by MTCNN: boxes (K, 4) x0, y0, x1, y1; scores (K,); points (K, 5, 2)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray


class MTCNN:
    """The three-stage MTCNN cascade on CPU (or another torch device)."""

    def __init__(self, weights_dir: str | Path, min_face: float = 20.0,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, device: str = "cpu") -> None:
        self.nets = {}
        for name, make in (("pnet", _pnet), ("rnet", _rnet), ("onet", _onet)):
            net = make()
            state = torch.load(Path(weights_dir) / WEIGHTS[name], map_location="cpu",
                               weights_only=True)
            net.load_state_dict(state)
            self.nets[name] = net.to(device).eval()
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor
        self.device = device

    @classmethod
    def from_resources(cls, cache_dir: str | Path | None = None,
                       mirror: str | Path | None = None, **kwargs: object) -> MTCNN:
        """Fetch (or reuse) and verify the facenet-pytorch weights, then build the detector."""
        from facesym.resources import default_cache_dir, fetch_resource

        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        fetch_resource(RESOURCE, cache, mirror)
        return cls(cache / RESOURCE, **kwargs)  # type: ignore[arg-type]

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> MTCNNResult:
        """Faces in one RGB uint8 image (H, W, 3)."""
        img = torch.from_numpy(np.array(image, dtype=np.uint8)).to(self.device)
        x = (img.permute(2, 0, 1)[None].float() - 127.5) * 0.0078125
        h, w = image.shape[:2]
        empty = MTCNNResult(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
        # Stage 1: the P-net slides over an image pyramid (12-px windows, stride 2).
        cands = []
        scale = 12.0 / self.min_face
        while min(h, w) * scale >= 12:
            sh, sw = int(h * scale + 1), int(w * scale + 1)
            logits, reg = self.nets["pnet"](F.interpolate(x, size=(sh, sw), mode="area"))
            prob = torch.softmax(logits, 1)[0, 1].cpu().numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys):
                pos = np.stack([xs, ys], 1).astype(np.float64)
                boxes = np.concatenate([2 * pos / scale, (2 * pos + 12) / scale], 1)
                r = reg[0].cpu().numpy()[:, ys, xs].T
                score = prob[ys, xs]
                keep = nms(boxes, score, 0.5)
                cands.append(np.concatenate([boxes, score[:, None], r], 1)[keep])
            scale *= self.factor
        if not cands:
            return empty
        c = np.concatenate(cands)
        c = c[nms(c[:, :4], c[:, 4], 0.7)]
        boxes = _square(_regress(c[:, :4], c[:, 5:9]))
        # Stage 2: R-net refines 24×24 crops.
        logits, reg = self.nets["rnet"](_crops(x, boxes, 24))
        score = torch.softmax(logits, 1)[:, 1].cpu().numpy()
        ok = score > self.thresholds[1]
        boxes, score, reg = boxes[ok], score[ok], reg.cpu().numpy()[ok]
        if not len(boxes):
            return empty
        keep = nms(boxes, score, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        # Stage 3: O-net scores 48×48 crops, regresses boxes and five points.
        logits, reg, pts = self.nets["onet"](_crops(x, boxes, 48))
        score = torch.softmax(logits, 1)[:, 1].cpu().numpy()
        ok = score > self.thresholds[2]
        boxes, score = boxes[ok], score[ok]
        reg, pts = reg.cpu().numpy()[ok], pts.cpu().numpy()[ok]
        if not len(boxes):
            return empty
        wh = boxes[:, 2:4] - boxes[:, :2]
        points = np.stack([boxes[:, None, 0] + pts[:, :5] * wh[:, None, 0],
                           boxes[:, None, 1] + pts[:, 5:] * wh[:, None, 1]], -1)
        boxes = _regress(boxes, reg)
        keep = nms(boxes, score, 0.7, mode="min")
        return MTCNNResult(boxes[keep], score[keep], points[keep])
