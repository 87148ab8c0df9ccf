"""The authors' conventions (deeplimit.training.authors, chizat.md §1.2, §1.5, §4.3): their data,
maps and units to the digit, the learning-rate map against an independent NumPy transcription of
their update rule, both error metrics, the kernels of the D -> infinity limit against empirical
per-coordinate variances, and the recorded adjoint."""

import math

import numpy as np
import pytest
import torch

from deeplimit.training import build_resnet, span_linear_limit, train
from deeplimit.training.authors import (
    ScaledTwoLayerBlock,
    authors_embedding_rates,
    authors_embeddings,
    authors_linear_task,
    authors_lr,
    authors_mean,
    authors_units,
    interpolate_depth,
    layer_error,
    rms_error,
    scaled_embeddings,
    span_kernels,
    train_with_adjoint,
)


def test_linear_task_is_the_authors_printed_numbers():
    task = authors_linear_task()
    # printed in their notebook: x = [0.480, -0.134, 0.626], y = [0.628, 0.266, -0.055]
    np.testing.assert_allclose(task.x[0].numpy(), [0.480, -0.134, 0.626], atol=6e-4)
    np.testing.assert_allclose(task.y[0].numpy(), [0.628, 0.266, -0.055], atol=6e-4)
    assert math.isclose(float(task.x.norm()), 0.8, rel_tol=1e-14)


def test_lr_map():
    assert authors_lr(1.0, code="julia", input_dim=5, output_dim=5) == 0.5
    assert authors_lr(1.0, code="julia", input_dim=5, output_dim=10) == 1.0
    assert math.isclose(authors_lr(0.1, code="python", input_dim=3, output_dim=3), 0.15)
    with pytest.raises(ValueError, match="code"):
        authors_lr(0.1, code="matlab", input_dim=3, output_dim=3)
    with pytest.raises(ValueError, match="eta"):
        authors_lr(-1.0, code="julia", input_dim=3, output_dim=3)


def _their_update(u, v, w_e, w_u, x, y, eta, steps):
    """The Python update of chizat.md §1.2 written out from the formulas (one network, alpha = 1,
    sigma = id, loss (1/N) 1/2 sum|f - y|^2, eta_u = eta_v = D): returns f after ``steps``."""
    d, m, depth = u.shape
    n = x.shape[1]
    for step in range(steps + 1):
        h = [w_e @ x]
        for layer in range(depth):
            p = u[:, :, layer].T @ h[-1] / d
            h.append(h[-1] + v[:, :, layer] @ p / (depth * m))
        f = w_u.T @ h[-1] / d
        if step == steps:
            return f
        b = [None] * (depth + 1)
        b[depth] = w_u @ (f - y) / d
        q = [None] * depth
        for layer in range(depth - 1, -1, -1):
            q[layer] = v[:, :, layer].T @ b[layer + 1]
            b[layer] = b[layer + 1] + u[:, :, layer] @ q[layer] / (depth * m * d)
        for layer in range(depth):
            grad_u = h[layer] @ q[layer].T / d
            grad_v = b[layer + 1] @ (u[:, :, layer].T @ h[layer] / d).T
            u[:, :, layer] -= d * eta / n * grad_u
            v[:, :, layer] -= d * eta / n * grad_v


def test_our_training_with_the_mapped_lr_is_the_authors_update():
    depth, width, dim, steps = 5, 6, 7, 3
    task = authors_linear_task()
    w_e, w_u = authors_embeddings(dim, w_seed=4096)
    units = authors_units(depth, width, dim, rep=1)
    u = units["u"][:, 0].permute(2, 1, 0).numpy().copy()  # (D, M, L)
    v = units["v"][:, 0].permute(2, 1, 0).numpy().copy()
    expected = _their_update(
        u, v, w_e.numpy(), w_u.numpy(), task.x.numpy().T, task.y.numpy().T, 0.1, steps
    )
    model = build_resnet(
        depth,
        width,
        dim,
        input_dim=3,
        output_dim=3,
        activation="identity",
        lr=authors_lr(0.1, code="python", input_dim=3, output_dim=3),
        embeddings=(w_e, w_u),
    )
    for name in ("u", "v"):
        model.storage[name].copy_(units[name])
    result = train(model, task, steps, record_movement=False)
    np.testing.assert_allclose(result.outputs[0, -1].numpy(), expected.T, rtol=1e-12, atol=1e-14)


