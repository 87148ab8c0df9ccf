"""Bad input raises ValueError naming the parameter; divergence is detected and reported."""

import math
import warnings

import numpy as np
import pytest
import torch

from deeplimit.training import (
    LazyScaling,
    MeanFieldScaling,
    PowerLawScaling,
    TrainingDivergedError,
    TrainingDivergenceWarning,
    TwoLayerBlock,
    mean_ode_limit,
    train_resnet,
)

X = np.random.default_rng(0).standard_normal((6, 3))
Y = np.random.default_rng(1).standard_normal((6, 2))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(depth=0), "depth"),
        (dict(depth=-2), "depth"),
        (dict(depth=2.5), "depth"),
        (dict(hidden_width=0), "hidden_width"),
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(steps=True), "steps"),  # steps=0 is the initialization alone (issue 8)
        (dict(steps=-1), "steps"),
        (dict(lr=float("nan")), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(lr="fast"), "lr"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=float("nan")), "alpha"),
        (dict(seeds=0), "seeds"),
        (dict(seeds=[]), "seeds"),
        (dict(seeds=[0, -1]), "seeds"),
        (dict(seed=-1), "seed"),
        (dict(embedding_seed=-3), "embedding_seed"),
        (dict(activation="bogus"), "activation"),
        (dict(device="tpu"), "device"),
        (dict(dtype=torch.int32), "dtype"),
        (dict(explosion_factor=0.0), "explosion_factor"),
        (dict(on_divergence="panic"), "on_divergence"),
        (dict(data=(X[:, 0], Y)), "data X"),
        (dict(data=(X, Y[:4])), "same number of rows"),
        (dict(data=(X, np.full((6, 2), np.nan))), "data Y"),
        (dict(data=X), "data"),
        (dict(embeddings=(np.ones((7, 5)), np.ones((8, 5)))), "W_in"),
        (dict(embeddings=(np.ones((8, 5)), np.ones((8, 3)))), "W_out"),
        (dict(data=(X, Y), embeddings=(np.ones((8, 5)), np.ones((8, 2)))), "W_in"),
        (dict(scaling=MeanFieldScaling(2.0), alpha=3.0), "scaling"),
        (dict(scaling=[MeanFieldScaling()] * 2, seeds=3), "scaling"),
        (dict(scaling="critical"), "scaling"),
        (dict(block=TwoLayerBlock("relu"), activation="identity"), "block"),
        (dict(block=TwoLayerBlock("tanh", antithetic=True), hidden_width=5), "hidden_width"),
    ],
)
def test_bad_training_input_names_the_parameter(kwargs, name):
    arguments = dict(depth=2, hidden_width=4, embedding_dim=8, steps=1)
    arguments.update(kwargs)
    depth, width, dim = (arguments.pop(k) for k in ("depth", "hidden_width", "embedding_dim"))
    with pytest.raises(ValueError, match=name):
        train_resnet(depth, width, dim, **arguments)


