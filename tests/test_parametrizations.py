"""Named parametrizations (training/parametrizations.py): what each prescribes, and that the
deeplimit model trained under one takes the same GD step as its PyTorch form."""

import math

import pytest
import torch

from deeplimit.training import MeanFieldScaling, build_resnet, synthetic_task, train
from deeplimit.training.attention import AttentionBlock
from deeplimit.training.parametrizations import (
    PARAMETRIZATIONS,
    CriticalScaling,
    StandardParametrization,
    parametrization,
)

torch.set_num_threads(1)

# exponents of (L, M, D) in: residual scale c, raw lr of v, raw lr of u
EXPONENTS = {
    "standard": ((0, -0.5, -0.5), (0, 1, 1), (0, 0, 2)),
    "width-mup": ((0, -1, -0.5), (0, 1, 1), (0, 1, 2)),
    "depth-mup": ((-0.5, -1, -0.5), (0, 1, 1), (0, 1, 2)),
    "completep": ((-1, -1, -0.5), (1, 1, 1), (1, 1, 2)),
    "critical": ((-1, -1, 0), (1, 1, 1), (1, 1, 1)),
}


def _numbers(p, shape):
    r = p.resolve(*shape)
    return r.residual_scale, r.lr_for("v"), r.lr_for("u")


@pytest.mark.parametrize("key", list(PARAMETRIZATIONS))
def test_exponents_in_depth_width_and_dimension(key):
    p = parametrization(key, lr=0.3)
    base = (4, 8, 16)
    values = _numbers(p, base)
    for axis in range(3):
        shape = list(base)
        shape[axis] *= 2
        doubled = _numbers(p, tuple(shape))
        for quantity in range(3):
            measured = math.log2(doubled[quantity] / values[quantity])
            assert measured == pytest.approx(EXPONENTS[key][quantity][axis], abs=1e-12), (
                key,
                quantity,
                axis,
            )
    # q, k (attention) follow u, the input side
    r = p.resolve(*base)
    assert r.lr_for("q") == r.lr_for("k") == r.lr_for("u")


def test_documented_constants():
    c, lr_v, lr_u = _numbers(StandardParametrization(lr=0.5), (3, 10, 20))
    assert c**2 * 20 * 10 == pytest.approx(1 / 3)  # Var(c v) = 1/(3 M): PyTorch's default
    assert lr_v == pytest.approx(3 * 0.5 * 10 * 20)
    assert lr_u == pytest.approx(0.5 * 400)
    mean_field = MeanFieldScaling(alpha=2.0, lr=0.3).resolve(3, 10, 20)
    critical = CriticalScaling(alpha=2.0, lr=0.3).resolve(3, 10, 20)
    assert critical.residual_scale == pytest.approx(mean_field.residual_scale)
    for name in ("u", "v", "q"):
        assert critical.lr_for(name) == pytest.approx(mean_field.lr_for(name))


def _pytorch_form_step(p, model, x, y, depth, width, dim):
    """One SGD step of h <- h + m W2' tanh(W1 h) written with autograd (PyTorch form)."""
    form = p.pytorch_form(depth, width, dim)
    c = p.residual_scale(depth, width, dim)
    u = model.parameters["u"][0].clone()  # (L, M, D)
    v = model.parameters["v"][0].clone()
    w1 = (u / dim).requires_grad_(True)
    w2 = (c * v.transpose(1, 2) / form.multiplier).requires_grad_(True)  # (L, D, M)

    def forward(w1, w2):
        h = x @ model.w_in.T
        for layer in range(depth):
            h = h + form.multiplier * torch.tanh(h @ w1[layer].T) @ w2[layer].T
        return h

    risk = (((forward(w1, w2) @ model.w_out) / dim - y) ** 2).mean()
    g1, g2 = torch.autograd.grad(risk, [w1, w2])
    with torch.no_grad():
        return forward(w1 - form.lr_input * g1, w2 - form.lr_output * g2)


@pytest.mark.parametrize("key", list(PARAMETRIZATIONS))
def test_one_step_equals_the_pytorch_form(key):
    depth, width, dim = 3, 5, 7
    data = synthetic_task(1)
    p = parametrization(key, lr=0.05)
    model = build_resnet(depth, width, dim, input_dim=5, output_dim=5, scaling=p, seeds=1, seed=3)
    expected = _pytorch_form_step(p, model, data.x, data.y, depth, width, dim)
    result = train(model, data, 1, record_movement=False)
    torch.testing.assert_close(result.embeddings[0, 1], expected, rtol=1e-10, atol=1e-10)
    # the step did something
    assert float((result.embeddings[0, 1] - result.embeddings[0, 0]).abs().max()) > 1e-6


def test_parametrizations_apply_to_attention_heads():
    for key in PARAMETRIZATIONS:
        model = build_resnet(
            2,
            4,
            8,
            input_dim=2,
            output_dim=2,
            block=AttentionBlock(3, 2),
            scaling=parametrization(key, lr=0.1),
        )
        assert set(model.learning_rates) == {"q", "k", "u", "v"}
        assert float(model.learning_rates["q"][0]) == float(model.learning_rates["u"][0])


@pytest.mark.parametrize(("key", "lr"), [("muP", 0.1), ("standard", -1.0), ("critical", math.nan)])
def test_bad_arguments(key, lr):
    with pytest.raises(ValueError, match=r"parametrization must be|lr"):
        parametrization(key, lr=lr)