def test_authors_maps_are_coupled_prefixes_with_unit_variance():
    small = authors_embeddings(10, w_seed=0)
    large = authors_embeddings(1000, w_seed=0)
    assert torch.equal(small[0], large[0][:10]) and torch.equal(small[1], large[1][:10])
    rng = np.random.RandomState(0)
    assert np.array_equal(large[0].numpy(), rng.randn(1000, 3))
    with pytest.raises(ValueError, match="embedding_dim"):
        authors_embeddings(1001, w_seed=0)


def test_scaled_maps_and_units_have_the_asked_variances():
    w_in, w_out = scaled_embeddings(4000, 3, 2, input_variance=2.0, output_variance=0.5)
    # variance estimates over 12000 / 8000 entries: standard error sqrt(2/n) relative
    assert abs(float(w_in.var()) / 2.0 - 1) < 4 * math.sqrt(2 / w_in.numel())
    assert abs(float(w_out.var()) / 0.5 - 1) < 4 * math.sqrt(2 / w_out.numel())
    default = scaled_embeddings(50, 3, 2)
    from deeplimit.training import coupled_embeddings

    reference = coupled_embeddings(50, 3, 2)
    assert torch.allclose(default[0], reference[0]) and torch.allclose(default[1], reference[1])
    block = ScaledTwoLayerBlock("identity", u_variance=4.0, v_variance=0.25)
    drawn = block.initialize_layer(torch.Generator().manual_seed(0), 200, 50)
    n = drawn["u"].numel()
    assert abs(float(drawn["u"].var()) / (4.0 * 50) - 1) < 4 * math.sqrt(2 / n)
    assert abs(float(drawn["v"].var()) / (0.25 * 50) - 1) < 4 * math.sqrt(2 / n)
    with pytest.raises(ValueError, match="u_variance"):
        ScaledTwoLayerBlock(u_variance=0.0)


