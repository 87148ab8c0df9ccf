"""Training-step benchmark: deeplimit's batched in-place adjoint vs a plain NumPy reference.

The NumPy reference is written the way the authors' published scripts are (chizat.md §5): one
network at a time, dense ``(D, M, L)`` float64 arrays, Python loops over layers for the forward
pass, the backward pass and the gradients, full ``gradU``, ``gradV`` tensors, then the update.
Done competently: every ``(D, ., L)`` array is column-major (as in the authors' Julia), so each
per-layer slice ``a[:, :, l]`` is contiguous and goes straight to BLAS (with NumPy's default
row-major arrays the slices are strided and the baseline is slower; that literal translation
is timed too and printed after the main table).
The library is timed in float64 and float32 with torch's threads, and in float64 on one
thread. Both sides start from the same parameters and run the same ``K`` full-batch GD steps of
chizat.md §1.2 (tanh, ``alpha = 1``, ``lr = 0.5``), so the benchmark also checks that they
agree. Initialization is excluded from both timings; each time is the best of ``--repeats``.

    python benchmarks/bench_training.py [--repeats 2] [--threads N] [--quick] [--cuda]
    python benchmarks/bench_training.py --bandwidth [--rounds 5]

``--cuda`` adds a table of the library's times on the GPU (same shapes, plus a larger one).
``--bandwidth`` times only the library's training of the same shapes against a stream copy,
in ``--rounds`` rounds, each with its own copy measured just before (on a shared machine the
bandwidth left to one process changes by the minute), and prints the medians of the GB/s and
of their ratios to the copy (the issue's target: >= 70 %).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from deeplimit.training import build_resnet, synthetic_task, train
from deeplimit.training import native as training_native

LINEAR_SHAPE = (64, 512, 256, 4, 5)  # (L, M, D, S, K) of the linear N = 1 case
LINEAR_QUICK = (8, 64, 32, 2, 2)


def numpy_train(u, v, x, y, w_in, w_out, steps, alpha=1.0, lr=0.5):
    """Authors'-style NumPy GD on one network; ``u, v`` of shape (D, M, L), updated in place.
    Returns the outputs (d_out, N) after the last step."""
    d, m, depth = u.shape
    n = x.shape[0]
    d_out = y.shape[1]
    c = alpha / (depth * m)
    raw_lr = lr * depth * m * d / alpha**2
    e = w_in @ x.T  # (D, N)
    for _ in range(steps + 1):
        h = np.zeros((d, n, depth + 1), order="F")
        p = np.zeros((m, n, depth), order="F")
        h[:, :, 0] = e
        for layer in range(depth):
            p[:, :, layer] = u[:, :, layer].T @ h[:, :, layer] / d
            h[:, :, layer + 1] = h[:, :, layer] + c * (v[:, :, layer] @ np.tanh(p[:, :, layer]))
        out = w_out.T @ h[:, :, depth] / d
        if _ == steps:
            return out
        b = np.zeros_like(h)
        q = np.zeros((m, n, depth))
        b[:, :, depth] = w_out @ (2.0 * (out - y.T) / (n * d_out)) / d
        for layer in range(depth - 1, -1, -1):
            q[:, :, layer] = (
                c * (1.0 - np.tanh(p[:, :, layer]) ** 2) * (v[:, :, layer].T @ b[:, :, layer + 1])
            )
            b[:, :, layer] = b[:, :, layer + 1] + u[:, :, layer] @ q[:, :, layer] / d
        grad_u = np.zeros_like(u)
        grad_v = np.zeros_like(v)
        for layer in range(depth):
            grad_u[:, :, layer] = h[:, :, layer] @ q[:, :, layer].T / d
            grad_v[:, :, layer] = c * b[:, :, layer + 1] @ np.tanh(p[:, :, layer]).T
        u -= raw_lr * grad_u
        v -= raw_lr * grad_v
    return out


def bench_shape(depth, width, dim, seeds, steps, repeats):
    data = synthetic_task()
    x, y = data.x.numpy(), data.y.numpy()
    model = build_resnet(depth, width, dim, input_dim=5, output_dim=5, seeds=seeds)
    w_in, w_out = model.w_in.numpy(), model.w_out.numpy()
    # (S, D, M, L) views of the layer-major storage; np.asfortranarray(u0[s]) is (D, M, L)
    # column-major: every layer slice u[:, :, l] is contiguous
    u0 = model.parameters["u"].permute(0, 3, 2, 1).numpy()
    v0 = model.parameters["v"].permute(0, 3, 2, 1).numpy()

    numpy_times = {}
    for layout, convert in (("F", np.asfortranarray), ("C", np.ascontiguousarray)):
        numpy_times[layout] = math.inf
        for _ in range(repeats):
            us = [convert(u0[s]) for s in range(seeds)]
            vs = [convert(v0[s]) for s in range(seeds)]
            start = time.perf_counter()
            outs = [numpy_train(us[s], vs[s], x, y, w_in, w_out, steps) for s in range(seeds)]
            numpy_times[layout] = min(numpy_times[layout], time.perf_counter() - start)
        if layout == "F":
            numpy_out = outs

    rows = []
    threads = torch.get_num_threads()
    # the library in float64 and float32 with torch's threads, and float64 on one thread
    for dtype, run_threads in (
        (torch.float64, threads),
        (torch.float32, threads),
        (torch.float64, 1),
    ):
        torch.set_num_threads(run_threads)
        best = math.inf
        for _ in range(repeats + 1):  # the first run warms up
            fresh = build_resnet(
                depth, width, dim, input_dim=5, output_dim=5, seeds=seeds, dtype=dtype
            )
            start = time.perf_counter()
            result = train(fresh, data, steps, record_movement=False)
            best = min(best, time.perf_counter() - start)
        final = result.outputs[:, -1].double().numpy()  # (S, N, d_out)
        diff = max(np.abs(final[s] - numpy_out[s].T).max() for s in range(seeds))
        rows.append((dtype, best, diff))
    torch.set_num_threads(threads)
    return numpy_times, rows


def stream_copy_gbs(megabytes=512, repeats=5):
    """Memory bandwidth of this machine now: the best ``dst.copy_(src)`` of a ``megabytes`` MiB
    float64 tensor, counting the bytes read plus the bytes written (STREAM "copy")."""
    src = torch.ones(megabytes * 2**20 // 8, dtype=torch.float64)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the pages first
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 8 / best / 1e9


def streamed_bytes(depth, width, dim, seeds, steps, itemsize):
    """Bytes of U, V streamed by ``steps`` GD steps: each of the ``K + 1`` forward passes reads
    U and V, each of the ``K`` adjoint sweeps reads them and writes them back (in place)."""
    parameters = 2 * seeds * depth * width * dim * itemsize
    return parameters * ((steps + 1) + 2 * steps)


def product_sweeps(model, samples):
    """Two functions timing nothing but the block's products on ``model``'s shapes, in the
    layout (``TwoLayerBlock.units_major``), BLAS (``TwoLayerBlock.numpy_row_products``) and
    thread split (``_NetworkGroups``) its training uses: one forward sweep (p = U h^T / D,
    h + c a V per layer) and one adjoint sweep (r = g V^T, the V update, g + c r U / D, the U
    update), on scratch copies of the parameters, with fixed random states and preallocated
    outputs (no activation, no allocation but NumPy's results, a bare loop): the time the
    library's products take, i.e. what the training would take if everything but them were
    free. Returns (forward, adjoint); each returns (wall seconds, CPU seconds of the
    process)."""
    from deeplimit.training.model import ResNet, _row_product
    from deeplimit.training.train import _NetworkGroups

    scratch = {name: value.clone() for name, value in model.storage.items()}
    replay = ResNet(
        model.block, scratch, model.w_in, model.w_out, model.residual_scale, model.learning_rates
    )
    groups = _NetworkGroups(replay, samples)
    state = []
    for part in groups.parts:
        s, m, d, dtype = part.networks, part.hidden_width, part.embedding_dim, part.dtype
        h, g = (torch.randn(s, samples, d, dtype=dtype) for _ in range(2))
        # (main before the units-major layout: samples-major)
        units = getattr(part.block, "units_major", lambda h: False)(h)
        # the row-times-matrix products of N = 1 by NumPy's BLAS, as the training forms them
        rows = getattr(part.block, "numpy_row_products", lambda h: False)(h)
        a, r = (
            torch.randn((s, m, samples) if units else (s, samples, m), dtype=dtype) for _ in "ar"
        )
        out_p, out_r = torch.empty_like(a), torch.empty_like(r)
        out_h, out_g = torch.empty_like(h), torch.empty_like(h)
        # the (S, N, M) views of a, r as the training's products see them
        a_nm, r_nm = (a.transpose(1, 2), r.transpose(1, 2)) if units else (a, r)
        state.append((part, units, rows, h, g, a_nm, r_nm, out_p, out_r, out_h, out_g))

    def forward(part, units, rows, h, g, a_nm, r_nm, out_p, out_r, out_h, out_g):
        for index in range(part.depth):
            u, v = part.storage["u"][index], part.storage["v"][index]
            if units:
                torch.baddbmm(out_p, u, h.transpose(1, 2), beta=0.0, alpha=0.5, out=out_p)
            else:
                torch.baddbmm(out_p, h, u.transpose(1, 2), beta=0.0, alpha=0.5, out=out_p)
            if rows:
                _row_product(h, a_nm, v, 0.5)
            else:
                torch.baddbmm(h, a_nm, v, alpha=0.5, out=out_h)

    def adjoint(part, units, rows, h, g, a_nm, r_nm, out_p, out_r, out_h, out_g):
        for index in range(part.depth - 1, -1, -1):
            u, v = part.storage["u"][index], part.storage["v"][index]
            if units:
                torch.bmm(v, g.transpose(1, 2), out=out_r)
            else:
                torch.bmm(g, v.transpose(1, 2), out=out_r)
            v.baddbmm_(a_nm.transpose(1, 2), g, alpha=1e-30)
            if rows:
                _row_product(g, r_nm, u, 0.5)
            else:
                torch.baddbmm(g, r_nm, u, alpha=0.5, out=out_g)
            u.baddbmm_(r_nm.transpose(1, 2), h, alpha=1e-30)

    def timed(function):
        with groups:  # one torch thread per group while in it (as in train)
            wall, cpu = time.perf_counter(), time.process_time()
            groups._map(lambda row: function(*row), state)
            return time.perf_counter() - wall, time.process_time() - cpu

    return (lambda: timed(forward)), (lambda: timed(adjoint))


def _workers(model, samples):
    """Threads ``train`` runs ``model`` on (``_NetworkGroups``)."""
    from deeplimit.training.train import _NetworkGroups

    return len(_NetworkGroups(model, samples).parts)


def peak_gflops(dtype, size=1024):
    """GFLOP/s of one large square product (torch's threads): the machine's BLAS ceiling, for
    context beside the skinny products of the training."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def fresh_model(shape, dims, **options):
    """The benchmark's model of ``shape`` = (L, M, D, S, ...) with ``dims`` inputs and outputs
    (other ``build_resnet`` options passed on), and a function putting its parameters back to
    their initial values, so that every timed training starts from the same weights."""
    depth, width, dim, seeds = shape[:4]
    model = build_resnet(depth, width, dim, input_dim=dims, output_dim=dims, seeds=seeds, **options)
    initial = {name: value.clone() for name, value in model.storage.items()}

    def reset():
        for name, value in initial.items():
            model.storage[name].copy_(value)

    return model, reset


def bandwidth_rounds(shapes, linear_shape, rounds):
    """Per shape and dtype, medians over ``rounds`` of: the effective GB/s of ``train``, a
    stream copy and the bound the products set (``product_sweeps``: bytes streamed per second
    if the step took only the time of its products, and their GFLOP/s), each measured in the
    same round; the bound that applies (the smaller: ``copy`` or ``products``) and the
    training's % of it (tanh shapes of the main table, then the linear N = 1). ``cpu-time %``:
    the products' CPU seconds over the training's (the process's CPU time, which time slices
    given to other processes do not inflate): the share of the training's work that is its
    products, the figure to trust on a loaded machine, where wall-clock ratios scatter; ``cpu
    GB/s``: the bytes streamed per CPU second of one worker thread times the workers (what a
    quiet machine would give if the workers never waited; memory shared with other processes
    still slows it). With one sample (the linear case) two rows: ``compiled``, the sweeps of
    ``training/native.py`` (the default where the kernel loads; bound: the copy) and
    ``tensor``, the tensor path (``compiled_sweeps = False``), timed in the same rounds."""
    from deeplimit.training.authors import authors_linear_task

    tanh_data, linear_data = synthetic_task(), authors_linear_task()
    cases = [(shape, "tanh", tanh_data, 5) for shape in shapes]
    cases.append((linear_shape, "identity", linear_data, 3))
    print(
        f"bandwidth: {rounds} rounds, each a stream copy (256 MiB, best of 3), the products alone "
        f"(best of 2 sweeps each way) and the training (best of 2) per case; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; one large product "
        f"(1024^2, {torch.get_num_threads()} threads): "
        f"{peak_gflops(torch.float64):.0f} GFLOP/s float64, "
        f"{peak_gflops(torch.float32):.0f} float32"
    )
    header = (
        f"{'case':>9} {'L':>4} {'M':>5} {'D':>4} {'S':>2} {'K':>3} {'dtype':>7} {'path':>8} | "
        f"{'train GB/s':>10} {'copy GB/s':>9} {'products GB/s':>13} {'(GFLOP/s)':>9} | "
        f"{'bound':>8} {'% of bound':>10} {'min-max':>7} {'% of copy':>9} | "
        f"{'cpu-time %':>10} {'cpu GB/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for shape, activation, data, dims in cases:
        depth, width, dim, seeds, steps = shape
        for dtype in (torch.float64, torch.float32):
            lr = 0.15 if activation == "identity" else 0.5
            model, reset = fresh_model(shape, dims, activation=activation, lr=lr, dtype=dtype)
            n = data.samples
            # the compiled sweeps (training/native.py) where they run (N = 1), and the tensor path
            paths = ["compiled", "tensor"] if n == 1 and training_native.available() else ["tensor"]
            for path in paths:
                model.block.compiled_sweeps = path == "compiled"
                train(model, data, 1, record_movement=False)  # warm up
            itemsize = torch.finfo(dtype).bits // 8
            streamed = streamed_bytes(depth, width, dim, seeds, steps, itemsize)
            flops = 4.0 * n * depth * width * dim * seeds * (3 * steps + 1)
            forward, adjoint = product_sweeps(model, n)
            forward(), adjoint()  # warm up
            table = {path: tuple([] for _ in range(7)) for path in paths}
            workers = _workers(model, n)
            for _ in range(rounds):
                copy = stream_copy_gbs(megabytes=256, repeats=3)
                (f_wall, f_cpu), (b_wall, b_cpu) = (
                    min(sweep() for _ in range(2)) for sweep in (forward, adjoint)
                )
                products = streamed / ((steps + 1) * f_wall + steps * b_wall) / 1e9
                products_cpu = (steps + 1) * f_cpu + steps * b_cpu
                for path in paths:
                    model.block.compiled_sweeps = path == "compiled"
                    gbs, copies, bounds, ratios, copy_ratios, cpu_ratios, cpu_gbs = table[path]
                    best = (math.inf, math.inf)
                    for _ in range(2):
                        reset()
                        wall, cpu = time.perf_counter(), time.process_time()
                        train(model, data, steps, record_movement=False)
                        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
                    gbs.append(streamed / best[0] / 1e9)
                    copies.append(copy)
                    # the compiled sweeps make no separate products: the copy bounds them
                    bound = copy if path == "compiled" else min(copy, products)
                    bounds.append(products)
                    ratios.append(100 * gbs[-1] / bound)
                    copy_ratios.append(100 * gbs[-1] / copy)
                    cpu_ratios.append(100 * products_cpu / best[1])
                    cpu_gbs.append(streamed / (best[1] / workers) / 1e9)
            name = "tanh N=10" if activation == "tanh" else "lin N=1"
            for path in paths:
                gbs, copies, bounds, ratios, copy_ratios, cpu_ratios, cpu_gbs = table[path]
                copy, products = float(np.median(copies)), float(np.median(bounds))
                gflops = products * 1e9 / streamed * flops / 1e9
                if path == "compiled":
                    bound, products_text, cpu_text = "copy", f"{'-':>13} {'-':>9}", f"{'-':>10}"
                else:
                    bound = "copy" if copy <= products else "products"
                    products_text = f"{products:>13.1f} {gflops:>9.1f}"
                    cpu_text = f"{float(np.median(cpu_ratios)):>9.0f}%"
                print(
                    f"{name:>9} {depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} "
                    f"{str(dtype)[6:]:>7} {path:>8} | {float(np.median(gbs)):>10.1f} {copy:>9.1f} "
                    f"{products_text} | {bound:>8} "
                    f"{float(np.median(ratios)):>9.0f}% {min(ratios):>3.0f}-{max(ratios):.0f}% "
                    f"{float(np.median(copy_ratios)):>8.0f}% | {cpu_text} "
                    f"{float(np.median(cpu_gbs)):>8.1f}",
                    flush=True,
                )
            del model, reset


def bench_linear_bandwidth(shape, repeats, copy_gbs):
    """The authors' linear Python setting (N = 1, d = 3, sigma = id): the step is a chain of
    matrix-vector products, bound by memory traffic. Library only, float64 and float32."""
    from deeplimit.training.authors import authors_linear_task

    data = authors_linear_task()
    depth, width, dim, seeds, steps = shape
    for dtype in (torch.float64, torch.float32):
        model, reset = fresh_model(shape, 3, activation="identity", lr=0.15, dtype=dtype)
        best = math.inf
        for _ in range(repeats + 1):
            reset()
            start = time.perf_counter()
            train(model, data, steps, record_movement=False)
            best = min(best, time.perf_counter() - start)
        itemsize = torch.finfo(dtype).bits // 8
        gbs = streamed_bytes(depth, width, dim, seeds, steps, itemsize) / best / 1e9
        print(
            f"linear N=1 {depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} | {str(dtype)[6:]} "
            f"{best:.3f} s, {gbs:6.1f} GB/s ({100 * gbs / copy_gbs:3.0f}% of the stream copy)"
        )
        del model, reset


def bench_cuda(shapes, repeats):
    data = synthetic_task()
    print(f"\nCUDA: {torch.cuda.get_device_name()} (library only; seconds, best of {repeats})")
    print(f"{'L':>4} {'M':>5} {'D':>4} {'S':>2} {'K':>3} | {'f64 [s]':>8} | {'f32 [s]':>8}")
    for depth, width, dim, seeds, steps in shapes:
        times = []
        for dtype in (torch.float64, torch.float32):
            model, reset = fresh_model((depth, width, dim, seeds), 5, dtype=dtype, device="cuda")
            best = math.inf
            for _ in range(repeats + 1):  # the first run warms up
                reset()
                torch.cuda.synchronize()
                start = time.perf_counter()
                train(model, data, steps, record_movement=False)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            times.append(best)
            del model, reset
        print(
            f"{depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} | {times[0]:>8.3f} | "
            f"{times[1]:>8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="small shapes only (smoke test)")
    parser.add_argument("--cuda", action="store_true", help="also time the library on CUDA")
    parser.add_argument(
        "--bandwidth", action="store_true", help="only the bandwidth rounds (see the docstring)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --bandwidth")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [(64, 256, 64, 8, 10), (32, 1024, 128, 4, 5)]
    if args.quick:
        shapes = [(8, 32, 16, 2, 2)]
    if args.bandwidth:
        print(f"load average {os.getloadavg()[0]:.2f} at start")
        bandwidth_rounds(shapes, LINEAR_QUICK if args.quick else LINEAR_SHAPE, args.rounds)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start; "
        "tanh 2LP, alpha=1, lr=0.5, N=10, d_in=d_out=5"
    )
    copy_gbs = stream_copy_gbs()
    print(f"stream copy (same run, 512 MiB float64, read + write): {copy_gbs:.1f} GB/s")
    header = (
        f"{'L':>4} {'M':>5} {'D':>4} {'S':>2} {'K':>3} | {'numpy f64 [s]':>13} | "
        f"{'deeplimit f64 [s]':>17} {'ratio':>6} | {'deeplimit f32 [s]':>17} {'ratio':>6} | "
        f"{'f64 1 thread [s]':>16} {'ratio':>6} | {'max |diff| f64/f32':>20}"
    )
    print(header)
    print("-" * len(header))
    literal = []
    bandwidth = []
    for depth, width, dim, seeds, steps in shapes:
        numpy_times, rows = bench_shape(depth, width, dim, seeds, steps, args.repeats)
        numpy_time = numpy_times["F"]
        (_, t64, d64), (_, t32, d32), (_, t1, d1) = rows
        # the benchmark is also a check: both implementations run the same GD
        if max(d64, d1) > 1e-9 or d32 > 1e-4:
            raise SystemExit(f"library and NumPy disagree: f64 {max(d64, d1):.2g}, f32 {d32:.2g}")
        print(
            f"{depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} | {numpy_time:>13.3f} | "
            f"{t64:>17.3f} {numpy_time / t64:>5.1f}x | {t32:>17.3f} {numpy_time / t32:>5.1f}x | "
            f"{t1:>16.3f} {numpy_time / t1:>5.1f}x | {d64:>9.1e} / {d32:.1e}"
        )
        literal.append((depth, width, dim, seeds, steps, numpy_times["C"], t64, t32))
        bandwidth.append(
            (
                depth,
                width,
                dim,
                seeds,
                steps,
                streamed_bytes(depth, width, dim, seeds, steps, 8) / t64 / 1e9,
                streamed_bytes(depth, width, dim, seeds, steps, 4) / t32 / 1e9,
                streamed_bytes(depth, width, dim, seeds, steps, 8) / t1 / 1e9,
            )
        )
    print(
        "\nAgainst NumPy's default row-major (D, M, L) arrays, the literal translation of the "
        "authors' Julia (each layer slice strided):"
    )
    for depth, width, dim, seeds, steps, t_c, t64, t32 in literal:
        print(
            f"{depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} | numpy f64 row-major "
            f"{t_c:.3f} s | deeplimit f64 {t_c / t64:.1f}x, f32 {t_c / t32:.1f}x"
        )
    print(
        "\nEffective bandwidth of training without movement recording (bytes of U, V streamed: "
        f"K+1 reads + K read-and-writes, per second) against the stream copy ({copy_gbs:.1f} "
        "GB/s):"
    )
    for depth, width, dim, seeds, steps, g64, g32, g1 in bandwidth:
        print(
            f"{depth:>4} {width:>5} {dim:>4} {seeds:>2} {steps:>3} | f64 {g64:6.1f} GB/s "
            f"({100 * g64 / copy_gbs:3.0f}%) | f32 {g32:6.1f} GB/s ({100 * g32 / copy_gbs:3.0f}%)"
            f" | f64 1 thread {g1:6.1f} GB/s ({100 * g1 / copy_gbs:3.0f}%)"
        )
    bench_linear_bandwidth(LINEAR_QUICK if args.quick else LINEAR_SHAPE, args.repeats, copy_gbs)
    print(f"load average {os.getloadavg()[0]:.2f} at the end (timings need a quiet machine)")
    if args.cuda:
        bench_cuda([*shapes, (64, 2048, 512, 8, 10)], args.repeats)


if __name__ == "__main__":
    main()
