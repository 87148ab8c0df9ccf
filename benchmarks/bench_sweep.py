"""Sweep-runner benchmark: the cost of going through the runner and the store, per point.

Part 1 (overhead). One experiment point that takes about a second (Hayou Fig. 1, width 1,
depths 5/50/500, ``samples`` calibrated here), for ``--points`` seeds, timed as interleaved
pairs so that the machine's drift hits both sides:

- **direct**: ``experiment.run`` + ``statistics`` + ``claims`` in this process (the baseline);
- **runner, inline**: ``run_sweep`` with the in-process executor: planning, locking, the
  heartbeat, netCDF + parquet + manifest written atomically, provenance;

then ``--points`` more seeds through one local worker process (what ``deeplimit sweep``
uses), against their direct compute time: the difference is the worker start-up (once per
sweep) plus the per-point overhead.

Part 2 (throughput). A 100-point sweep (Fig. 1 at smoke scale, 100 seeds) on the local
executor with 1 and with 2 workers, into a fresh store each time; then the same sweep again,
which must skip every point.

    python benchmarks/bench_sweep.py [--points 5] [--target-s 1.0] [--sweep-points 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from deeplimit.executors import InlineExecutor, LocalExecutor
from deeplimit.experiments.registry import get_experiment
from deeplimit.runner import run_sweep
from deeplimit.sweeps import Point

NAME = "hayou-fig1"


def _spec(samples: int, seed: int, scale: str = "fast"):
    experiment = get_experiment(NAME)
    base = experiment.fast if scale == "fast" else experiment.smoke
    return base(samples=samples, seed=seed) if samples else base(seed=seed)


def _direct(samples: int, seed: int, scale: str = "fast") -> float:
    experiment = get_experiment(NAME)
    spec = _spec(samples, seed, scale)
    start = time.perf_counter()
    dataset = experiment.run(spec, None)
    experiment.statistics(dataset)
    experiment.claims(dataset)
    return time.perf_counter() - start


def _calibrate(target_s: float) -> int:
    samples = 2000
    _direct(samples, 10_000)  # warm-up: imports, kernels
    while True:
        wall = statistics.median(_direct(samples, 10_001 + i) for i in range(3))
        if wall >= 0.25 * target_s or samples > 10_000_000:
            break
        samples *= 4
    samples = max(100, int(samples * target_s / wall))  # then once more at about the target
    wall = statistics.median(_direct(samples, 10_004 + i) for i in range(3))
    return max(100, int(samples * target_s / wall))


def _sweep(points, executor) -> tuple[float, object]:
    """Wall time of ``points`` into a fresh store, checking that a re-run skips them all."""
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        result = run_sweep(points, Path(store), executor, poll_s=0.01)
        wall = time.perf_counter() - start
        assert result.complete and len(result.computed) == len(points), result
        again = run_sweep(points, Path(store), InlineExecutor())
        assert len(again.skipped) == len(points) and not again.computed, again
    return wall, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10, help="points (overhead part)")
    parser.add_argument("--target-s", type=float, default=1.0, help="seconds per point")
    parser.add_argument("--sweep-points", type=int, default=100, help="points of part 2")
    parser.add_argument("--repeats", type=int, default=2, help="best of, for each timing")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    samples = _calibrate(args.target_s)
    direct, inline, ratios = [], [], []
    with tempfile.TemporaryDirectory() as store:
        for seed in range(args.points):  # interleaved pairs: the machine's drift hits both
            direct.append(_direct(samples, seed))
            point = Point.of(NAME, _spec(samples, seed))
            start = time.perf_counter()
            run_sweep([point], Path(store), InlineExecutor())
            inline.append(time.perf_counter() - start)
            ratios.append(inline[-1] / direct[-1] - 1.0)
    seeds = range(args.points, 2 * args.points)
    points = [Point.of(NAME, _spec(samples, s)) for s in seeds]
    local = _sweep(points, LocalExecutor(1))[0]
    compute = sum(_direct(samples, s) for s in seeds)
    med = statistics.median
    print(f"\nPart 1: {NAME}, depths 5/50/500, {samples} networks per depth")
    print(
        f"direct (run + statistics + claims): {med(direct):.3f} s/point (median of {len(direct)})"
    )
    print(f"runner, inline:                     {med(inline):.3f} s/point")
    print(
        f"runner overhead per point: median {med(ratios):+.1%} "
        f"(pairs: {', '.join(f'{r:+.0%}' for r in ratios)}), "
        f"{med(i - d for i, d in zip(inline, direct, strict=True)) * 1e3:+.0f} ms"
    )
    print(
        f"runner, local x1, {len(points)} points: {local:.2f} s against {compute:.2f} s of "
        f"direct compute: {local - compute:+.2f} s per sweep (worker start-up once, then "
        f"the per-point overhead)"
    )

    smoke = [Point.of(NAME, _spec(0, s, "smoke")) for s in range(args.sweep_points)]
    one_point = statistics.median(
        _direct(0, s, "smoke") for s in range(args.sweep_points, args.sweep_points + 5)
    )
    print(
        f"\nPart 2: {len(smoke)}-point sweep of {NAME} at smoke scale "
        f"(direct: {one_point:.3f} s/point, {one_point * len(smoke):.1f} s in all)"
    )
    print(f"{'executor':<18}{'wall s':>10}{'s/point':>10}{'speed-up':>10}")
    base = None
    for workers in (1, 2):
        wall = min(_sweep(smoke, LocalExecutor(workers))[0] for _ in range(args.repeats))
        base = base or wall
        print(
            f"{'local x' + str(workers):<18}{wall:>10.1f}{wall / len(smoke):>10.3f}"
            f"{base / wall:>10.2f}"
        )
    with tempfile.TemporaryDirectory() as store:
        run_sweep(smoke, Path(store), InlineExecutor())
        start = time.perf_counter()
        again = run_sweep(smoke, Path(store), LocalExecutor(1))
        print(
            f"re-run, all {len(again.skipped)} points stored: "
            f"{time.perf_counter() - start:.2f} s (nothing computed)"
        )


if __name__ == "__main__":
    main()
