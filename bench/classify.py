"""Classifier throughput against a compute ceiling measured on this machine, in the same run.

For each zoo classifier: images/s at batch 64 for the network alone (preprocessed input) and for
the whole adapter (crop, resize, normalise, forward, softmax), in the memory format the
adapter uses (channels-last except for the TFLite hybrid emulation). The peer is a ceiling
derived in the same run: the model's FLOPs per image (torch's FlopCounterMode) divided into the
float32
matmul FLOP/s this machine sustains (a 2048² GEMM on the same threads). ratio = measured /
ceiling, i.e. the fraction of peak GEMM throughput the port reaches.

Per model the execution runtimes of ``facesym.classifiers.runtime`` (torch NCHW, torch channels-
last, ONNX Runtime, and with ``--compile`` torch.compile) are timed alternately, best of
``--repeats``, with their one-off setup time (export / compile) and the largest |Δprob| against
plain torch; the zoo's runtime is marked ``*``, and for each other runtime the job size (images)
above which its setup time pays for itself against the zoo's choice. Where the best runtime
stays under 50 % of the FLOP ceiling, a memory-bound (roofline) bound is printed: bytes moved
per image (every leaf layer's input and output activations plus its weights read once per batch,
float32) divided by this machine's copy bandwidth, measured in the same run (STREAM-like copy of
256 MiB, bytes read + written).

Then facex on both engines at its own input (200x200 grey copied to 3 channels, batch
``--batch``, ``--threads`` threads): the torch port with the zoo's reader options (the hybrid
int8 emulation) and LiteRT (``ai-edge-litert``, default XNNPACK kernel set), their images/s
and the ratio litert / torch. Engines are timed alternately, best of ``--repeats``, so that
load from other processes on a shared machine hits both alike.

    .venv/bin/python bench/classify.py [--batch 64] [--repeats 5] [--threads 2] [--compile]
        [names...]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from facesym.classifiers.base import preprocess
from facesym.classifiers.runtime import Runner
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


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """STREAM-like copy bandwidth in bytes/s (bytes read + bytes written)."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_time(lambda: dst.copy_(src), repeats)


def bytes_per_image(module: torch.nn.Module, x: torch.Tensor) -> float:
    """Bytes one forward pass moves per image: each leaf layer's input and output
    activations, plus its weights (parameters and buffers) read once per batch."""
    total = [0.0]

    def hook(mod: torch.nn.Module, inputs: tuple, output: object) -> None:
        acts = sum(t.numel() * t.element_size() for t in (*inputs, output)
                   if isinstance(t, torch.Tensor))
        weights = sum(t.numel() * t.element_size()
                      for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False)))
        total[0] += acts + weights

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if not any(True for _ in m.children())]
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return total[0] / x.shape[0]


def compare_runtimes(clf, x: torch.Tensor, runtimes: list[str], repeats: int
                     ) -> dict[str, tuple[float, float, float]]:
    """{runtime: (images/s, setup s, max |Δprob| vs torch)}, timed alternately, best of N."""
    with torch.inference_mode():
        _, ref = clf.activate(clf.module.to(memory_format=torch.contiguous_format)(
            x.contiguous()))
    runners, dp = {}, {}
    for rt in runtimes:
        try:
            runner = Runner(clf.module, rt, batch=x.shape[0])
            dp[rt] = float((clf.activate(runner(x))[1] - ref).abs().max())
            runners[rt] = runner
        except Exception as err:  # noqa: BLE001 - an exporter/compiler failure is a result
            print(f"    {rt}: unavailable ({type(err).__name__}: {str(err)[:90]})")
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(repeats):
        for rt, runner in runners.items():
            t = time.perf_counter()
            runner(x)
            best[rt] = min(best[rt], time.perf_counter() - t)
    return {rt: (x.shape[0] / best[rt], runners[rt].setup_seconds, dp[rt]) for rt in runners}