def test_metrics():
    finite = torch.zeros(2, 4, 1, 3)  # (S, L+1, N, D)
    finite[0, 2] = 1.0
    finite[1, 1, 0, 0] = 3.0
    limit = torch.zeros(4, 1, 3)
    assert torch.allclose(layer_error(finite, limit), torch.tensor([1.0, 1.0]))
    assert torch.allclose(layer_error(finite, limit, reduce="mean"), torch.tensor([0.25, 0.25]))
    assert torch.allclose(rms_error(finite[:, -1], limit[-1]), torch.zeros(2))
    assert torch.allclose(rms_error(finite[:, 1], limit[1]), torch.tensor([0.0, math.sqrt(3)]))
    # the authors' treatment of diverged runs: zeroed, then averaged (biased low)
    assert authors_mean([1.0, 3.0, 5e3, math.nan]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reduce"):
        layer_error(finite, limit, reduce="median")


def test_interpolate_depth_is_exact_on_linear_functions():
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    values = (3 * grid - 1).reshape(-1, 1)
    out = interpolate_depth(values, 7)
    assert torch.allclose(out[:, 0], 3 * torch.arange(8, dtype=torch.float64) / 7 - 1)


def test_kernels_match_empirical_coordinate_variances_of_the_limit_paths():
    """Coordinates h_i = W[i] xi of the D -> infinity limit, W rows N(0, Gamma): their empirical
    variance over D = 20000 coordinates estimates Gamma_H(s)[k, k] with relative standard error
    sqrt(2/D) (Gaussian); tolerance 4 standard errors at each of a few (s, k)."""
    task = authors_linear_task()
    limit = span_linear_limit(
        3,
        data=task,
        lr=0.15,
        steps=4,
        infinite_dim=True,
        embedding_variances=(1.0, 1.0),
        intervals=32,
    )
    kernels = span_kernels(limit)
    w_e, w_u = scaled_embeddings(20000, 3, 3, input_variance=1.0, output_variance=1.0)
    h, beta = kernels.coordinates(torch.cat([w_e, w_u], dim=1))
    tol = 4 * math.sqrt(2 / 20000)
    for k in (0, 2, 4):
        for m in (0, 16, 32):
            empirical = float(h[k, m, 0].var())
            assert abs(empirical / float(kernels.variance_h(k)[m]) - 1) < tol
    for k in (0, 3):
        for m in (0, 32):
            empirical = float(beta[k, m, 0].var())
            assert abs(empirical / float(kernels.variance_b(k)[m]) - 1) < tol
    assert math.isclose(float(kernels.variance_h(0)[0]), 0.64, rel_tol=1e-12)


def test_wide_network_coordinates_have_the_kernel_variances():
    """A wide linear network (D = 256, L = 16, M = 1024): per-coordinate variances of h_L and of
    the adjoint beta_0 = D dR/dh_0 against Gamma_H(1)[k, k], Gamma_B(0)[k, k] of the depth-L
    D -> infinity limit. Tolerance: 4 sampling standard errors (sqrt(2/D) relative) plus the
    bound |var(h) - var(H)| <= 2 sd(H) e + e^2 with e the measured RMS of h - H on these
    coordinates (the finite-width deviation)."""
    depth, width, dim, steps = 16, 1024, 256, 3
    task = authors_linear_task()
    w_e, w_u = scaled_embeddings(dim, 3, 3, input_variance=1.0, output_variance=1.0)
    model = build_resnet(
        depth,
        width,
        dim,
        input_dim=3,
        output_dim=3,
        activation="identity",
        lr=0.15,
        embeddings=(w_e, w_u),
    )
    record = train_with_adjoint(model, task, steps)
    limit = span_linear_limit(
        dim,
        data=task,
        lr=0.15,
        steps=steps,
        depth=depth,
        infinite_dim=True,
        embeddings=(w_e, w_u),
        embedding_variances=(1.0, 1.0),
    )
    kernels = span_kernels(limit)
    h_lim, beta_lim = kernels.coordinates(torch.cat([w_e, w_u], dim=1))
    for k in range(steps + 1):
        for finite, limit_path, variance in (
            (record.states[0, k, -1, 0], h_lim[k, -1, 0], kernels.variance_h(k)[-1]),
            *(
                [(record.adjoint[0, k, 0, 0], beta_lim[k, 0, 0], kernels.variance_b(k)[0])]
                if k < steps
                else []
            ),
        ):
            e = float((finite - limit_path).pow(2).mean().sqrt())
            sd = math.sqrt(float(variance))
            allowance = 4 * math.sqrt(2 / dim) * float(variance) + 2 * sd * e + e * e
            assert abs(float(finite.pow(2).mean()) - float(variance)) < allowance
            assert e < 0.5 * sd  # the network is close to its limit coordinate by coordinate


def test_train_with_adjoint_matches_train_and_autograd():
    task = authors_linear_task()
    model = build_resnet(6, 8, 10, input_dim=3, output_dim=3, activation="tanh", seeds=2)
    twin = build_resnet(6, 8, 10, input_dim=3, output_dim=3, activation="tanh", seeds=2)
    first = {k: v.clone() for k, v in model.storage.items()}
    record = train_with_adjoint(model, task, 2)
    reference = train(twin, task, 2, record_layers=True, record_movement=False)
    assert torch.equal(record.states, reference.states)
    # adjoint at step 0 by autograd on the initial parameters: beta_l = D dR/dh_l
    fresh = build_resnet(6, 8, 10, input_dim=3, output_dim=3, activation="tanh", seeds=2)
    assert all(torch.equal(fresh.storage[k], first[k]) for k in first)
    x = task.x.to(torch.float64)
    h = fresh.embed(x).expand(2, -1, -1).clone().requires_grad_(True)
    states = [h]
    for index in range(6):
        states.append(states[-1] + fresh.block.branch(states[-1], fresh.layer(index)) / 48)
    for s in states:
        s.retain_grad()
    fresh.risk(fresh.readout(states[-1]), task.y).sum().backward()
    for index in (0, 3, 6):
        assert torch.allclose(record.adjoint[:, 0, index], 10 * states[index].grad, atol=1e-13)


def test_span_limit_variance_options():
    task = authors_linear_task()
    with pytest.raises(ValueError, match="embedding_variances"):
        span_linear_limit(8, data=task, steps=1, embedding_variances=(1.0, 1.0))
    with pytest.raises(ValueError, match="embedding_variances"):
        span_linear_limit(
            8, data=task, steps=1, infinite_dim=True, embeddings=scaled_embeddings(8, 3, 3)
        )
    with pytest.raises(ValueError, match=r"embedding_variances\[1\]"):
        span_linear_limit(8, data=task, steps=1, infinite_dim=True, embedding_variances=(1, 0))
    # the default D -> infinity Gram matrix is blockdiag(I/d_in, d_out I)
    default = span_linear_limit(8, data=task, steps=2, infinite_dim=True, intervals=16)
    explicit = span_linear_limit(
        8, data=task, steps=2, infinite_dim=True, intervals=16, embedding_variances=(1 / 3, 3.0)
    )
    assert torch.equal(default.outputs, explicit.outputs)
    assert default.details["adjoint"].shape == default.details["coefficients"].shape
    assert torch.isnan(default.details["adjoint"][-1]).all()


def _their_trainable_update(u, v, w_e, w_u, x, y, eta, steps):
    """The trainable-embedding update of chizat.md §1.2 written out from the formulas (sigma =
    id, alpha = 1, eta_u = eta_v = D, eta_we = eta_wu = 1): returns f after ``steps``."""
    d, m, depth = u.shape
    n = x.shape[1]
    for step in range(steps + 1):
        h = [w_e @ x]
        for layer in range(depth):
            h.append(h[-1] + v[:, :, layer] @ (u[:, :, layer].T @ h[-1] / d) / (depth * m))
        f = w_u.T @ h[-1] / d
        if step == steps:
            return f
        nabla = f - y
        b = [None] * (depth + 1)
        b[depth] = w_u @ nabla / d
        q = [None] * depth
        for layer in range(depth - 1, -1, -1):
            q[layer] = v[:, :, layer].T @ b[layer + 1]
            b[layer] = b[layer + 1] + u[:, :, layer] @ q[layer] / (depth * m * d)
        for layer in range(depth):
            grad_u = h[layer] @ q[layer].T / d
            grad_v = b[layer + 1] @ (u[:, :, layer].T @ h[layer] / d).T
            u[:, :, layer] -= d * eta / n * grad_u
            v[:, :, layer] -= d * eta / n * grad_v
        w_e = w_e - eta / n * (b[0] @ x.T)
        w_u = w_u - eta / n * (h[-1] @ nabla.T)


def test_trainable_embedding_variant_is_the_authors_update():
    depth, width, dim, steps = 4, 5, 6, 3
    task = authors_linear_task()
    w_e, w_u = authors_embeddings(dim, w_seed=0)
    units = authors_units(depth, width, dim, rep=2)
    u = units["u"][:, 0].permute(2, 1, 0).numpy().copy()
    v = units["v"][:, 0].permute(2, 1, 0).numpy().copy()
    expected = _their_trainable_update(
        u, v, w_e.numpy(), w_u.numpy(), task.x.numpy().T, task.y.numpy().T, 0.1, steps
    )
    model = build_resnet(
        depth,
        width,
        dim,
        input_dim=3,
        output_dim=3,
        activation="identity",
        lr=0.15,
        embeddings=(w_e, w_u),
    )
    for name in ("u", "v"):
        model.storage[name].copy_(units[name])
    original = w_e.clone()
    record = train_with_adjoint(
        model, task, steps, embedding_rates=authors_embedding_rates(0.1, output_dim=3)
    )
    np.testing.assert_allclose(record.outputs[0, -1].numpy(), expected.T, rtol=1e-12, atol=1e-14)
    assert torch.equal(w_e, original)  # the caller's maps are not modified
    several = build_resnet(4, 5, 6, input_dim=3, output_dim=3, seeds=2)
    with pytest.raises(ValueError, match="one network"):
        train_with_adjoint(several, task, 1, embedding_rates=(0.1, 0.1))


def test_per_network_embeddings_batch_equals_separate_runs():
    from deeplimit.training.authors import with_embeddings

    task = authors_linear_task()
    maps = [authors_embeddings(12, w_seed=w) for w in (0, 2, 4)]
    separate = []
    for w_e, w_u in maps:
        model = build_resnet(
            5,
            7,
            12,
            input_dim=3,
            output_dim=3,
            activation="identity",
            lr=0.15,
            seeds=[1],
            embeddings=(w_e, w_u),
        )
        separate.append(train(model, task, 3, record_movement=False, record_layers=True))
    model = build_resnet(
        5,
        7,
        12,
        input_dim=3,
        output_dim=3,
        activation="identity",
        lr=0.15,
        seeds=[1, 1, 1],
        embeddings=maps[0],
    )
    model = with_embeddings(
        model, torch.stack([m[0] for m in maps]), torch.stack([m[1] for m in maps])
    )
    batched = train(model, task, 3, record_movement=False, record_layers=True)
    for s, result in enumerate(separate):
        torch.testing.assert_close(batched.states[s], result.states[0], rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(batched.outputs[s], result.outputs[0], rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="w_in"):
        with_embeddings(model, torch.zeros(2, 12, 3), torch.zeros(3, 12, 3))
