"""Classifier throughput against a compute ceiling measured on this machine, in the same run.

For each zoo classifier: images/s at batch 64 for the network alone (preprocessed input) and for
the whole adapter (crop, resize, normalise, forward, softmax), in the memory format the
adapter uses (channels-last except for the TFLite hybrid emulation). The peer is a ceiling
derived in the same run: the model's FLOPs per image (torch's FlopCounterMode) divided into the
float32
matmul FLOP/s this machine sustains (a 2048² GEMM on the same threads). ratio = measured /
ceiling, i.e. the fraction of peak GEMM throughput the port reaches.

Then facex on both engines at its own input (200x200 grey copied to 3 channels, batch
``--batch``, ``--threads`` threads): the torch port with the zoo's reader options (the hybrid
int8 emulation) and LiteRT (``ai-edge-litert``, default XNNPACK kernel set), their images/s
and the ratio litert / torch. Engines are timed alternately, best of ``--repeats``, so that
load from other processes on a shared machine hits both alike.

    .venv/bin/python bench/classify.py [--batch 64] [--repeats 5] [--threads 2] [names...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from facesym.classifiers.base import preprocess
from facesym.classifiers.tflite import load_tflite
from facesym.classifiers.zoo import is_user_supplied, load_classifier, load_zoo
from facesym.resources import resource_file


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Sustained float32 GEMM FLOP/s (2·n³ per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, repeats)


def model_flops(module: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass per image (convolutions, matmuls) by torch's counter."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(x)
    return counter.get_total_flops() / x.shape[0]


def facex_engines(zoo: dict, batch: int, repeats: int, threads: int) -> None:
    """Print facex's images/s on the torch port and on LiteRT, and their ratio."""
    entry = zoo["facex"]
    path = resource_file(entry["weights"]["resource"], entry["weights"]["file"])
    options = {k: v for k, v in entry.get("reader_options", {}).items() if k != "engine"}
    engines = {"torch": load_tflite(path, engine="torch", **options)}
    try:
        engines["litert"] = load_tflite(path, engine="litert", num_threads=threads)
    except ImportError as err:
        print(f"facex litert engine unavailable: {err}")
    x = torch.from_numpy(np.random.default_rng(1).integers(
        0, 256, size=(batch, 1, 200, 200)).astype(np.float32) / 255).expand(-1, 3, -1, -1)
    x = x.contiguous()
    best = dict.fromkeys(engines, float("inf"))
    with torch.inference_mode():
        for module in engines.values():
            module(x)  # warm-up (LiteRT plans the batch here)
        for _ in range(repeats):
            for name, module in engines.items():
                t = time.perf_counter()
                module(x)
                best[name] = min(best[name], time.perf_counter() - t)
    rate = {name: batch / t for name, t in best.items()}
    print(f"\nfacex engines (200x200 grey as 3 channels, batch {batch}, {threads} threads)")
    for name, module in engines.items():
        info = module.engine_info
        print(f"  {name:<8}{info['kernels']:<17}{rate[name]:>8.1f} img/s")
    if "litert" in rate:
        print(f"  ratio litert / torch: {rate['litert'] / rate['torch']:.2f}")


def main() -> None:
    """Print a throughput table for the chosen classifiers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    zoo = load_zoo()
    # default: every classifier the pipeline can fetch (bring-your-own ones need your files)
    names = args.names or [n for n, e in zoo.items() if not is_user_supplied(e)]
    peak = matmul_flops_per_s()
    print(f"float32 GEMM peak (2048², {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch, 224, 224, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[50.0, 60.0, 170.0, 190.0]], np.float32), (args.batch, 1))
    header = (f"{'classifier':<18}{'MFLOP/img':>10}{'ceiling img/s':>15}{'net img/s':>11}"
              f"{'ratio':>8}{'adapter img/s':>15}")
    print(header)
    print("-" * len(header))
    for name in names:
        try:
            clf = load_classifier(name, zoo)
        except (FileNotFoundError, KeyError, RuntimeError, ValueError) as err:
            print(f"{name:<18}unavailable: {err}")
            continue
        fmt = torch.channels_last if clf.channels_last else torch.contiguous_format
        clf.module.to(memory_format=fmt)
        x = preprocess(images, boxes, clf.spec).contiguous(memory_format=fmt)
        flops = model_flops(clf.module, x)
        ceiling = peak / flops
        net = args.batch / best_time(lambda c=clf, t=x: c.forward(t), args.repeats)
        full = args.batch / best_time(lambda c=clf: c.predict(images, boxes, args.batch),
                                      args.repeats)
        print(f"{name:<18}{flops / 1e6:>10.1f}{ceiling:>15.0f}{net:>11.0f}{net / ceiling:>8.2f}"
              f"{full:>15.0f}")
    if "facex" in zoo and (not args.names or "facex" in args.names):
        facex_engines(zoo, args.batch, args.repeats, args.threads)


if __name__ == "__main__":
    main()
