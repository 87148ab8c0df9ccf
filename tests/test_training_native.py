"""The compiled sweeps of the 2LP block for one sample (``training/native.py``, issue 10) against
the tensor path and against autograd; where they apply and where they step back."""

from __future__ import annotations

import importlib

import pytest
import torch

from deeplimit import compiled, devices
from deeplimit.training import MeanFieldScaling, TwoLayerBlock, build_resnet, train
from deeplimit.training import native as training_native
from deeplimit.training.authors import authors_linear_task
from deeplimit.training.data import TrainingData

train_module = importlib.import_module("deeplimit.training.train")

pytestmark = pytest.mark.skipif(
    not training_native.available(), reason=f"no compiled kernel: {training_native.reason()}"
)

TASK = authors_linear_task()  # N = 1
DTYPES = [torch.float64, torch.float32]


def block(activation, compiled_sweeps=True):
    made = TwoLayerBlock(activation)
    made.compiled_sweeps = compiled_sweeps
    return made


def run(activation, dtype, compiled_sweeps, *, shape=(5, 24, 37), seeds=3, steps=4, **options):
    depth, width, dim = shape
    scaling = options.pop("scaling", MeanFieldScaling(1.0, 0.1))
    model = build_resnet(
        depth,
        width,
        dim,
        input_dim=3,
        output_dim=3,
        block=block(activation, compiled_sweeps),
        seeds=seeds,
        dtype=dtype,
        scaling=scaling,
    )
    data = options.pop("data", TASK)
    result = train(model, data, steps, **options)
    return result, model


def tolerance(dtype, shape, steps):
    """What reordering the sums along the width may change: a sum of n terms in another order
    differs by up to ~n eps of its terms' magnitude; a sweep chains such sums over the depth
    and steps. A generous factor on that, still far below any error in the arithmetic (a
    wrong coefficient, a missed update or derivative changes the results at order 1e-2+)."""
    depth, width, dim = shape
    return 4 * torch.finfo(dtype).eps * (width + dim) * depth * (steps + 1)


def assert_close(left, right, tol):
    scale = max(float(right.abs().max()), 1e-300)
    assert float((left - right).abs().max()) <= tol * scale


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("activation", ["identity", "tanh", "linear-0.5"])
@pytest.mark.parametrize("mixed", [False, True], ids=["shared", "per-network"])
def test_compiled_sweeps_equal_the_tensor_path_to_rounding(dtype, activation, mixed):
    """Outputs, loss, states, adjoints and the trained parameters, with shared or per-network
    scales and learning rates, dims not a multiple of the kernel's lanes (37)."""
    act = {"linear-0.5": "linear:a=0.5"}.get(activation, activation)
    scaling = (
        [MeanFieldScaling(1.0 + 0.4 * i, 0.05 + 0.05 * i) for i in range(3)]
        if mixed
        else MeanFieldScaling(1.0, 0.1)
    )
    runs = [
        run(act, dtype, flag, scaling=scaling, record_layers=True, record_adjoint=True)
        for flag in (True, False)
    ]
    (fast, fast_model), (slow, slow_model) = runs
    tol = tolerance(dtype, (5, 24, 37), 4)
    for key in ("outputs", "loss", "states", "adjoint", "embeddings"):
        assert_close(getattr(fast, key), getattr(slow, key), tol)
    for name in fast_model.storage:
        assert_close(fast_model.storage[name], slow_model.storage[name], tol)
    assert not torch.equal(fast.loss[:, 0], fast.loss[:, -1])  # it trained
    # and the two paths are not the same code: the sums run in another order
    assert not all(
        torch.equal(fast_model.storage[n], slow_model.storage[n]) for n in fast_model.storage
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_one_compiled_step_is_gradient_descent_by_autograd(dtype, activation):
    """z_1 = z_0 - lr dR/dz at z_0, the gradient by autograd through the plain forward pass."""
    shape, seeds = (4, 16, 12), 2
    model = build_resnet(
        *shape, input_dim=3, output_dim=3, block=block(activation), seeds=seeds, dtype=dtype
    )
    start = {name: value.clone() for name, value in model.storage.items()}
    x, y = TASK.x.to(dtype), TASK.y.to(dtype)
    parameters = {
        name: value.clone().transpose(0, 1).requires_grad_(True) for name, value in start.items()
    }
    model.risk_of(parameters, x, y).sum().backward()
    train(model, TASK, 1)
    for name, value in model.storage.items():
        lr = model.learning_rates[name].view(1, -1, 1, 1)
        expected = start[name] - lr * parameters[name].grad.transpose(0, 1)
        step = (start[name] - expected).abs().max()
        assert float(step) > 0
        # the update is lr * grad ~ step; rounding of the product and the sums
        assert float((value - expected).abs().max()) <= 64 * torch.finfo(dtype).eps * float(
            start[name].abs().max()
        )


def test_the_kernel_runs_and_provenance_names_it(monkeypatch):
    calls = []
    real = training_native.forward
    monkeypatch.setattr(
        training_native, "forward", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    result, _ = run("identity", torch.float64, True)
    assert calls and all(c == 1 for c in calls)
    assert devices.compiled_kernels()["training_sweeps"].startswith("training_sweeps-")
    assert result.provenance["compiled_kernels"]["training_sweeps"].startswith("training_sweeps-")


def test_batches_and_thread_groups_give_each_network_its_own_numbers(monkeypatch):
    """A network trained in a batch of three, on two thread groups, equals the same network
    trained alone, bit for bit (the kernel runs each network through the same operations)."""
    monkeypatch.setattr(train_module, "_GROUP_MIN_FLOPS", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch, batch_model = run("tanh", torch.float32, True, seeds=[0, 1, 2])
    finally:
        torch.set_num_threads(threads)
    for index, seed in enumerate((0, 1, 2)):
        alone, alone_model = run("tanh", torch.float32, True, seeds=[seed])
        assert torch.equal(batch.outputs[index], alone.outputs[0])
        for name in alone_model.storage:
            assert torch.equal(batch_model.storage[name][:, index], alone_model.storage[name][:, 0])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 1), (2, 1, 33), (2, 5, 64), (1, 40, 17)])
