"""Fast variants of the checkable claims of chizat.md §6 that need no limit: C1, C2, C7."""

import numpy as np
import pytest
import torch

from deeplimit.training import TwoLayerBlock, build_resnet, synthetic_task, train_resnet

DATA = synthetic_task()


def initial_drift(depth, width, dim, seeds, seed):
    """Per seed, the mean square over (coordinates, samples) of h_L - h_0 at initialization."""
    model = build_resnet(depth, width, dim, input_dim=5, output_dim=5, seeds=seeds, seed=seed)
    h0 = model.embed(DATA.x)
    return ((model.forward(DATA.x).last - h0) ** 2).flatten(1).mean(1), h0


def predicted_drift(depth, width, dim, h0):
    """C1: (D/(LM)) mean_n E[tanh(g_n)^2], g_n ~ N(0, ||h_0(x_n)||^2 / D) (Gauss-Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    variances = ((h0**2).sum(1) / dim).numpy()
    second_moment = np.mean([np.sum(weights * np.tanh(np.sqrt(v) * nodes) ** 2) for v in variances])
    return dim / (depth * width) * second_moment


@pytest.mark.parametrize("shape", [(32, 16, 64), (32, 16, 256)])
def test_c1_initial_embedding_drift(shape):
    """RMS of h_L - h_0 at init = sqrt(D/(LM)) sqrt(E[sigma(g)^2]) within 5 %, the 5 % band
    resolved by the seed spread (ratio +- 3 standard errors inside it)."""
    depth, width, dim = shape
    seeds = 64
    mean_square, h0 = initial_drift(depth, width, dim, seeds, seed=11)
    predicted = predicted_drift(depth, width, dim, h0)
    ratio = float(mean_square.mean().sqrt()) / np.sqrt(predicted)
    standard_error = 0.5 * float(mean_square.std() / mean_square.mean()) / np.sqrt(seeds)
    assert abs(ratio - 1.0) + 3.0 * standard_error < 0.05


def test_c2_drift_depends_on_the_hidden_width_lm_only():
    splits = [(512, 1), (128, 4), (32, 16), (8, 64)]
    rms = []
    for index, (depth, width) in enumerate(splits):
        mean_square, _ = initial_drift(depth, width, 64, seeds=16, seed=100 + index)
        rms.append(float(mean_square.mean().sqrt()))
    ratios = np.array(rms) / np.mean(rms)
    assert np.all(np.abs(ratios - 1.0) < 0.05)


def test_c7_lazy_units_move_like_one_over_alpha_function_does_not():
    """C7 at the probe's shape (D=32, L=16, M=256, K=5). Antithetic units (u, +-v) make the
    initial function alpha-independent; with i.i.d. units the initial fluctuation
    alpha sqrt(D/(LM)) changes the task for alpha >~ 8 here (see test below)."""
    alphas = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    preactivation, function = [], []
    for alpha in alphas:
        result = train_resnet(
            16,
            256,
            32,
            steps=5,
            seeds=2,
            alpha=alpha,
            block=TwoLayerBlock("tanh", antithetic=True),
            record_movement=True,
        )
        preactivation.append(float(result.movement["preactivation"][:, -1].mean()))
        change = result.outputs[:, -1] - result.outputs[:, 0]
        function.append(float(change.pow(2).mean().sqrt()))
    unit_slope = np.polyfit(np.log(alphas), np.log(preactivation), 1)[0]
    assert unit_slope == pytest.approx(-1.0, abs=0.1)
    function = np.array(function)
    assert np.all(np.abs(function / function.mean() - 1.0) < 0.05)


def test_c7_with_iid_units_function_movement_grows_once_alpha_is_large():
    """Documents why the test above uses antithetic units (not a claim of the paper)."""
    moves = []
    for alpha in (1.0, 32.0):
        result = train_resnet(16, 256, 32, steps=5, seeds=2, alpha=alpha)
        moves.append(float((result.outputs[:, -1] - result.outputs[:, 0]).pow(2).mean().sqrt()))
    assert moves[1] > 1.5 * moves[0]


def test_unit_movement_statistics_match_their_definition():
    result = train_resnet(3, 8, 6, steps=2, seeds=2, record_movement=True)
    model = build_resnet(3, 8, 6, input_dim=5, output_dim=5, seeds=2)
    u0 = model.parameters["u"].clone()
    forward = model.forward(DATA.x, keep=True)
    model.descent_step(forward, DATA.y)
    forward = model.forward(DATA.x, keep=True)
    model.descent_step(forward, DATA.y)
    delta = model.parameters["u"] - u0  # (S, L, M, D)
    expected_u = (delta.pow(2).sum(-1) / 6).mean((1, 2)).sqrt()
    h0 = DATA.x @ model.w_in.T
    shift = torch.einsum("slmd,nd->slmn", delta, h0) / 6
    expected_pre = shift.pow(2).mean((1, 2, 3)).sqrt()
    assert torch.allclose(result.movement["u"][:, 2], expected_u)
    assert torch.allclose(result.movement["preactivation"][:, 2], expected_pre)
