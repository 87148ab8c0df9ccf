"""``record_adjoint`` of ``train`` / ``train_resnet`` / ``TrainingProblem.train``, and the
network groups that ``train`` runs on several threads (same results as one thread)."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from deeplimit.training import (
    TrainingProblem,
    build_resnet,
    synthetic_task,
    train,
    train_resnet,
    train_with_adjoint,
)

train_module = importlib.import_module("deeplimit.training.train")  # the module, not `train`


def _autograd_adjoint(model, data):
    """``b_l = D dR/dh_l`` (S, L+1, N, D) of ``model`` by autograd."""
    x = data.x.to(model.dtype)
    h = model.embed(x).expand(model.networks, -1, -1).clone().requires_grad_(True)
    states = [h]
    scale = model.residual_scale.reshape(-1, 1, 1)
    for index in range(model.depth):
        states.append(states[-1] + scale * model.block.branch(states[-1], model.layer(index)))
    for state in states:
        state.retain_grad()
    model.risk(model.readout(states[-1]), data.y.to(model.dtype)).sum().backward()
    return model.embedding_dim * torch.stack([s.grad for s in states], dim=1)


def test_record_adjoint_matches_autograd_at_every_step():
    data = synthetic_task()
    shape = dict(input_dim=5, output_dim=5, seeds=3)
    model = build_resnet(5, 6, 7, **shape)
    result = train(model, data, 3, record_adjoint=True)
    assert result.adjoint.shape == (3, 3, 6, 10, 7)
    for step in range(3):
        twin = build_resnet(5, 6, 7, **shape)
        train(twin, data, step)  # the parameters before the update of ``step``
        expected = _autograd_adjoint(twin, data)
        assert torch.allclose(result.adjoint[:, step], expected, rtol=1e-12, atol=1e-14)
    # the same numbers as the coordinate study's own recorder
    again = build_resnet(5, 6, 7, **shape)
    assert torch.equal(train_with_adjoint(again, data, 3).adjoint, result.adjoint)


def test_record_adjoint_off_by_default_and_through_the_entry_points():
    data = synthetic_task()
    assert train_resnet(3, 4, 5, steps=2).adjoint is None
    result = train_resnet(3, 4, 5, steps=2, seeds=2, record_adjoint=True)
    problem = TrainingProblem(5, steps=2)
    same = problem.train(3, 4, 2, record_adjoint=True)
    assert result.adjoint.shape == (2, 2, 4, data.samples, 5)
    assert torch.equal(result.adjoint, same.adjoint)
    assert torch.isfinite(result.adjoint).all()
    with pytest.raises(ValueError, match="record_adjoint"):
        train_resnet(3, 4, 5, steps=1, record_adjoint="yes")


def test_record_adjoint_is_nan_for_stopped_networks():
    data = synthetic_task()
    # network 1 takes a huge learning rate and diverges; network 0 goes on
    from deeplimit.training import MeanFieldScaling

    scalings = [MeanFieldScaling(1.0, 0.5), MeanFieldScaling(1.0, 5e4)]
    model = build_resnet(3, 4, 5, input_dim=5, output_dim=5, seeds=[0, 0], scaling=scalings)
    result = train(model, data, 4, record_adjoint=True, on_divergence="ignore")
    stop = int(result.diverged_at[1])
    assert 0 < stop < 4 and int(result.diverged_at[0]) == -1
    assert torch.isfinite(result.adjoint[0]).all()
    assert torch.isfinite(result.adjoint[1, :stop]).all()
    assert torch.isnan(result.adjoint[1, stop:]).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_network_groups_on_threads_equal_one_thread(dtype, monkeypatch):
    monkeypatch.setattr(train_module, "_GROUP_MIN_FLOPS", 0.0)  # split even this small batch
    data = synthetic_task()
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            model = build_resnet(4, 6, 8, input_dim=5, output_dim=5, seeds=5, dtype=dtype)
            results.append(train(model, data, 3, record_layers=True, record_adjoint=True))
            assert torch.get_num_threads() == threads  # restored after the groups
            assert len(train_module._NetworkGroups(model, data.samples).parts) == threads
    finally:
        torch.set_num_threads(previous)
    one, several = results
    for name in ("outputs", "embeddings", "loss", "states", "adjoint"):
        assert torch.equal(getattr(one, name), getattr(several, name)), name
    assert not math.isnan(float(one.loss[0, -1]))
