"""Two costs of the TrainingProblem API (issue 9), printed as ratios:

1. ``record_movement``: the default training path records no unit movements; asking for them
   costs one copy of the parameters and a pass over them per step. Times ``problem.train`` at
   ``L=64, M=256, D=64``, 8 seeds, ``K=10`` (tanh) with and without it.
2. The default limit of a linear problem: ``problem.limit()`` takes the span solver, whose cost
   does not depend on ``D``; the fixed-D matrix ODE (``Exact(solver="matrix")``) costs
   ``O(D^3)`` per depth node and step. Times both at ``D = 64, 256`` (``K = 10``, 128 RK4
   intervals, with the discretization estimate) and prints their largest difference.

    python benchmarks/bench_training_problem.py [--repeats 3] [--threads 1] [--quick]

Each time is the best of ``--repeats`` (wall clock, after one warm-up call).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from deeplimit.training import Exact, TrainingProblem


def best_of(repeats: int, call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def movement(repeats: int, quick: bool) -> None:
    depth, width, dim, seeds = (16, 64, 16, 4) if quick else (64, 256, 64, 8)
    problem = TrainingProblem(dim, steps=10)
    problem.train(2, 4, seeds=1)  # warm-up
    plain, _ = best_of(repeats, lambda: problem.train(depth, width, seeds=seeds))
    moved, _ = best_of(
        repeats, lambda: problem.train(depth, width, seeds=seeds, record_movement=True)
    )
    print(f"train L={depth} M={width} D={dim} seeds={seeds} K=10 (tanh, float64)")
    print(f"  default (no movement)   {plain:8.3f} s")
    print(f"  record_movement=True    {moved:8.3f} s   ratio {moved / plain:5.2f}x")


def limit(repeats: int, quick: bool) -> None:
    print("limit of a linear problem, K=10, 128 RK4 intervals, float64")
    for dim in (16, 32) if quick else (64, 256):
        problem = TrainingProblem(dim, activation="identity", steps=10)
        span_time, span = best_of(repeats, problem.limit)
        matrix_time, matrix = best_of(1, partial(problem.limit, Exact(solver="matrix")))
        difference = max(
            float((getattr(span, name) - getattr(matrix, name)).abs().max())
            for name in ("outputs", "embeddings", "states")
        )
        print(
            f"  D={dim:4d}: span {span_time:7.3f} s   matrix {matrix_time:8.2f} s   ratio "
            f"{matrix_time / span_time:6.1f}x   max |difference| {difference:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    movement(args.repeats, args.quick)
    limit(args.repeats, args.quick)


if __name__ == "__main__":
    main()
