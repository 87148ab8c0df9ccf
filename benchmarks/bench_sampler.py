"""Throughput of the random-ResNet / SDE samplers against the hardware, measured in one run.

For float32 and float64, widths 1, 4, 16, 64, 256, one input and several inputs, this prints
coordinate-steps per second (samples x inputs x width x depth / seconds, i.e. standard normals
consumed per second) of

* ``deeplimit``: ``sample_resnet(method="law")``, the exact-in-law sampler,
* ``loop``: the hand-written torch loop of the same dtype a researcher writes (issue 13):
  ``z = torch.randn(...)``; ``y.addcmul_(norm(relu(y)), z, value=L^-1/2 n^-1/2)`` for one
  input, and for ``k`` inputs the Cholesky factor of the Gram matrix of ``relu(y)`` times
  ``z`` (``baddbmm_``),
* ``normals``: the machine's rate of drawing standard normals of that dtype into a
  cache-sized buffer (2^15 numbers per thread, one generator per CPU thread, the best of
  ``torch.randn``, NumPy's SFC64 ziggurat and, in float32, deeplimit's compiled copy of
  ``torch.randn``), measured in the same run: the physical limit of
  an exact-in-law sampler, which must draw ``k n`` normals per network and layer,

and the ratios ``deeplimit / loop`` (target >= 1), ``deeplimit / normals`` (target >= 0.8 at
n >= 16, >= 0.6 at n = 4) and ``observe / sample``: the time of ``observe_resnet`` streaming
every observable at every layer over the time of sampling alone (target <= 1.5), beside
``results`` (the bytes its results take) and ``floor``: 1 + the time of writing as many bytes
of memory already mapped on all the threads over the time of sampling, the least
``observe / sample`` any observer returning those results could reach. The
measurements of one row are interleaved and each is the median of ``--repeat`` runs, so that
load from other processes hits all of them alike; each call starts after ``REST`` seconds of
rest (busy by default: ``--rest``), in an order that changes from trial to trial (the
hand-written loop leaves OpenMP threads spinning for milliseconds: measured right after it,
as tables before 2026-12-03 did, the normal rate came out 11 % low, and the percentages of
it about 10 points high). ``--numpy``
adds the older comparison with explicit weights and a plain NumPy loop over networks,
``--issue`` the SDE at issue 13's two sizes.

``--fused`` prints instead the fused engine (``method=Fused(...)``: the law sampler compiled by
``torch.compile``; rows of one input) against the eager ``method="law"`` and against ``torch.randn``
drawing the same count of normals into a buffer on the same device (``--device cuda`` for a
GPU), with the seconds its first call took (compiling). On the CPU its numbers are indicative
only (Inductor's CPU code draws each normal with a scalar Philox). Usage:

    python benchmarks/bench_sampler.py [--quick] [--dtype float32] [--repeat 5] [--issue]
    python benchmarks/bench_sampler.py --widths 1,4 [--dtype float64]
    python benchmarks/bench_sampler.py --issue-only [--repeat 5]
    python benchmarks/bench_sampler.py --fused [--device cuda] [--fused-widths 4,64]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import statistics
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

import deeplimit as dl

try:
    from deeplimit.rng import torch_float32_normals
except ImportError:  # a deeplimit from before 2026-12-03 (a before/after comparison)

    def torch_float32_normals():
        return None


WIDTHS = (1, 4, 16, 64, 256)
SEVERAL = 4  # inputs of the "several inputs" rows
OBSERVABLES_ONE = ("log_growth", "collapse", "active", "quasi_gbm")
OBSERVABLES_SEVERAL = (*OBSERVABLES_ONE, "correlation")
CACHE_NUMBERS = 2**15  # numbers per thread of the normal-rate buffer


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _seconds(call: Callable[[int], object], trial: int, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    call(trial)
    _sync(device)
    return time.perf_counter() - start


# seconds of rest before each timed call: a call that runs torch operations on several threads
# (the hand-written loop) leaves OpenMP threads spinning on the cores for milliseconds after
# it, which slowed whatever ran next (``observe_resnet`` right after the loop: 1.4x its time
# right after ``sample_resnet``)
REST = 0.05
# how to rest: "busy" keeps every core working (threads hashing a small buffer, which lets go
# of the interpreter's lock and touches neither OpenMP nor the caches the samplers use) while
# the OpenMP threads left spinning run out; "sleep" idles, and on this VM a core woken from
# idle ran the next call 10-60 % slower (measured 2026-12-03: 30-45 ms after a sleep, 28 ms
# back to back); "none" runs the calls back to back
REST_MODES = ("busy", "sleep", "none")
_rest_mode = "busy"


def _hash_until(deadline: float) -> None:
    block = bytes(1 << 16)
    while time.perf_counter() < deadline:
        hashlib.sha256(block).digest()


def rest(seconds: float = REST) -> None:
    """Rest ``seconds`` before a timed call, the way ``--rest`` says (``_rest_mode``)."""
    if _rest_mode == "none" or seconds <= 0:
        return
    if _rest_mode == "sleep":
        time.sleep(seconds)
        return
    deadline = time.perf_counter() + seconds
    workers = [
        threading.Thread(target=_hash_until, args=(deadline,))
        for _ in range(max(1, os.cpu_count() or 1) - 1)
    ]
    for worker in workers:
        worker.start()
    _hash_until(deadline)
    for worker in workers:
        worker.join()


def interleaved(calls: dict[str, Callable[[int], object]], repeat: int, device: str):
    """Median seconds of each call, the calls run in turn ``repeat`` times (after a warm-up),
    each after ``REST`` seconds of rest (``rest``) and in an order that changes from trial to trial
    (reversed every other trial), so that no call always follows the same one."""
    for call in calls.values():
        call(-1)
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for trial in range(repeat):
        shift = trial % len(names)
        order = names[shift:] + names[:shift]
        for name in reversed(order) if trial % 2 else order:
            rest()
            times[name].append(_seconds(calls[name], trial, device))
    return {name: statistics.median(values) for name, values in times.items()}, times


def uptime() -> str:
    """The load average of the machine (1, 5, 15 minutes): the rates move with it."""
    try:
        return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "load ?"


def initial_state(width: int, inputs: int) -> torch.Tensor:
    """``inputs`` distinct initial states of width ``width`` with positive and negative parts
    (at width 1, positive: a ReLU path that starts at y <= 0 is collapsed from layer 0, and a
    row of dead paths would time nothing but copies)."""
    if width == 1:
        grid = torch.tensor([0.5], dtype=torch.float64)
    else:
        grid = torch.linspace(-1.0, 1.0, width, dtype=torch.float64) + 0.5
    shifts = torch.linspace(0.0, 1.0, inputs, dtype=torch.float64).unsqueeze(-1)
    return grid + shifts if inputs > 1 else grid.unsqueeze(0)


def hand_loop(
    y0: torch.Tensor, depth: int, samples: int, dtype: torch.dtype, device: str
) -> torch.Tensor:
    """The loop of issue 13, in ``dtype``: what a researcher writes by hand."""
    k, n = y0.shape
    scale = depth**-0.5 / math.sqrt(n)
    y = y0.to(device=device, dtype=dtype).expand(samples, k, n).clone()
    if k == 1:
        y = y.reshape(samples, n)
        for _ in range(depth):
            z = torch.randn(samples, n, dtype=dtype, device=device)
            phi_norm = torch.linalg.vector_norm(torch.relu(y), dim=-1, keepdim=True)
            y.addcmul_(phi_norm, z, value=scale)
        return y
    jitter = torch.finfo(dtype).eps * torch.eye(k, dtype=dtype, device=device)
    for _ in range(depth):
        z = torch.randn(samples, k, n, dtype=dtype, device=device)
        phi = torch.relu(y)
        gram = torch.bmm(phi, phi.transpose(1, 2))
        factor = torch.linalg.cholesky_ex(
            gram + jitter * gram.diagonal(0, 1, 2).sum(-1)[:, None, None]
        )[0]
        y.baddbmm_(factor, z, alpha=scale)
    return y


def _cpus(count: int) -> tuple[int, ...] | None:
    """The CPUs for ``count`` drawing threads, one each, where there are as many as the process
    may use (deeplimit's block threads are spread the same way); None to let the system place
    them (a thread pinned to a CPU busy with another thread would time that)."""
    if count < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    return cpus if len(cpus) == count else None


def normal_drawers(dtype: torch.dtype) -> dict[str, Callable[[int], float]]:
    """Callables ``draw(total)`` that draw ``total`` standard normals of ``dtype`` into
    cache-sized buffers (``CACHE_NUMBERS`` per thread), one generator per thread, and return
    the rate (numbers per second): ``torch.randn``, NumPy's SFC64 ziggurat and, in float32,
    deeplimit's compiled copy of ``torch.randn`` (``rng.torch_float32_normals``: the numbers
    the float32 chain draws), on one thread and on every CPU thread (each on a CPU of its own:
    ``_cpus``)."""
    threads = max(1, torch.get_num_threads())
    numpy_dtype = np.float32 if dtype == torch.float32 else np.float64

    def numpy_worker(index: int, rounds: int) -> None:
        generator = np.random.Generator(np.random.SFC64(index))
        buffer = np.empty(CACHE_NUMBERS, dtype=numpy_dtype)
        for _ in range(rounds):
            generator.standard_normal(out=buffer, dtype=numpy_dtype)

    def torch_worker(index: int, rounds: int) -> None:
        generator = torch.Generator().manual_seed(index)
        buffer = torch.empty(CACHE_NUMBERS, dtype=dtype)
        for _ in range(rounds):
            torch.randn(CACHE_NUMBERS, generator=generator, out=buffer, dtype=dtype)

    def drawer(worker: Callable[[int, int], None], count: int) -> Callable[[int], float]:
        cpus = _cpus(count)

        def pinned(index: int, rounds: int) -> None:
            if cpus:  # each thread on a CPU of its own, as deeplimit's block threads
                os.sched_setaffinity(0, (cpus[index],))
            worker(index, rounds)

        def draw(total: int) -> float:
            rounds = max(1, -(-total // (count * CACHE_NUMBERS)))
            pool = [threading.Thread(target=pinned, args=(i, rounds)) for i in range(count)]
            previous = torch.get_num_threads()
            torch.set_num_threads(1)  # one generator per thread, each operation on its thread
            try:
                start = time.perf_counter()
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
                seconds = time.perf_counter() - start
            finally:
                torch.set_num_threads(previous)
            return count * rounds * CACHE_NUMBERS / seconds

        draw.drawn = lambda total: (
            count * CACHE_NUMBERS * max(1, -(-total // (count * CACHE_NUMBERS)))
        )
        return draw

    fill = torch_float32_normals() if dtype == torch.float32 else None

    def copy_worker(index: int, rounds: int) -> None:
        buffer = torch.empty(CACHE_NUMBERS, dtype=dtype)
        for round_ in range(rounds):  # seeded afresh each time, as the chain's blocks
            fill(index * rounds + round_, buffer.data_ptr(), CACHE_NUMBERS)

    workers = [("torch.randn", torch_worker), ("numpy SFC64", numpy_worker)]
    if fill is not None:
        workers.append(("compiled torch.randn", copy_worker))
    drawers = {}
    for name, worker in workers:
        for count in sorted({1, threads}):
            drawers[f"{name} on {count} thread{'s' if count > 1 else ''}"] = drawer(worker, count)
    return drawers


def normal_rate(dtype: torch.dtype, repeat: int) -> tuple[Callable[[int], float], str]:
    """The fastest way this machine draws normals of ``dtype`` on all its threads, as the
    samplers run (``normal_drawers``, medians of ``repeat`` interleaved runs of 2^22 numbers;
    the one-thread drawers are measured too and printed, but a one-thread drawer picked by a
    noisy measurement would set the limit too low), and its name: every row of the table then
    measures that drawer again, interleaved with the samplers, so that the load of the machine
    at that moment hits the limit and the samplers alike."""
    drawers = normal_drawers(dtype)
    rates: dict[str, list[float]] = {name: [] for name in drawers}
    for _ in range(max(3, repeat)):
        for name, draw in drawers.items():
            rates[name].append(draw(2**22))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        "normal drawers: " + ", ".join(f"{name} {rate:.2e}/s" for name, rate in medians.items()),
        flush=True,
    )
    threads = max(1, torch.get_num_threads())
    suffix = f"on {threads} threads" if threads > 1 else "on 1 thread"
    candidates = [name for name in medians if name.endswith(suffix)] or list(medians)
    best = max(candidates, key=medians.__getitem__)
    return drawers[best], best


def result_bytes(result) -> int:
    """The bytes of the tensors an ``observe_resnet`` result holds."""
    return sum(
        value.numel() * value.element_size()
        for value in result.values.values()
        if isinstance(value, torch.Tensor)
    )


class ResultsWriter:
    """Writes ``size`` bytes of memory already mapped (a buffer kept for the run) on all the
    threads, a part each, as the observers write their results from the block threads: the
    least time any observer that returns results of that size can take beyond sampling."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.threads = max(1, torch.get_num_threads())
        self.buffer = torch.zeros(max(1, size // 4), dtype=torch.float32)
        self.parts = self.buffer.chunk(self.threads)
        self.value = 0.0

    def __call__(self, trial: int) -> None:
        self.value += 1.0
        workers = [
            threading.Thread(target=part.fill_, args=(self.value,)) for part in self.parts[1:]
        ]
        for worker in workers:
            worker.start()
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self.parts[0].fill_(self.value)
        finally:
            torch.set_num_threads(previous)
        for worker in workers:
            worker.join()


def bench_row(width, inputs, dtype, numbers, steps, repeat, device, observe, normals):
    samples = max(1, numbers // (inputs * width))
    depth = max(2, steps // samples // inputs // width)
    y0 = initial_state(width, inputs)
    y0_arg = y0[0] if inputs == 1 else y0
    kwargs = dict(samples=samples, y0=y0_arg, device=device, dtype=dtype)
    # the loop of k > 1 inputs (a batched Cholesky a layer) is slow: a quarter of the layers
    # gives its rate per coordinate-step as well
    loop_depth = depth if inputs == 1 else max(2, depth // 4)
    calls = {
        "deeplimit": lambda t: dl.sample_resnet(width, depth, "relu", seed=t + 1, **kwargs),
        "loop": lambda t: hand_loop(y0, loop_depth, samples, dtype, device),
    }
    if normals is not None:  # the same count of normals as deeplimit draws
        calls["normals"] = lambda t: normals(samples * inputs * width * depth)
    if observe:
        names = OBSERVABLES_ONE if inputs == 1 else OBSERVABLES_SEVERAL
        calls["observe"] = lambda t: dl.observe_resnet(
            width, depth, "relu", seed=t + 1, observables=names, layers="all", **kwargs
        )
        if device == "cpu":  # writing as many bytes as the results take: observing's floor
            calls["results"] = ResultsWriter(result_bytes(calls["observe"](0)))
    medians, _ = interleaved(calls, repeat, device)
    work = samples * inputs * width
    rates = {name: work * depth / seconds for name, seconds in medians.items()}
    rates["loop"] = work * loop_depth / medians["loop"]
    if normals is not None:
        rates["normals"] = normals.drawn(work * depth) / medians["normals"]
    results = calls["results"].size if "results" in calls else 0  # type: ignore[attr-defined]
    return samples, depth, rates, medians, results


def legacy_numpy(repeat: int, device: str, dtype: torch.dtype) -> None:
    """Explicit weights and a plain NumPy loop over networks (the older comparison)."""

    def numpy_loop(width: int, depth: int, samples: int, seed: int) -> np.ndarray:
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

    sizes = {
        "law": {4: (20_000, 200), 64: (10_000, 100)},
        "weights": {4: (20_000, 100), 64: (500, 40)},
        "numpy": {4: (100, 200), 64: (40, 100)},
    }
    print(f"\n{'width':>5} {'sampler':>8} {'coord-steps/s':>14} {'vs numpy':>9}")
    for width in (4, 64):
        y0 = initial_state(width, 1)[0]
        rates = {}
        for kind in ("numpy", "law", "weights"):
            samples, depth = sizes[kind][width]
            if kind == "numpy":
                call = lambda t, w=width, s=samples, d=depth: numpy_loop(w, d, s, max(t, 0))
            else:
                call = lambda t, w=width, s=samples, d=depth, m=kind, y=y0: dl.sample_resnet(
                    w, d, "relu", samples=s, y0=y, method=m, seed=t + 1, device=device, dtype=dtype
                )
            medians, _ = interleaved({kind: call}, repeat, device)
            rates[kind] = samples * width * depth / medians[kind]
            print(
                f"{width:>5} {kind:>8} {rates[kind]:>14.3e} {rates[kind] / rates['numpy']:>8.1f}x"
            )


def _sde_calls(samples: int, width: int, steps: int, dtype: torch.dtype, device: str):
    y0 = torch.ones(1, width, dtype=torch.float64)
    return {
        "sde": lambda t: dl.sample_sde(
            width,
            "relu",
            steps=steps,
            samples=samples,
            y0=y0[0],
            seed=t + 1,
            dtype=dtype,
            device=device,
        ),
        "loop": lambda t: hand_loop(y0, steps, samples, dtype, device),
    }


def issue_table(repeat: int, device: str) -> None:
    """The SDE of issue 13 (dX = n^-1/2 ||relu(X)|| dB, Euler-Maruyama, X_0 = 1) at its two
    sizes: ``sample_sde`` against the hand-written loop, elem-steps per second."""
    print(f"\n{'dtype':>7} {'N':>6} {'n':>4} {'K':>5} {'sample_sde':>10} {'loop':>9} {'ratio':>6}")
    for dtype in (torch.float32, torch.float64):
        for samples, width, steps in ((10_000, 100, 100), (1_000, 10, 1_000)):
            calls = _sde_calls(samples, width, steps, dtype, device)
            medians, _ = interleaved(calls, repeat, device)
            work = samples * width * steps
            name = str(dtype).removeprefix("torch.")
            print(
                f"{name:>7} {samples:>6} {width:>4} {steps:>5} {work / medians['sde']:>10.3e} "
                f"{work / medians['loop']:>9.3e} {medians['loop'] / medians['sde']:>5.2f}x",
                flush=True,
            )


FUSED_LAYERS = 16  # layers per compiled call of the --fused table (depths are multiples)


def device_randn(device: str, dtype: torch.dtype) -> Callable[[int], int]:
    """``draw(total)``: ``total`` standard normals by ``torch.randn`` into a buffer of at most
    2^24 numbers on ``device`` (in rounds); returns the count drawn."""
    buffer = torch.empty(2**20 if device == "cpu" else 2**24, dtype=dtype, device=device)

    def draw(total: int) -> int:
        rounds = max(1, -(-total // buffer.numel()))
        for _ in range(rounds):
            torch.randn(buffer.shape, out=buffer, dtype=dtype, device=device)
        return rounds * buffer.numel()

    return draw


def fused_table(widths, dtypes, numbers, steps, repeat, device) -> None:
    """The fused engine against the eager law sampler and ``torch.randn`` on ``device``,
    coord-steps per second (one input, ReLU, the ResNet of ``sample_resnet``)."""
    print(
        f"\n{'dtype':>7} {'n':>4} {'samples':>8} {'L':>5} {'compile s':>9} {'fused':>10} "
        f"{'eager law':>10} {'randn':>10} {'vs eager':>8} {'vs randn':>8} load"
    )
    engine = dl.Fused(layers_per_call=FUSED_LAYERS)
    for dtype in dtypes:
        randn = device_randn(device, dtype)
        name = str(dtype).removeprefix("torch.")
        for width in widths:
            samples = max(1, numbers // width)
            depth = max(1, steps // samples // width // FUSED_LAYERS) * FUSED_LAYERS
            y0 = initial_state(width, 1)[0]
            kwargs = dict(samples=samples, y0=y0, device=device, dtype=dtype)

            def fused(t, w=width, d=depth, kw=kwargs):
                return dl.sample_resnet(w, d, "relu", seed=t + 1, method=engine, **kw)

            compile_seconds = _seconds(fused, -1, device)  # the first call compiles
            calls = {
                "fused": fused,
                "eager": lambda t, w=width, d=depth, kw=kwargs: dl.sample_resnet(
                    w, d, "relu", seed=t + 1, method="law", **kw
                ),
                "randn": lambda t, total=samples * width * depth, draw=randn: draw(total),
            }
            medians, _ = interleaved(calls, repeat, device)
            work = samples * width * depth
            rates = {key: work / seconds for key, seconds in medians.items()}
            drawn = randn(work)  # the count a run of randn drew (whole buffers)
            rates["randn"] = drawn / medians["randn"]
            print(
                f"{name:>7} {width:>4} {samples:>8} {depth:>5} {compile_seconds:>9.1f} "
                f"{rates['fused']:>10.3e} {rates['eager']:>10.3e} {rates['randn']:>10.3e} "
                f"{rates['fused'] / rates['eager']:>7.2f}x "
                f"{rates['fused'] / rates['randn']:>7.2f}x {uptime()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="only this dtype")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller runs, 3 repeats")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the work per run")
    parser.add_argument("--numbers", type=int, help="normals per layer of a run (2^18)")
    parser.add_argument("--no-observe", action="store_true", help="skip observe_resnet")
    parser.add_argument(
        "--rest", choices=REST_MODES, default="busy", help="how to rest before each timed call"
    )
    parser.add_argument("--numpy", action="store_true", help="also the explicit-weights table")
    parser.add_argument("--issue", action="store_true", help="also issue 13's SDE sizes")
    parser.add_argument("--issue-only", action="store_true", help="only issue 13's SDE sizes")
    parser.add_argument(
        "--fused", action="store_true", help="only the fused engine against eager and randn"
    )
    parser.add_argument("--fused-widths", default="1,4,16,64", help="widths of --fused")
    parser.add_argument(
        "--widths", default=",".join(map(str, WIDTHS)), help="widths of the main table"
    )
    args = parser.parse_args()
    global _rest_mode
    _rest_mode = args.rest
    if args.issue_only:
        repeat = min(args.repeat, 3) if args.quick else args.repeat
        issue_table(repeat, args.device)
        return
    numbers = 2**18  # normals per layer of a run (samples x inputs x width)
    steps = 2**24  # coordinate-steps of a run
    repeat = args.repeat
    if args.quick:
        numbers, steps, repeat = 2**16, 2**21, min(repeat, 3)
    steps = int(steps * args.scale)
    numbers = args.numbers or int(numbers * min(1.0, args.scale)) or 1
    dtypes = [getattr(torch, args.dtype)] if args.dtype else [torch.float32, torch.float64]
    if args.fused:
        widths = [int(width) for width in args.fused_widths.split(",")]
        print(
            f"deeplimit {dl.__version__}, torch {torch.__version__}, device {args.device}, "
            f"{torch.get_num_threads()} CPU threads; fused engine, {FUSED_LAYERS} layers per "
            f"call; {numbers} normals per layer, {steps:.1e} coord-steps per run, "
            f"median of {repeat}"
        )
        fused_table(widths, dtypes, numbers, steps, repeat, args.device)
        return
    print(
        f"deeplimit {dl.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"device {args.device}, {torch.get_num_threads()} CPU threads; "
        f"{numbers} normals per layer, {steps:.1e} coord-steps per run, median of {repeat}, "
        f"rest {_rest_mode}"
    )
    header = (
        f"{'dtype':>7} {'n':>4} {'k':>2} {'samples':>7} {'L':>5} {'deeplimit':>10} "
        f"{'loop':>9} {'normals':>9} {'vs loop':>8} {'vs normals':>10} {'observe/sample':>14} "
        f"{'results':>8} {'floor':>6} load"
    )
    for dtype in dtypes:
        normals, limit_name = normal_rate(dtype, repeat) if args.device == "cpu" else (None, "")
        name = str(dtype).removeprefix("torch.")
        print(f"\n{name}: normals drawn by {limit_name}, measured again in every row ({uptime()})")
        print(header)
        for inputs in (1, SEVERAL):
            for width in [int(width) for width in args.widths.split(",")]:
                samples, depth, rates, medians, results = bench_row(
                    width,
                    inputs,
                    dtype,
                    numbers,
                    steps,
                    repeat,
                    args.device,
                    not args.no_observe,
                    normals,
                )
                limit = rates.get("normals", math.nan)
                observe = (
                    f"{medians['observe'] / medians['deeplimit']:>13.2f}x"
                    if "observe" in medians
                    else f"{'-':>14}"
                )
                # the results' size and the least observe / sample that writing them allows
                if "results" in medians:
                    size = f"{results / 2**20:.1f}MB"
                    floor = 1 + medians["results"] / medians["deeplimit"]
                    observe += f" {size:>8} {floor:>5.2f}x"
                else:
                    observe += f" {'-':>8} {'-':>6}"
                print(
                    f"{name:>7} {width:>4} {inputs:>2} {samples:>7} {depth:>5} "
                    f"{rates['deeplimit']:>10.3e} {rates['loop']:>9.3e} {limit:>9.3e} "
                    f"{rates['deeplimit'] / rates['loop']:>7.2f}x "
                    f"{rates['deeplimit'] / limit:>9.0%} {observe} {uptime()}",
                    flush=True,
                )
    if args.issue:
        issue_table(repeat, args.device)
    if args.numpy:
        legacy_numpy(repeat, args.device, dtypes[-1])


if __name__ == "__main__":
    main()
