"""Parametrizations (chizat.md §1.1–§1.3, §3 phase diagram)."""

import math

import pytest
import torch

from deeplimit.training import (
    LazyScaling,
    MeanFieldScaling,
    PowerLawScaling,
    predicted_regime,
    train_resnet,
)

SHAPES = [(4, 16, 8), (64, 256, 64), (3, 1, 1000)]


@pytest.mark.parametrize("shape", SHAPES)
def test_mean_field_scaling_numbers(shape):
    depth, width, dim = shape
    scaling = MeanFieldScaling(alpha=2.0, lr=0.3)
    resolved = scaling.resolve(depth, width, dim)
    assert resolved.residual_scale == pytest.approx(2.0 / (depth * width))
    assert resolved.lr_for("u") == pytest.approx(0.3 * depth * width * dim / 4.0)
    assert scaling.effective_alpha(depth, width, dim) == pytest.approx(2.0)
    assert scaling.effective_lr(depth, width, dim) == pytest.approx(0.3)
    # alpha = 1 is the critical 2LP scale sqrt(D)/(LM) in the normalized units of §1.3.
    critical = MeanFieldScaling().normalized_residual_scale(depth, width, dim)
    assert critical == pytest.approx(math.sqrt(dim) / (depth * width))


@pytest.mark.parametrize("shape", SHAPES)
def test_phase_point_one_one_is_mean_field(shape):
    point = PowerLawScaling.phase_point(1.0, 1.0, alpha=1.5, lr=0.4).resolve(*shape)
    reference = MeanFieldScaling(alpha=1.5, lr=0.4).resolve(*shape)
    assert point.residual_scale == pytest.approx(reference.residual_scale)
    assert point.learning_rate == pytest.approx(reference.learning_rate)
    assert PowerLawScaling().resolve(*shape).learning_rate == pytest.approx(
        MeanFieldScaling().resolve(*shape).learning_rate
    )


def test_alpha_line_of_the_phase_diagram_is_the_alpha_family():
    depth, width, dim = 8, 32, 16
    for a in (0.5, 0.75, 1.25):
        alpha = float(depth * width) ** (1 - a)
        point = PowerLawScaling.phase_point(a, 2 * a - 1).resolve(depth, width, dim)
        family = MeanFieldScaling(alpha=alpha, lr=0.5).resolve(depth, width, dim)
        assert point.residual_scale == pytest.approx(family.residual_scale)
        assert point.learning_rate == pytest.approx(family.learning_rate)


def test_lazy_scaling_is_alpha_equal_to_a_power_of_lm():
    lazy = LazyScaling(exponent=0.25, alpha0=2.0)
    assert lazy.effective_alpha(16, 16, 8) == pytest.approx(2.0 * 256**0.25)
    resolved = lazy.resolve(16, 16, 8)
    assert resolved.learning_rate == pytest.approx(0.5 * 256 * 8 / (2.0 * 256**0.25) ** 2)


def test_relative_learning_rates_per_parameter():
    scaling = MeanFieldScaling(lr=0.5, relative_lrs={"u": 2.0})
    result = train_resnet(2, 4, 8, steps=1, scaling=scaling)
    assert result.learning_rates["u"].item() == pytest.approx(2 * result.learning_rates["v"].item())


def test_training_with_equivalent_scalings_is_identical():
    default = train_resnet(3, 8, 8, steps=3, seeds=2)
    power = train_resnet(3, 8, 8, steps=3, seeds=2, scaling=PowerLawScaling.phase_point(1, 1))
    assert torch.allclose(default.outputs, power.outputs, rtol=1e-13, atol=1e-14)
    lazy = train_resnet(3, 8, 8, steps=3, seeds=2, scaling=LazyScaling(exponent=0.3))
    assert bool(torch.isfinite(lazy.loss).all())


@pytest.mark.parametrize(
    "a, b, word",
    [
        (1.0, 1.0, "mean ODE"),
        (0.75, 0.5, "lazy ODE"),
        (0.5, 0.0, "critical fluctuations"),
        (0.25, -0.5, "blows up"),
        (1.5, 2.0, "outside the theory"),
        (1.0, 1.5, "unstable"),
        (1.0, 0.5, "frozen"),
    ],
)
def test_predicted_regimes(a, b, word):
    assert word in predicted_regime(a, b)
