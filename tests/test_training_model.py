"""The trained-ResNet model (chizat.md §1): explicit adjoint, in-place updates, batching,
coupled embeddings, dtypes, devices."""

from collections.abc import Mapping

import pytest
import torch

from deeplimit.training import (
    Block,
    MeanFieldScaling,
    TwoLayerBlock,
    build_resnet,
    coupled_embeddings,
    synthetic_task,
    train,
    train_resnet,
)

DATA = synthetic_task()


def sine_activation(x):
    return torch.sin(x) + 0.3 * x


ACTIVATIONS = ["tanh", "identity", "relu", sine_activation]


def small_model(activation="tanh", *, seeds=3, scaling=None, block=None, dtype=torch.float64):
    return build_resnet(
        5,
        12,
        8,
        input_dim=DATA.input_dim,
        output_dim=DATA.output_dim,
        activation=activation if block is None else None,
        block=block,
        seeds=seeds,
        scaling=scaling,
        dtype=dtype,
    )


def autograd_gradients(model):
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in model.parameters.items()}
    risk = model.risk_of(leaves, DATA.x, DATA.y).sum()  # networks are independent
    grads = torch.autograd.grad(risk, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


MIXED_SCALINGS = [
    MeanFieldScaling(1.0, 0.5),
    MeanFieldScaling(2.5, 0.3),
    MeanFieldScaling(0.5, 1.0),
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=["tanh", "identity", "relu", "custom"])
@pytest.mark.parametrize("scaling", [None, MIXED_SCALINGS], ids=["shared", "per-network"])
def test_adjoint_matches_autograd(activation, scaling):
    model = small_model(activation, scaling=scaling)
    explicit = model.gradients(DATA.x, DATA.y)
    reference = autograd_gradients(model)
    for name in ("u", "v"):
        assert explicit[name].shape == (3, 5, 12, 8)
        assert relative_error(explicit[name], reference[name]) < 1e-10


class GatedBlock(Block):
    """A user block: phi(h, (u, v, w)) = v tanh(<u,h>/D) sigmoid(<w,h>/D); adjoint by autograd."""

    parameter_names = ("u", "v", "w")

    def initialize_layer(self, generator, hidden_width, embedding_dim):
        shape = (3, hidden_width, embedding_dim)
        u, v, w = torch.randn(shape, generator=generator, dtype=torch.float64) * embedding_dim**0.5
        return {"u": u, "v": v, "w": w}

    def branch(self, h: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        d = h.shape[-1]
        p = torch.bmm(h, params["u"].transpose(1, 2)) / d
        gate = torch.sigmoid(torch.bmm(h, params["w"].transpose(1, 2)) / d)
        return torch.bmm(torch.tanh(p) * gate, params["v"])


@pytest.mark.parametrize("scaling", [None, MIXED_SCALINGS], ids=["shared", "per-network"])
def test_user_block_adjoint_matches_autograd_and_trains(scaling):
    model = small_model(block=GatedBlock(), scaling=scaling)
    explicit = model.gradients(DATA.x, DATA.y)
    reference = autograd_gradients(model)
    for name in ("u", "v", "w"):
        assert relative_error(explicit[name], reference[name]) < 1e-10
    result = train(model, DATA, 3, record_movement=True)
    assert set(result.movement) == {"u", "v", "w"}
    assert bool((result.loss[:, -1] < result.loss[:, 0]).all())


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=["tanh", "identity", "relu", "custom"])
def test_in_place_step_equals_full_gradient_step(activation):
    """The backward sweep updates layer l in place right after g_{l-1} is formed; this must
    equal computing every gradient first (autograd) and updating afterwards."""
    model = small_model(activation, scaling=MIXED_SCALINGS)
    reference = autograd_gradients(model)
    expected = {
        name: model.parameters[name] - model.learning_rates[name].view(-1, 1, 1, 1) * grad
        for name, grad in reference.items()
    }
    forward = model.forward(DATA.x, keep=True)
    model.descent_step(forward, DATA.y)
    for name, value in expected.items():
        assert torch.allclose(model.parameters[name], value, rtol=0, atol=1e-12)
        assert not torch.equal(model.parameters[name], value + 1.0)  # sanity: it moved


def test_learning_rate_convention_is_lr_LMD_over_alpha_squared():
    """Z <- Z - lr (L M D / alpha^2) dR/dZ with R = mean over (N, d_out) of (f - y)^2."""
    depth, width, dim, alpha, lr = 5, 12, 8, 1.7, 0.3
    model = build_resnet(depth, width, dim, input_dim=5, output_dim=5, alpha=alpha, lr=lr)
    assert model.residual_scale.item() == pytest.approx(alpha / (depth * width))
    raw = lr * depth * width * dim / alpha**2
    assert model.learning_rates["u"].item() == pytest.approx(raw)
    before = {k: v.clone() for k, v in model.parameters.items()}
    grads = autograd_gradients(model)
    model.descent_step(model.forward(DATA.x, keep=True), DATA.y)
    for name in before:
        assert torch.allclose(model.parameters[name], before[name] - raw * grads[name], atol=1e-12)


def test_batched_seeds_equal_separate_runs():
    batch = train_resnet(6, 24, 16, seeds=6, steps=4)
    keys = ("outputs", "embeddings", "loss")
    # Any batches of >= 2 networks use the same BLAS kernels: bit-for-bit equal.
    for pair in ([0, 3], [5, 1], [2, 4]):
        part = train_resnet(6, 24, 16, seeds=pair, steps=4)
        for key in keys:
            assert torch.equal(getattr(part, key), getattr(batch, key)[pair])
        for key in part.movement:
            assert torch.equal(part.movement[key], batch.movement[key][pair])
    # A batch of one goes through MKL's single gemm instead of its batched gemm: equal to
    # rounding only.
    for index in range(6):
        alone = train_resnet(6, 24, 16, seeds=[index], steps=4)
        for key in keys:
            assert torch.allclose(
                getattr(alone, key)[0], getattr(batch, key)[index], rtol=1e-12, atol=1e-13
            )


def test_per_network_scalings_equal_separate_runs():
    batch = train_resnet(4, 16, 8, seeds=[0, 0, 0], scaling=MIXED_SCALINGS, steps=3)
    for index, scaling in enumerate(MIXED_SCALINGS):
        alone = train_resnet(4, 16, 8, seeds=[0, 7], scaling=scaling, steps=3)
        assert torch.allclose(alone.outputs[0], batch.outputs[index], rtol=1e-12, atol=1e-14)
        assert torch.allclose(alone.loss[0], batch.loss[index], rtol=1e-12)


def test_result_shapes_and_initialization():
    result = train_resnet(3, 10, 7, seeds=2, steps=4, record_layers=True, record_movement=True)
    assert result.outputs.shape == (2, 5, 10, 5)
    assert result.embeddings.shape == (2, 5, 10, 7)
    assert result.loss.shape == (2, 5)
    assert result.diverged_at.tolist() == [-1, -1]
    assert result.w_in.shape == (7, 5) and result.w_out.shape == (7, 5)
    assert result.states.shape == (2, 5, 4, 10, 7)
    assert torch.equal(result.states[:, :, -1], result.embeddings)
    h0 = DATA.x @ result.w_in.T
    assert torch.allclose(result.states[:, :, 0], h0.expand(2, 5, 10, 7))
    assert torch.allclose(result.outputs, result.embeddings @ result.w_out / 7)
    risk = ((result.outputs - DATA.y) ** 2).mean((-1, -2))
    assert torch.allclose(result.loss, risk)
    for name in ("u", "v", "preactivation"):
        assert result.movement[name].shape == (2, 5)
        assert bool((result.movement[name][:, 0] == 0).all())
        assert bool((result.movement[name][:, 1:] > 0).all())


def test_parameter_law_and_prefix_property():
    model = build_resnet(6, 400, 50, input_dim=5, output_dim=5, seeds=2)
    u = model.parameters["u"]
    assert u.shape == (2, 6, 400, 50)
    assert float(u.var()) == pytest.approx(50.0, rel=0.02)  # N(0, D) entries
    shallow = build_resnet(3, 400, 50, input_dim=5, output_dim=5, seeds=2)
    assert torch.equal(shallow.parameters["v"], model.parameters["v"][:, :3])


def test_coupled_embeddings_share_leading_rows():
    w_in_8, w_out_8 = coupled_embeddings(8, 5, 5, embedding_seed=3)
    w_in_32, w_out_32 = coupled_embeddings(32, 5, 5, embedding_seed=3)
    assert torch.equal(w_in_8, w_in_32[:8]) and torch.equal(w_out_8, w_out_32[:8])
    w_in_100, _ = coupled_embeddings(100, 5, 5, embedding_seed=3)  # across row blocks
    w_in_300, _ = coupled_embeddings(300, 5, 5, embedding_seed=3)
    assert torch.equal(w_in_100, w_in_300[:100])
    other, _ = coupled_embeddings(8, 5, 5, embedding_seed=4)
    assert not torch.equal(other, w_in_8)
    small = train_resnet(2, 4, 8, steps=1, embedding_seed=3)
    assert torch.equal(small.w_in, w_in_8) and torch.equal(small.w_out, w_out_8)
    big_in, big_out = coupled_embeddings(4000, 5, 5, embedding_seed=0)
    assert float(big_in.var()) == pytest.approx(1 / 5, rel=0.05)  # N(0, 1/d_in)
    assert float(big_out.var()) == pytest.approx(5.0, rel=0.05)  # N(0, d_out)


def test_antithetic_units_start_with_zero_drift():
    block = TwoLayerBlock("tanh", antithetic=True)
    model = build_resnet(4, 10, 6, input_dim=5, output_dim=5, block=block, seeds=2)
    h_last = model.forward(DATA.x).last
    assert torch.allclose(h_last, model.embed(DATA.x).expand(2, -1, -1), atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_float32_tracks_float64(activation):
    r64 = train_resnet(8, 32, 16, activation=activation, seeds=3, steps=6)
    r32 = train_resnet(8, 32, 16, activation=activation, seeds=3, steps=6, dtype=torch.float32)
    assert r32.outputs.dtype == torch.float32
    scale = float(r64.outputs.abs().max())
    assert float((r32.outputs.double() - r64.outputs).abs().max()) < 1e-5 * scale
    assert float((r32.embeddings.double() - r64.embeddings).abs().max()) < 1e-5 * float(
        r64.embeddings.abs().max()
    )
    assert torch.allclose(r32.loss.double(), r64.loss, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_matches_cpu(cuda_device, dtype):
    kwargs = dict(seeds=4, steps=5, dtype=dtype)
    cpu = train_resnet(8, 64, 32, **kwargs)
    gpu = train_resnet(8, 64, 32, device=cuda_device, **kwargs)
    assert gpu.outputs.device.type == "cpu"  # records come back to the host
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(gpu.outputs, cpu.outputs, rtol=tol, atol=tol)
    assert torch.allclose(gpu.loss, cpu.loss, rtol=tol, atol=tol)
    model = build_resnet(4, 16, 8, input_dim=5, output_dim=5, seeds=2, device=cuda_device)
    x, y = DATA.x.to(cuda_device), DATA.y.to(cuda_device)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in model.parameters.items()}
    reference = torch.autograd.grad(model.risk_of(leaves, x, y).sum(), list(leaves.values()))
    explicit = model.gradients(x, y)
    for name, grad in zip(leaves, reference, strict=True):
        assert relative_error(explicit[name], grad) < 1e-10


@pytest.mark.gpu
def test_cuda_divergence_and_limit(cuda_device):
    result = train_resnet(
        4, 16, 8, seeds=2, steps=4, lr=1e6, device=cuda_device, on_divergence="ignore"
    )
    assert bool((result.diverged_at >= 0).all())


def test_state_layout_auto_is_the_measured_fastest():
    block = TwoLayerBlock("tanh")
    assert block.state_layout == "auto"
    h64, h32 = torch.zeros(2, 10, 4), torch.zeros(2, 10, 4, dtype=torch.float32)
    assert not block.units_major(h64.double()) and not block.units_major(h32)
    assert block.units_major(h32[:, :1]) and block.units_major(h64[:, :1])  # N = 1: mat-vec
    block.state_layout = "samples"
    assert not block.units_major(h64[:, :1])
    block.state_layout = "units"
    assert block.units_major(h64.double()) and block.units_major(h32)
    block.state_layout = "rows"
    with pytest.raises(ValueError, match="state_layout"):
        block.units_major(h64)


@pytest.mark.parametrize(
    "activation", ["tanh", "identity", sine_activation], ids=["tanh", "identity", "custom"]
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_state_layouts_train_alike(activation, dtype):
    """The units-major path (the default for N = 1 on the CPU) against the
    plain samples-major path: the same products in another BLAS order, so equal to rounding
    (per-network scalings: the scale folded into r)."""
    results, forwards = {}, {}
    for layout in ("samples", "units"):
        model = small_model(activation, scaling=MIXED_SCALINGS, dtype=dtype)
        initial = {name: value.clone() for name, value in model.parameters.items()}
        model.block.state_layout = layout
        forwards[layout] = model.forward(DATA.x.to(dtype), keep=True)
        results[layout] = (train(model, DATA, 3), model.parameters)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert forwards["units"].caches[0][2] and not forwards["samples"].caches[0][2]
    (units, units_params), (samples, samples_params) = results["units"], results["samples"]
    for key in ("outputs", "embeddings", "loss"):
        ref = getattr(samples, key)
        assert torch.allclose(getattr(units, key), ref, rtol=0, atol=tol * float(ref.abs().max()))
    for name, ref in samples_params.items():
        scale = float(ref.abs().max())
        assert torch.allclose(units_params[name], ref, rtol=0, atol=tol * scale)
        assert not torch.equal(ref, initial[name])  # sanity: it trained


class _RecordingBlock(TwoLayerBlock):
    """A user's 2LP block whose ``initialize_layer`` notes the thread it ran on: it overrides
    the method without declaring it thread-safe again (``TwoLayerBlock`` does)."""

    def __init__(self):
        super().__init__("tanh")
        self.threads = set()

    def initialize_layer(self, generator, hidden_width, embedding_dim):
        import threading

        self.threads.add(threading.get_ident())
        return super().initialize_layer(generator, hidden_width, embedding_dim)


@pytest.mark.parametrize(
    "block",
    [TwoLayerBlock("tanh"), TwoLayerBlock("tanh", antithetic=True), "attention"],
    ids=["2LP", "antithetic", "attention"],
)
def test_parallel_draw_gives_the_serial_numbers(block, monkeypatch):
    """Networks drawn on threads (``draw_parameters(workers=...)``) get exactly the numbers of
    the serial draw, in both dtypes, and the parameters land in their own slots."""
    from deeplimit.training import model as model_module
    from deeplimit.training.attention import AttentionBlock

    monkeypatch.setattr(model_module, "PARALLEL_DRAW_NUMBERS", 0)  # small shapes go parallel
    block = AttentionBlock(tokens=3, key_dim=2) if block == "attention" else block
    indices = [4, 0, 9, 2, 7]
    for dtype in (torch.float64, torch.float32):
        kwargs = dict(seed=3, device=torch.device("cpu"), dtype=dtype)
        serial = model_module.draw_parameters(block, 3, 6, 5, indices, workers=1, **kwargs)
        for workers in (2, 3, 8):
            parallel = model_module.draw_parameters(
                block, 3, 6, 5, indices, workers=workers, **kwargs
            )
            assert serial.keys() == parallel.keys()
            for name in serial:
                assert torch.equal(serial[name], parallel[name]), (name, workers)
        # network 2 alone equals its slot in the batch
        alone = model_module.draw_parameters(block, 3, 6, 5, [9], workers=2, **kwargs)
        for name in serial:
            assert torch.equal(alone[name][:, 0], serial[name][:, 2])
            assert not torch.equal(serial[name][:, 0], serial[name][:, 1])


def test_parallel_draw_only_for_thread_safe_blocks_and_errors_surface(monkeypatch):
    import threading

    from deeplimit.training import model as model_module

    monkeypatch.setattr(model_module, "PARALLEL_DRAW_NUMBERS", 0)
    kwargs = dict(device=torch.device("cpu"), dtype=torch.float64, workers=2)
    block = _RecordingBlock()
    model_module.draw_parameters(block, 2, 4, 3, [0, 1, 2], **kwargs)
    assert block.threads == {threading.get_ident()}  # a user block stays on the caller's thread
    type(block).thread_safe_init = True  # declared by the class that overrides: threads
    try:
        block.threads.clear()
        model_module.draw_parameters(block, 2, 4, 3, [0, 1, 2], **kwargs)
        assert block.threads - {threading.get_ident()}  # (the probe of the shapes: the caller)
    finally:
        del type(block).thread_safe_init
    with pytest.raises(ValueError, match="hidden_width must be even"):
        model_module.draw_parameters(TwoLayerBlock(antithetic=True), 2, 5, 3, [0, 1], **kwargs)
    with pytest.raises(ValueError, match="workers"):
        model_module.draw_parameters(TwoLayerBlock(), 2, 4, 3, [0, 1], **kwargs | {"workers": 0})
