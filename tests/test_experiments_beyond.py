"""The "beyond" suite (coord-check, transfer): each experiment at smoke scale through the store
produces its figure, data and claims; the pieces they are made of on known inputs."""

import math

import numpy as np
import pydantic
import pytest
import torch
from matplotlib.figure import Figure

from deeplimit.experiments import get_experiment
from deeplimit.experiments.coord_check import layer_rms, summary
from deeplimit.experiments.transfer import drift_with_ci, optimum
from deeplimit.reproduce import reproduce_suite
from deeplimit.training.real_data import digits_task, text_task

torch.set_num_threads(1)


def _check_reproduction(reproduction, name):
    experiment = get_experiment(name)
    assert sorted(p.suffix for p in reproduction.files) == [".json", ".nc", ".pdf", ".png"]
    assert reproduction.claims
    assert all(math.isfinite(c.measured) for c in reproduction.claims)
    for row in reproduction.statistics:
        assert set(experiment.table) <= set(row)
    assert isinstance(experiment.plot(reproduction.dataset), Figure)
    assert experiment.spec_from_dataset(reproduction.dataset) == reproduction.spec


NAMES = ["coord-check", "transfer", "chizat-attention"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The whole "beyond" suite at smoke scale through reproduce_suite (store, files, report)."""
    return reproduce_suite("beyond", scale="smoke", out=tmp_path_factory.mktemp("beyond"))


def test_suite_runs_and_reports_every_claim(suite):
    assert [r.name for r in suite.reproductions] == NAMES
    for reproduction in suite.reproductions:
        _check_reproduction(reproduction, reproduction.name)
    rows = suite.claim_rows
    assert len(rows) == sum(len(r.claims) for r in suite.reproductions)
    assert {row["source"] for row in rows} == set(NAMES)
    text = suite.report.markdown.read_text()
    for claim_id in ("CC-critical-L-update", "TR-critical-L", "TR-standard-M", "CA1", "CA3"):
        assert claim_id in text


def test_coord_check_smoke(suite):
    reproduction = suite.reproductions[0]
    # 5 parametrizations x 2 axes x (branch, update)
    assert len(reproduction.claims) == 20
    dataset = reproduction.dataset
    assert dataset.width_rms.shape == (5, 3, 3, 2)
    # padding: the depth-2 network has no layer 3
    assert np.isnan(dataset.depth_rms.values[:, 0, :, 2:]).all()
    assert np.isfinite(dataset.depth_rms.values[:, -1]).all()


def test_layer_rms_and_summary_on_known_states():
    states = torch.zeros(1, 2, 3, 1, 2, dtype=torch.float64)  # S, step, L+1, N, D
    states[0, 0, 0] = 1.0
    states[0, 0, 1] = 2.0  # branch 1
    states[0, 0, 2] = 4.0  # branch 2
    states[0, 1, 1] = 2.5  # update 0.5
    states[0, 1, 2] = 3.0  # update -1
    values = layer_rms(states)
    np.testing.assert_allclose(values, [[2, 4], [1, 2], [0.5, 1]])
    padded = np.concatenate([values, np.full((3, 1), np.nan)], axis=1)
    np.testing.assert_allclose(summary(padded[None]), [[4.0, math.sqrt(2.5), 1.0]])


def test_coord_check_spec_validation():
    experiment = get_experiment("coord-check")
    with pytest.raises(pydantic.ValidationError, match="parametrizations"):
        experiment.smoke(parametrizations=("standard", "mup"))
    with pytest.raises(pydantic.ValidationError, match="widths"):
        experiment.smoke(widths=(4, 8))


def test_real_data_splits():
    train, test = digits_task(100, 50, seed=1)
    assert train.x.shape == (100, 64) and test.y.shape == (50, 10)
    assert float((train.y**2).mean()) == pytest.approx(1.0)
    np.testing.assert_allclose(train.x.mean(0).numpy(), 0.0, atol=1e-12)
    assert train.y.argmax(1).unique().numel() == 10
    with pytest.raises(ValueError, match="train \\+ test"):
        digits_task(1500, 500)
    (x, y), (xt, _), description = text_task(8, 4, tokens=6, alphabet=10)
    assert x.shape == (8, 6, 12) and y.shape == (8, 6, 10) and xt.shape == (4, 6, 12)
    # the next character of token t is the current character of token t + 1
    np.testing.assert_array_equal(x[:, 1:, :10].argmax(-1), y[:, :-1].argmax(-1))
    assert "pydoc" in description


def test_transfer_smoke_digits(suite):
    reproduction = suite.reproductions[1]
    assert {c.id for c in reproduction.claims} == {
        f"TR-{key}-{axis}"
        for key in ("standard", "width-mup", "depth-mup", "completep", "critical")
        for axis in ("L", "M")
    }
    losses = reproduction.dataset.depth_loss.values
    assert losses.shape == (5, 3, 2, 4, 2)
    assert np.isfinite(losses[:, :, :, 0]).all()  # the smallest lr never diverges


def test_transfer_smoke_text_attention():
    experiment = get_experiment("transfer")
    spec = experiment.smoke(
        task="text", parametrizations=("critical", "standard"), depths=(1, 2, 3), widths=(1, 2, 3)
    )
    dataset = experiment.run(spec)
    assert dataset.width_loss.shape == (2, 3, 2, 4, 2)
    assert "pydoc" in experiment.caption(spec)
    assert len(experiment.claims(dataset)) == 4
    assert isinstance(experiment.plot(dataset), Figure)


def test_optimum_refines_a_parabola_and_flags_edges():
    grid = np.arange(-4, 4, dtype=float)
    curve = np.exp((grid - 0.3) ** 2)  # log loss is a parabola with vertex 0.3
    best, edge = optimum(grid, curve)
    assert best == pytest.approx(0.3) and not edge
    best, edge = optimum(grid, np.exp((grid + 10.0) ** 2))
    assert best == -4 and edge
    curve[1:] = np.inf  # diverged beyond the first point
    assert optimum(grid, curve) == (-4.0, True)
    assert math.isnan(optimum(grid, np.full(8, np.nan))[0])


def test_drift_recovers_a_known_shift_per_doubling():
    grid = np.arange(-8, 6, dtype=float)
    sizes = np.array([2.0, 4.0, 8.0, 16.0])
    rng = np.random.default_rng(0)
    # optimum at -0.7 log2(size) + 1, three noisy seeds
    centre = -0.7 * np.log2(sizes) + 1.0
    losses = np.exp(0.3 * (grid[None, :, None] - centre[:, None, None]) ** 2)
    losses = losses * np.exp(0.01 * rng.standard_normal((4, grid.size, 3)))
    result = drift_with_ci(sizes, grid, losses, samples=100)
    assert result["drift"] == pytest.approx(-0.7, abs=0.05)
    assert result["ci_low"] <= -0.7 <= result["ci_high"] or abs(result["drift"] + 0.7) < 0.05
    assert not any(result["edge"])


def test_chizat_attention_smoke(suite):
    reproduction = suite.reproductions[2]
    assert [c.id for c in reproduction.claims] == ["CA1", "CA2", "CA3", "CA4", "CA5", "CA6"]
    dataset = reproduction.dataset
    assert dataset.init_error.shape == (3, 3)
    assert np.isfinite(dataset.width_error.values).all()
    # CA6: errors vs L against a same-width reference, each network's error kept
    assert dataset.depth_error_seeds.shape == (3, 2)
    pooled = np.sqrt((dataset.depth_error_seeds.values**2).mean(1))
    np.testing.assert_allclose(dataset.depth_error.values, pooled, rtol=1e-12)
    assert reproduction.claims[-1].details["reference_clt"] > 0
    assert (dataset.init_error.values[np.isfinite(dataset.init_error.values)] > 0).all()