def break_even_line(results: dict[str, tuple[float, float, float]], chosen: str) -> str:
    """Images per job above which a faster runtime's one-off setup pays for itself against the
    zoo's runtime (a job of fewer images is faster on the zoo's choice)."""
    if chosen not in results:
        return ""
    rate0, setup0, _ = results[chosen]
    parts = []
    for rt, (rate, setup, _) in results.items():
        if rt == chosen:
            continue
        gain = 1 / rate0 - 1 / rate  # seconds saved per image
        if gain <= 0:
            parts.append(f"{rt} never pays (slower per image)")
        else:
            parts.append(f"{rt} pays above {max(setup - setup0, 0) / gain:,.0f} images/job")
    return f"{'':<18}vs {chosen}: " + "; ".join(parts)


def facex_engines(zoo: dict, batch: int, repeats: int, threads: int, peak: float) -> None:
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
    flops = model_flops(engines["torch"], x)
    ceiling = peak / flops
    print(f"\nfacex engines (200x200 grey as 3 channels, batch {batch}, {threads} threads); "
          f"{flops / 1e6:.1f} MFLOP/img, FLOP ceiling {ceiling:.0f} img/s")
    for name, module in engines.items():
        info = module.engine_info
        print(f"  {name:<8}{info['kernels']:<17}{rate[name]:>8.1f} img/s"
              f"{rate[name] / ceiling:>7.2f} of the ceiling")
    if "litert" in rate:
        print(f"  ratio litert / torch: {rate['litert'] / rate['torch']:.2f}")


def main() -> None:
    """Print a throughput table for the chosen classifiers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (its compile takes 10-200 s per model)")
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
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth (256 MiB, read + write): {bandwidth / 1e9:.1f} GB/s")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    runtimes = ["torch", "torch_channels_last", "onnxruntime"]
    if args.compile:
        runtimes.append("torch_compile")
    header = (f"{'classifier':<18}{'MFLOP/img':>10}{'ceiling img/s':>15}{'runtime':>21}"
              f"{'net img/s':>11}{'ratio':>7}{'setup s':>9}{'max dp':>9}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        try:
            clf = load_classifier(name, zoo)
        except (FileNotFoundError, KeyError, RuntimeError, ValueError) as err:
            print(f"{name:<18}unavailable: {err}")
            continue
        if zoo[name].get("format") == "tflite":
            continue  # timed on both engines by facex_engines() below
        x = preprocess(images, boxes, clf.spec)
        flops = model_flops(clf.module, x)
        ceiling = peak / flops
        # the TFLite hybrid emulation changes with the summation order: plain torch only
        rts = ["torch"] if zoo[name].get("format") == "tflite" else runtimes
        results = compare_runtimes(clf, x, rts, args.repeats)
        for rt, (rate, setup, dp) in results.items():
            mark = "*" if rt == clf.runtime else " "
            print(f"{name:<18}{flops / 1e6:>10.1f}{ceiling:>15.0f}{rt + mark:>21}{rate:>11.0f}"
                  f"{rate / ceiling:>7.2f}{setup:>9.1f}{dp:>9.1e}")
        best_rt = max(results, key=lambda r: results[r][0])
        print(break_even_line(results, clf.runtime))
        best = results[best_rt][0]
        full = args.batch / best_time(lambda c=clf: c.predict(images, boxes, args.batch),
                                      args.repeats)
        line = (f"{'':<18}best {best_rt}: {best / ceiling:.2f} of the FLOP ceiling; "
                f"adapter (crop+resize+net, zoo runtime) {full:.0f} img/s")
        if best / ceiling < 0.5:
            moved = bytes_per_image(clf.module, x)
            bound = bandwidth / moved
            line += (f"\n{'':<18}memory-bound: {moved / 1e6:.1f} MB/img -> roofline bound "
                     f"{bound:.0f} img/s; best reaches {best / bound:.2f} of it")
        print(line)
        rows.append((name, best_rt, best, ceiling))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if "facex" in zoo and (not args.names or "facex" in args.names):
        facex_engines(zoo, args.batch, args.repeats, args.threads, peak)


if __name__ == "__main__":
    main()
