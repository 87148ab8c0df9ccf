"""Worker threads run torch's operations on one thread each (``devices.one_torch_thread``).

``torch.set_num_threads(1)`` on the main thread does not reach other threads: OpenMP keeps its
thread count per thread, so a pool's workers would fork a team per operation (on 2 cores,
two chain blocks or two groups of networks ran slower than one). These tests read OpenMP's
own count inside the workers."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import pytest
import torch

import deeplimit as dl
from deeplimit.initialization import chain
from deeplimit.training import build_resnet, synthetic_task, train
from deeplimit.training.model import ResNet


def _openmp():
    """OpenMP's ``omp_get_max_threads`` of the runtime torch loaded (the one in torch's own
    folder first: other packages may bring their own copy, whose counts are their own), or
    None."""
    runtimes = ("libgomp", "libiomp", "libomp")
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/" in line}
    paths = {p for p in paths if p.rsplit("/", 1)[-1].startswith(runtimes)}
    torch_folder = str(Path(torch.__file__).parent)
    for path in sorted(paths, key=lambda p: (not p.startswith(torch_folder), p)):
        try:
            return ctypes.CDLL(path).omp_get_max_threads
        except (OSError, AttributeError):
            continue
    return None


@pytest.fixture
def openmp_threads():
    torch.zeros(1).add_(1)  # torch's OpenMP runtime is loaded
    count = _openmp()
    if count is None:
        pytest.skip("no OpenMP runtime found in this process")
    return count


def test_chain_blocks_and_the_normals_drawer_run_one_thread_each(monkeypatch, openmp_threads):
    seen: dict[str, list[int]] = {"block": [], "drawer": []}
    run_block = chain._run_block
    draw = chain._Normals._draw

    def block(*args, **kwargs):
        seen["block"].append(openmp_threads())
        return run_block(*args, **kwargs)

    def drawer(self):
        result = draw(self)
        seen["drawer"].append(openmp_threads())
        return result

    monkeypatch.setattr(chain, "_run_block", block)
    monkeypatch.setattr(chain._Normals, "_draw", drawer)
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    previous = torch.get_num_threads()
    # several blocks on two threads; one block with a core to spare draws ahead
    dl.sample_resnet(4, 8, "relu", samples=3 * 2**15, y0=[0.5, -0.2, 0.1, 0.3], seed=1)
    dl.sample_sde(10, "relu", steps=20, samples=50, y0=[1.0] * 10, seed=1)
    assert seen["block"] and set(seen["block"]) == {1}
    assert seen["drawer"] and set(seen["drawer"]) == {1}
    assert torch.get_num_threads() == previous


def test_groups_of_networks_run_one_thread_each(monkeypatch, openmp_threads):
    seen: list[tuple[str, int]] = []
    forward = ResNet.forward

    def counted(self, *args, **kwargs):
        seen.append((threading.current_thread().name, openmp_threads()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ResNet, "forward", counted)
    real = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # two groups on two threads
    model = build_resnet(16, 256, 64, input_dim=5, output_dim=5, seeds=4, activation="tanh")
    try:
        train(model, synthetic_task(), 2, record_movement=False)
    finally:
        torch.set_num_threads(real)
    workers = [count for name, count in seen if name.startswith("deeplimit-train")]
    assert workers and set(workers) == {1}


def test_the_chain_keeps_its_worker_threads_across_runs(monkeypatch):
    """The blocks of consecutive runs run on the same kept threads (their malloc arenas, and
    so the pages of the blocks' buffers, are reused); a chain started inside a block's thread
    runs its blocks on that thread (the kept pool may be all busy: no deadlock); an error in
    a block stops the run and no block runs on after the call; after a fork the pool is made
    again."""
    seen: list[str] = []
    run_block = chain._run_block

    def block(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return run_block(*args, **kwargs)

    monkeypatch.setattr(chain, "_run_block", block)
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    kwargs = dict(samples=4 * 2**15, y0=[0.5, -0.2, 0.1, 0.3], seed=1)
    first = dl.sample_resnet(4, 4, "relu", **kwargs)
    names = set(seen)
    seen.clear()
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), first)
    assert set(seen) == names and all(name.startswith("deeplimit-chain") for name in names)

    inner: list[torch.Tensor] = []
    entered: list[bool] = []

    def nested(*args, **kwargs):
        if not entered:  # one block starts a whole run of its own, on its own thread
            entered.append(True)
            inner.append(dl.sample_resnet(4, 4, "relu", **{**kwargs_outer, "seed": 2}))
        return block(*args, **kwargs)

    kwargs_outer = kwargs
    monkeypatch.setattr(chain, "_run_block", nested)
    dl.sample_resnet(4, 4, "relu", **kwargs)
    assert torch.equal(inner[0], dl.sample_resnet(4, 4, "relu", **{**kwargs, "seed": 2}))

    started: list[int] = []

    def failing(*args, **kwargs):
        started.append(1)
        raise RuntimeError("a block failed")

    monkeypatch.setattr(chain, "_run_block", failing)
    with pytest.raises(RuntimeError, match="a block failed"):
        dl.sample_resnet(4, 4, "relu", **kwargs)
    count = len(started)
    monkeypatch.setattr(chain, "_run_block", block)
    assert len(started) == count  # nothing ran on after the call
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), first)

    # a forked child forgets the parent's pool (its threads are not there) and makes its own
    kept = chain._block_pool(2)
    chain._forget_pools()
    assert chain._block_pool(2) is not kept
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), first)


def test_block_threads_run_on_a_cpu_each_where_they_use_every_cpu(monkeypatch):
    """A run whose block threads are as many as the CPUs the process may use puts each kept
    thread on a CPU of its own for its blocks (the scheduler packed woken kept threads onto
    one core) and gives it every CPU back after; with fewer threads than CPUs, with one
    thread, or outside a kept pool's thread nothing is pinned; the numbers do not change."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    monkeypatch.setattr(chain.os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(
        chain.os,
        "sched_setaffinity",
        lambda pid, cpus: calls.append((threading.current_thread().name, tuple(cpus))),
        raising=False,
    )
    assert chain._spread_over(2) == (3, 5)
    assert chain._spread_over(1) is None and chain._spread_over(3) is None
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    kwargs = dict(samples=4 * 2**15, y0=[0.5, -0.2, 0.1, 0.3], seed=1)
    pinned = dl.sample_resnet(4, 4, "relu", **kwargs)
    assert calls and all(name.startswith("deeplimit-chain") for name, _ in calls)
    per_thread: dict[str, list[tuple[int, ...]]] = {}
    for name, cpus in calls:
        per_thread.setdefault(name, []).append(cpus)
    singles = set()
    for cpus in per_thread.values():  # each block: its own CPU, then both back
        assert len(cpus) % 2 == 0
        assert all(len(one) == 1 and every == (3, 5) for one, every in zip(cpus[::2], cpus[1::2]))
        singles |= {one for one in cpus[::2]}
    assert singles == {(3,), (5,)} or len(per_thread) == 1
    with chain._own_cpu((3, 5)):  # not a kept pool's thread: nothing
        pass
    calls.clear()
    monkeypatch.setattr(chain, "_threads", lambda: 1)
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), pinned)
    assert calls == []
    monkeypatch.setattr(chain.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), pinned)
    assert calls == []

    def refused(pid, cpus):
        raise OSError("not allowed")

    monkeypatch.setattr(chain.os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(chain.os, "sched_setaffinity", refused, raising=False)
    assert torch.equal(dl.sample_resnet(4, 4, "relu", **kwargs), pinned)
