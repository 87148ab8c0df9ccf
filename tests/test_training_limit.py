"""The Neural Mean ODE limit (chizat.md §2.4) and the convergence rates of finite networks to it
(§6: C3–C6, C8, C9). Rates are asserted, not the paper's constants."""

import math

import numpy as np
import pytest
import torch

from deeplimit.training import (
    exact_linear_limit,
    limit_error,
    mean_ode_limit,
    reference_limit,
    train_resnet,
)


def slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_limit_uses_the_same_maps_and_conventions_as_train_resnet():
    limit = mean_ode_limit(12, steps=3, embedding_seed=5, activation="identity")
    finite = train_resnet(2, 3, 12, steps=3, embedding_seed=5, activation="identity")
    assert limit.method == "exact"
    assert torch.equal(limit.w_in, finite.w_in) and torch.equal(limit.w_out, finite.w_out)
    assert limit.outputs.shape == (4, 10, 5) and limit.embeddings.shape == (4, 10, 12)
    # A_0 = 0: the limit starts at h(s) = h(0) = W_in x for every s.
    h0 = finite.x @ finite.w_in.T
    assert torch.allclose(limit.states[0], h0.expand_as(limit.states[0]))
    assert torch.allclose(limit.outputs[0], h0 @ limit.w_out / 12)
    assert torch.allclose(limit.loss, ((limit.outputs - finite.y) ** 2).mean((-1, -2)))
    assert bool((limit.loss[1:] < limit.loss[0]).all())


def test_exact_limit_is_fourth_order_in_the_depth_grid():
    kwargs = dict(steps=4, lr=0.5)
    fine = exact_linear_limit(8, intervals=256, estimate_error=False, **kwargs)
    errors = []
    for intervals in (8, 16, 32):
        coarse = exact_linear_limit(8, intervals=intervals, estimate_error=False, **kwargs)
        errors.append(float((coarse.embeddings - fine.embeddings).abs().max()))
    assert slope([8, 16, 32], errors) < -3.5
    budget = exact_linear_limit(8, intervals=64, **kwargs).error_budget["discretization"]
    assert budget < 1e-7


def test_linear_slope_parameter_is_respected():
    """sigma(x) = a x is the identity network with alpha -> a alpha and lr -> lr a / alpha."""
    a = exact_linear_limit(6, activation="linear:a=2", alpha=1.0, steps=3, estimate_error=False)
    finite = train_resnet(64, 256, 6, activation="linear:a=2", steps=3, seeds=4)
    error = limit_error(finite, a, step=3).item()
    assert error < 3.0 * 2 * math.sqrt(6 / (64 * 256))


def test_c9_c8_linear_nets_converge_to_the_exact_limit_at_rate_one_half():
    """C9 (embeddings) and C8 (outputs): error vs M at fixed L, D slopes -1/2."""
    dim, depth, steps, widths = 16, 32, 6, [16, 32, 64, 128, 256, 512, 1024]
    limit = mean_ode_limit(dim, steps=steps, activation="identity")
    embedding_errors, output_errors = [], []
    for width in widths:
        finite = train_resnet(
            depth, width, dim, activation="identity", steps=steps, seeds=8, record_movement=False
        )
        embedding_errors.append(limit_error(finite, limit, step=steps).item())
        output_errors.append(limit_error(finite, limit, step=steps, quantity="outputs").item())
    assert slope(widths, embedding_errors) == pytest.approx(-0.5, abs=0.05)
    assert slope(widths, output_errors) == pytest.approx(-0.5, abs=0.1)
    ratio = np.array(embedding_errors) / np.sqrt(dim / (depth * np.array(widths)))
    assert ratio.min() > 0.5 and ratio.max() < 2.0  # error = c sqrt(D/(LM)), c = O(1)


def test_c4_error_grows_like_sqrt_d():
    depth, width, steps, dims = 16, 256, 6, [16, 32, 64, 128]
    errors = []
    for dim in dims:
        limit = exact_linear_limit(dim, steps=steps, intervals=64, estimate_error=False)
        finite = train_resnet(
            depth, width, dim, activation="identity", steps=steps, seeds=6, record_movement=False
        )
        errors.append(limit_error(finite, limit, step=steps).item())
    assert slope(dims, errors) == pytest.approx(0.5, abs=0.15)