@pytest.mark.parametrize(
    "factory, name",
    [
        (lambda: LazyScaling(exponent=0.5), "exponent"),
        (lambda: LazyScaling(exponent=0.0), "exponent"),
        (lambda: PowerLawScaling(residual_exponents=(1, 2)), "residual_exponents"),
        (lambda: PowerLawScaling(lr_exponents=(1, "x", 0)), "lr_exponents"),
        (lambda: PowerLawScaling.phase_point(float("nan"), 1.0), "a"),
        (lambda: MeanFieldScaling(relative_lrs={"u": -1.0}), "relative_lrs"),
    ],
)
def test_bad_scaling_names_the_parameter(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(steps=-1), "steps"),  # steps=0 is the initialization alone (issue 8)
        (dict(lr=float("inf")), "lr"),
        (dict(method="magic"), "method"),
        (dict(method="exact", activation="tanh"), "activation"),
        (dict(intervals=2), "intervals"),
        (dict(method="reference", reference_seeds=1), "reference_seeds"),
        (dict(method="reference", reference_depth=0), "depth"),
        (dict(data=(X, Y), embeddings=(np.ones((7, 3)), np.ones((7, 2)))), "W_in"),
    ],
)
def test_bad_limit_input_names_the_parameter(kwargs, name):
    arguments = dict(embedding_dim=8, steps=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        mean_ode_limit(arguments.pop("embedding_dim"), **arguments)


def test_user_data_of_any_shape_trains():
    result = train_resnet(3, 8, 8, data=(X, Y), steps=2, seeds=2)
    assert result.outputs.shape == (2, 3, 6, 2)
    assert result.w_in.shape == (8, 3) and result.w_out.shape == (8, 2)
    limit = mean_ode_limit(8, data=(X, Y), steps=2, activation="identity")
    assert limit.outputs.shape == (3, 6, 2)
    assert torch.equal(limit.w_in, result.w_in)


def test_divergence_is_detected_reported_and_isolated():
    """A huge learning rate diverges; its step is reported, its later records are NaN, and
    the other networks of the batch are unaffected."""
    scalings = [MeanFieldScaling(lr=0.5), MeanFieldScaling(lr=1e5), MeanFieldScaling(lr=0.5)]
    with pytest.warns(TrainingDivergenceWarning, match="diverged at step"):
        batch = train_resnet(
            4,
            16,
            8,
            seeds=[0, 1, 2],
            scaling=scalings,
            steps=6,
            activation="identity",
            record_movement=True,
        )
    step = int(batch.diverged_at[1])
    assert step >= 1
    assert batch.diverged_at[[0, 2]].tolist() == [-1, -1]
    assert batch.diverged.tolist() == [False, True, False]
    loss = batch.loss[1]
    null_risk = float((batch.y**2).mean())
    threshold = batch.explosion_factor * max(float(loss[0]), null_risk)
    assert not math.isfinite(loss[step]) or loss[step] > threshold
    assert bool(torch.isfinite(loss[:step]).all()) and bool((loss[:step] <= threshold).all())
    assert bool(torch.isnan(loss[step + 1 :]).all())
    assert bool(torch.isnan(batch.outputs[1, step + 1 :]).all())
    assert bool(torch.isnan(batch.movement["u"][1, step + 1 :]).all())
    assert bool(torch.isfinite(batch.loss[[0, 2]]).all())
    alone = train_resnet(
        4, 16, 8, seeds=[0, 2], scaling=scalings[0], steps=6, activation="identity"
    )
    assert torch.allclose(alone.outputs, batch.outputs[[0, 2]], rtol=1e-12, atol=1e-13)


def test_divergence_threshold_and_policies():
    kwargs = dict(seeds=2, steps=5, lr=1e5, activation="identity")
    with pytest.raises(TrainingDivergedError, match="diverged at step") as caught:
        train_resnet(3, 8, 8, on_divergence="raise", **kwargs)
    assert caught.value.step >= 1 and caught.value.seeds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train_resnet(3, 8, 8, on_divergence="ignore", **kwargs)
    assert bool((result.diverged_at >= 1).all())
    # A tight explosion factor flags an ordinary run as soon as its loss rises above it.
    calm = train_resnet(3, 8, 8, seeds=2, steps=3, explosion_factor=1e6)
    assert calm.diverged_at.tolist() == [-1, -1]


def test_nonfinite_initial_loss_diverges_at_step_zero():
    result = train_resnet(
        2, 4, 8, data=(X * 1e300, Y), steps=2, activation="identity", on_divergence="ignore"
    )
    assert result.diverged_at.tolist() == [0]
    assert bool(torch.isnan(result.loss[0, 1:]).all())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(activation="tanh"), "activation"),
        (dict(infinite_dim=True, embeddings=(np.ones((8, 5)), np.ones((8, 5)))), "infinite_dim"),
        (dict(depth=0), "depth"),
        (dict(intervals=2), "intervals"),
        (dict(alpha=-1.0), "alpha"),
        (dict(lr=float("nan")), "lr"),
        (dict(steps=-1), "steps"),  # steps=0 is the initialization alone (issue 8)
    ],
)
def test_bad_span_limit_input_names_the_parameter(kwargs, name):
    from deeplimit.training import span_linear_limit

    arguments = dict(embedding_dim=8, steps=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        span_linear_limit(arguments.pop("embedding_dim"), **arguments)