def test_awkward_shapes(shape):
    """Depth 1, width 1, dim 1, dims around the lanes (tails only, whole lanes only)."""
    for dtype in DTYPES:
        runs = [
            run("tanh", dtype, flag, shape=shape, seeds=2, steps=3)[0] for flag in (True, False)
        ]
        assert_close(runs[0].outputs, runs[1].outputs, tolerance(dtype, shape, 3))


def test_divergence_is_caught_at_the_same_step():
    """Learning rates that blow the training up: both paths report the same step, the kernel's
    non-finite numbers do not leak into the frozen networks' records."""
    scaling = [MeanFieldScaling(1.0, lr) for lr in (0.1, 400.0, 1e6)]
    with pytest.warns(train_module.TrainingDivergenceWarning):
        runs = [
            run("identity", torch.float64, flag, scaling=scaling, steps=6) for flag in (True, False)
        ]
    (fast, fast_model), (slow, _) = runs
    assert torch.equal(fast.diverged_at, slow.diverged_at)
    assert int(fast.diverged_at[0]) == -1 and int(fast.diverged_at[2]) >= 0
    for name, value in fast_model.storage.items():
        assert bool(torch.isfinite(value).all()), name


def test_where_the_kernel_steps_back(monkeypatch):
    """N > 1, autograd, other activations, non-contiguous layers: the tensor path, and the
    kernel's functions say so by returning None."""
    calls = []
    real = training_native.forward
    monkeypatch.setattr(
        training_native, "forward", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    ten = TrainingData(
        torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
        torch.zeros(10, 3, dtype=torch.float64),
        "ten",
    )
    run("tanh", torch.float64, True, data=ten)
    run("relu", torch.float64, True)
    assert not calls
    model = build_resnet(2, 4, 6, input_dim=3, output_dim=3, block=block("tanh"), seeds=2)
    for value in model.storage.values():
        value.requires_grad_(True)
    model.forward(TASK.x.double()).last.sum().backward()  # autograd still works
    assert not calls
    h = torch.randn(2, 1, 6, dtype=torch.float64)
    layers = [
        {"u": torch.randn(2, 6, 4).double().transpose(1, 2), "v": torch.randn(2, 4, 6).double()}
    ]
    assert training_native.forward(h, layers, 1.0, True, (1, 1.0)) is None  # u not contiguous
    layers = [{"u": torch.randn(2, 4, 6).double(), "v": torch.randn(2, 4, 6).float()}]
    assert training_native.forward(h, layers, 1.0, True, (1, 1.0)) is None  # mixed dtypes


def test_forward_with_distinct_embeddings_per_network():
    """``h_0`` may differ per network (stride S, not the shared embedding's 0): the kernel's
    forward pass equals the tensor path's."""
    generator = torch.Generator().manual_seed(3)
    for dtype in DTYPES:
        h = torch.randn(3, 1, 20, generator=generator, dtype=torch.float64).to(dtype)
        layers = [
            {
                name: torch.randn(3, 9, 20, generator=generator, dtype=torch.float64).to(dtype) * 4
                for name in ("u", "v")
            }
            for _ in range(4)
        ]
        reference = block("tanh", False).forward_sweep(h, layers, 0.25, True)
        fast = training_native.forward(h, layers, 0.25, True, (1, 1.0))
        tol = tolerance(dtype, (4, 9, 20), 0)
        assert_close(fast[0], reference[0], tol)
        for mine, theirs in zip(fast[1], reference[1], strict=True):
            assert_close(mine, theirs, tol)
        for mine, theirs in zip(fast[2], reference[2], strict=True):
            assert_close(mine[0], theirs[0].reshape(mine[0].shape), tol)


@pytest.mark.parametrize("how", ["env", "no-compiler"])
def test_without_the_kernel_the_tensor_path_runs(monkeypatch, tmp_path, how):
    monkeypatch.setattr(training_native.LIBRARY, "state", {})
    if how == "env":
        monkeypatch.setenv("DEEPLIMIT_NATIVE", "0")
    else:
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(tmp_path / "cache"))
    assert not training_native.available()
    assert training_native.reason()
    result, _ = run("tanh", torch.float64, True)
    reference, _ = run("tanh", torch.float64, False)
    assert torch.equal(result.outputs, reference.outputs)  # the tensor path, bit for bit
    assert devices.compiled_kernels()["training_sweeps"].startswith("tensor path")
    assert result.provenance["compiled_kernels"]["training_sweeps"].startswith("tensor path")
    monkeypatch.setattr(training_native.LIBRARY, "state", {})
    monkeypatch.delenv("DEEPLIMIT_NATIVE", raising=False)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("DEEPLIMIT_CACHE_DIR", raising=False)
    assert training_native.available() == (compiled._compiler() is not None)