def test_c6_error_grows_like_alpha():
    depth, width, dim, steps, alphas = 32, 128, 16, 6, [1.0, 2.0, 4.0, 8.0]
    errors = []
    for alpha in alphas:
        limit = exact_linear_limit(
            dim, steps=steps, alpha=alpha, intervals=64, estimate_error=False
        )
        finite = train_resnet(
            depth,
            width,
            dim,
            activation="identity",
            steps=steps,
            seeds=8,
            alpha=alpha,
            record_movement=False,
        )
        errors.append(limit_error(finite, limit, step=steps).item())
    assert slope(alphas, errors) == pytest.approx(1.0, abs=0.15)


def test_c5_euler_term_is_order_one_over_depth_and_width_independent():
    dim, steps = 8, 10
    limit = exact_linear_limit(dim, steps=steps)
    depths = [2, 4, 8, 16, 32]
    bias = []
    for depth in depths:
        layered = exact_linear_limit(dim, steps=steps, depth=depth)
        bias.append(float(((layered.embeddings[-1] - limit.embeddings[-1]) ** 2).mean().sqrt()))
    assert slope(depths, bias) == pytest.approx(-1.0, abs=0.15)
    # Finite networks: their seed mean is the infinite-width depth-L limit for every M (the
    # bias w.r.t. the Mean ODE is the Euler term alone), within the seed noise.
    seeds = 32
    for depth in (2, 8):
        layered = exact_linear_limit(dim, steps=steps, depth=depth)
        for width in (64, 512):
            finite = train_resnet(
                depth,
                width,
                dim,
                activation="identity",
                steps=steps,
                seeds=seeds,
                record_movement=False,
            )
            last = finite.embeddings[:, -1]
            noise = float((last.var(0) / seeds).mean().sqrt())
            deviation = float(((last.mean(0) - layered.embeddings[-1]) ** 2).mean().sqrt())
            euler = float(((layered.embeddings[-1] - limit.embeddings[-1]) ** 2).mean().sqrt())
            assert deviation < 2.0 * noise + 0.25 * euler


def test_reference_limit_agrees_with_exact_limit_within_its_budget():
    dim, steps = 8, 4
    exact = exact_linear_limit(dim, steps=steps)
    reference = reference_limit(
        dim, activation="identity", steps=steps, depth=32, hidden_width=256, seeds=8
    )
    budget = reference.error_budget
    assert reference.method == "reference" and "L=32" in reference.description
    error = float(((reference.embeddings[-1] - exact.embeddings[-1]) ** 2).mean().sqrt())
    assert error < 3.0 * budget["embeddings_total"]
    assert budget["embeddings_euler"] > 0 and budget["embeddings_clt"] > 0
    # The budget is not vacuous: it is of the order of the error of one network.
    single = float(((reference.embeddings[-1] * 0 + 1) * math.sqrt(dim / (32 * 256))).mean())
    assert budget["embeddings_total"] < single


def test_particle_solver_agrees_with_exact_limit():
    dim, steps = 8, 4
    exact = exact_linear_limit(dim, steps=steps)
    particles = mean_ode_limit(
        dim,
        activation="identity",
        steps=steps,
        method="particles",
        reference_depth=32,
        reference_width=256,
        reference_seeds=8,
    )
    assert particles.method == "particles"
    error = float(((particles.embeddings[-1] - exact.embeddings[-1]) ** 2).mean().sqrt())
    assert error < 3.0 * particles.error_budget["embeddings_total"] + 0.002
    plain = reference_limit(
        dim, activation="identity", steps=steps, depth=32, hidden_width=256, seeds=8
    )
    plain_error = float(((plain.embeddings[-1] - exact.embeddings[-1]) ** 2).mean().sqrt())
    assert error < plain_error  # extrapolation removes the 1/L term


def test_nonlinear_limit_reports_its_reference():
    limit = mean_ode_limit(
        8, activation="tanh", steps=2, reference_depth=8, reference_width=32, reference_seeds=2
    )
    assert limit.method == "reference"
    assert "L=8" in limit.description and "M=32" in limit.description
    assert set(limit.error_budget) >= {"embeddings_clt", "embeddings_euler", "outputs_total"}
    finite = train_resnet(4, 8, 8, steps=2, seeds=2)
    assert torch.equal(limit.w_in, finite.w_in)
    assert limit_error(finite, limit).shape == (3,)


