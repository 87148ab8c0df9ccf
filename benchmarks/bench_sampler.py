"""Throughput of the random-ResNet samplers, against a plain NumPy loop measured in the same run.

Prints coordinate-steps per second (samples x width x depth / seconds) of

* ``law``: deeplimit's exact-in-law sampler (Lemma 6: O(n) per layer and network),
* ``weights``: deeplimit's explicit-weights reference sampler (O(n^2), batched over networks),
* ``numpy``: the way papers' scripts do it, a Python loop over networks and layers drawing
  ``W_l`` with NumPy,

for widths 4 and 64, and their ratios to the NumPy baseline; then the cost of streaming the
observables (log-growth and collapse at every layer, active counts, quasi-GBM drift) out of the
exact-in-law sampler, as a ratio to sampling alone (target: at most 2x). Usage:

    python benchmarks/bench_sampler.py [--device cuda] [--dtype float32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import deeplimit as dl

# (samples, depth) per sampler, sized so each measurement takes about a second on a laptop CPU
SIZES = {
    "law": {4: (20_000, 200), 64: (10_000, 100)},
    "weights": {4: (20_000, 100), 64: (500, 40)},
    "numpy": {4: (100, 200), 64: (40, 100)},
}


def numpy_loop(width: int, depth: int, samples: int, seed: int = 0) -> np.ndarray:
    """Reference: explicit Gaussian weights, one network and one layer at a time (ReLU)."""
    rng = np.random.default_rng(seed)
    y0 = np.linspace(-1.0, 1.0, width) + 0.5
    out = np.empty((samples, width))
    for s in range(samples):
        y = y0.copy()
        for _ in range(depth):
            w = rng.normal(0.0, 1.0 / np.sqrt(width), size=(width, width))
            y = y + w @ np.maximum(y, 0.0) / np.sqrt(depth)
        out[s] = y
    return out


def measure(kind: str, width: int, device: str, dtype: torch.dtype, repeat: int) -> float:
    samples, depth = SIZES[kind][width]
    y0 = torch.linspace(-1.0, 1.0, width, dtype=torch.float64) + 0.5
    best = float("inf")
    for trial in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        if kind == "numpy":
            numpy_loop(width, depth, samples, seed=trial)
        else:
            dl.sample_resnet(
                width,
                depth,
                "relu",
                samples=samples,
                y0=y0,
                method=kind,
                seed=trial,
                device=device,
                dtype=dtype,
            )
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return samples * width * depth / best


OBSERVABLES = ("log_growth", "collapse", "active", "quasi_gbm")


def observables_ratio(
    width: int, device: str, dtype: torch.dtype, repeat: int
) -> tuple[float, float]:
    """Seconds of sampling alone and with every streamed observable (law sampler, ReLU)."""
    samples, depth = SIZES["law"][width]
    y0 = torch.linspace(-1.0, 1.0, width, dtype=torch.float64) + 0.5
    kwargs = dict(samples=samples, y0=y0, device=device, dtype=dtype)
    timings = []
    for call in (
        lambda seed: dl.sample_resnet(width, depth, "relu", seed=seed, **kwargs),
        lambda seed: dl.observe_resnet(
            width, depth, "relu", seed=seed, observables=OBSERVABLES, layers="all", **kwargs
        ),
    ):
        best = float("inf")
        for trial in range(repeat):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            call(trial)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        timings.append(best)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sample counts")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.scale != 1.0:
        for sizes in SIZES.values():
            for width, (samples, depth) in sizes.items():
                sizes[width] = (max(1, int(samples * args.scale)), depth)
    dl.sample_resnet(4, 2, "relu", samples=10, y0=[1.0] * 4, device=args.device)  # warm up
    print(
        f"deeplimit {dl.__version__}, torch {torch.__version__}, device {args.device}, "
        f"dtype {args.dtype}, {torch.get_num_threads()} CPU threads"
    )
    print(f"{'width':>5} {'sampler':>8} {'coord-steps/s':>14} {'vs numpy':>9}")
    for width in (4, 64):
        baseline = measure("numpy", width, "cpu", torch.float64, args.repeat)
        for kind in ("law", "weights", "numpy"):
            rate = (
                baseline
                if kind == "numpy"
                else measure(kind, width, args.device, dtype, args.repeat)
            )
            print(f"{width:>5} {kind:>8} {rate:>14.3e} {rate / baseline:>8.1f}x")
    print()
    print(f"{'width':>5} {'sampling s':>11} {'+observables s':>15} {'ratio':>6}  (target <= 2x)")
    for width in (4, 64):
        alone, observed = observables_ratio(width, args.device, dtype, args.repeat)
        print(f"{width:>5} {alone:>11.3f} {observed:>15.3f} {observed / alone:>5.2f}x")


if __name__ == "__main__":
    main()