@pytest.mark.slow
def test_c3_tanh_error_vs_width_against_same_depth_reference():
    """C3: tanh nets vs a seed-averaged same-depth reference (M = 4096, 16 seeds)."""
    dim, depth, steps, widths = 32, 16, 6, [16, 32, 64, 128, 256]
    reference = reference_limit(dim, steps=steps, depth=depth, hidden_width=4096, seeds=16)
    errors = []
    for width in widths:
        finite = train_resnet(depth, width, dim, steps=steps, seeds=8, record_movement=False)
        errors.append(limit_error(finite, reference, step=steps).item())
    assert reference.error_budget["embeddings_clt"] < errors[-1] / 5
    assert slope(widths, errors) == pytest.approx(-0.5, abs=0.08)


def test_diverged_limit_is_flagged_like_train_resnet():
    """lr = 1e6 used to give NaN losses with no flag. The limit now uses train_resnet's rule:
    diverged_at = first step with a non-finite loss or one above explosion_factor x
    max(R_0, mean y^2), later records NaN, a TrainingDivergenceWarning (or the error)."""
    from deeplimit.training import TrainingDivergedError, TrainingDivergenceWarning
    from deeplimit.training.limit import span_linear_limit

    with pytest.warns(TrainingDivergenceWarning, match="exact limit diverged at step 1"):
        limit = mean_ode_limit(8, lr=1e6, steps=4, activation="identity")
    assert limit.diverged and limit.diverged_at == 1
    assert bool(torch.isfinite(limit.loss[0])) and bool(limit.loss[2:].isnan().all())
    assert bool(limit.outputs[2:].isnan().all()) and bool(limit.states[2:].isnan().all())
    assert math.isfinite(limit.error_budget["discretization"])  # over the steps before it
    finite = train_resnet(4, 8, 8, lr=1e6, steps=4, activation="identity", on_divergence="ignore")
    assert int(finite.diverged_at[0]) == limit.diverged_at  # the same rule
    with pytest.raises(TrainingDivergedError, match="diverged at step 1") as info:
        mean_ode_limit(8, lr=1e6, steps=4, on_divergence="raise", activation="identity")
    assert info.value.step == 1
    # a threshold crossed while still finite, at discrete depth, and in the span solver
    with pytest.warns(TrainingDivergenceWarning, match="exact-layers limit diverged at step 1"):
        layers = exact_linear_limit(8, lr=1e6, steps=4, depth=16)
    assert math.isfinite(float(layers.loss[1])) and layers.loss[1] > 1e6 * layers.loss[0]
    for kwargs in ({"lr": 1e6}, {"lr": 50.0, "infinite_dim": True}):
        with pytest.warns(TrainingDivergenceWarning, match="span limit diverged"):
            span = span_linear_limit(8, steps=4, **kwargs)
        assert span.diverged and bool(
            span.details["coefficients"][span.diverged_at + 1 :].isnan().all()
        )
    # a converging run is unchanged and not flagged
    quiet = mean_ode_limit(8, lr=0.5, steps=4, on_divergence="raise", activation="identity")
    assert not quiet.diverged and quiet.diverged_at == -1 and bool(quiet.loss.isfinite().all())
    with pytest.raises(ValueError, match="on_divergence must be one of"):
        mean_ode_limit(8, on_divergence="sometimes")
    with pytest.raises(ValueError, match="explosion_factor must be a finite number > 0"):
        mean_ode_limit(8, explosion_factor=0)


def test_reference_limit_whose_networks_diverge_is_flagged():
    """Before: a ValueError ("needs at least 2 non-diverged seeds"), a bad-input error for a
    numerical outcome. Now the reference limit diverges where fewer than 2 networks are left."""
    from deeplimit.training import TrainingDivergenceWarning

    kwargs = dict(activation="tanh", steps=3, reference_depth=4, reference_width=8)
    with pytest.warns(TrainingDivergenceWarning, match="reference limit diverged at step 1"):
        limit = mean_ode_limit(6, lr=1e6, reference_seeds=2, **kwargs)
    assert limit.diverged_at == 1 and bool(limit.loss[2:].isnan().all())
    assert all(math.isfinite(v) for v in limit.error_budget.values())  # at step 0
    assert limit.details["diverged"] == 4
    with pytest.warns(TrainingDivergenceWarning, match="diverged at step"):
        mean_ode_limit(6, lr=1e6, reference_seeds=2, method="particles", **kwargs)
