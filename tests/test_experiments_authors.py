"""The authors' studies (chizat-scaling, chizat-grid, chizat-coordinates): each at smoke scale
yields a figure and its claims; the global and free-exponent fits recover known constants and
exponents on synthetic data; the metric option; spec validation."""

import math

import numpy as np
import pydantic
import pytest
from matplotlib.figure import Figure

from deeplimit.experiments import get_experiment
from deeplimit.experiments.chizat_fits import evaluate_law, fit_free_law, fit_global_law
from deeplimit.experiments.chizat_scaling import authors_grid


@pytest.mark.parametrize(
    "name, ids",
    [
        ("chizat-scaling", {"C10", "C11", "C13", "C14"}),
        ("chizat-grid", {"C15", "C16"}),
        ("chizat-coordinates", {"C17"}),
    ],
)
def test_smoke_run_gives_figure_and_claims(name, ids):
    experiment = get_experiment(name)
    spec = experiment.smoke()
    dataset = experiment.run(spec)
    assert experiment.spec_from_dataset(dataset) == spec
    claims = experiment.claims(dataset)
    assert {c.id for c in claims} == ids
    assert all(isinstance(c.measured, float) for c in claims)
    assert isinstance(experiment.plot(dataset), Figure)
    for row in experiment.statistics(dataset):
        assert set(experiment.table) <= set(row)


def test_scaling_metric_option_changes_the_aggregation():
    experiment = get_experiment("chizat-scaling")
    dataset = experiment.run(experiment.smoke())
    authors = experiment.errors(dataset)["embedding"]
    rms_spec = experiment.smoke(metric="rms")
    rms_data = dataset.assign_attrs(spec=rms_spec.model_dump_json())
    rms = experiment.errors(rms_data)["embedding"]
    runs = dataset.embedding_error_rms_runs.values
    np.testing.assert_allclose(rms, np.sqrt((runs**2).mean(-1)))
    np.testing.assert_allclose(authors, dataset.embedding_error_authors_runs.values.mean(-1))
    # the max over layers of the mean |.| is at least the mean |.| at h_L, which is at most RMS
    assert np.all(authors > 0) and not np.allclose(authors, rms)
    with pytest.raises(pydantic.ValidationError, match="metric"):
        experiment.smoke(metric="median")


def test_global_fit_recovers_known_constants():
    rng = np.random.default_rng(3)
    grid = np.array(authors_grid())
    depth, width, dim = (a.ravel() for a in np.meshgrid(grid[::3], grid[::3], grid[::3]))
    truth = {"D/(LM)": 0.67, "1/D": 0.44, "1/L^2": 3.0}
    clean = np.sqrt(0.67 * dim / (depth * width) + 0.44 / dim + 3.0 / depth**2)
    noisy = clean * np.exp(0.01 * rng.standard_normal(clean.size))
    fit = fit_global_law(depth, width, dim, noisy)
    for term, value in truth.items():
        assert fit["ci_low"][term] <= value <= fit["ci_high"][term], (term, fit)
        assert fit["constants"][term] == pytest.approx(value, rel=0.1)
    np.testing.assert_allclose(evaluate_law(fit, depth, width, dim), clean, rtol=0.02)
    exact = fit_global_law(depth, width, dim, clean, residuals="absolute")
    for term, value in truth.items():
        assert exact["constants"][term] == pytest.approx(value, rel=1e-6)
    with pytest.raises(ValueError, match="terms"):
        fit_global_law(depth, width, dim, clean, ("1/M",))


def test_free_law_recovers_exponents_and_the_wald_test_rejects_wrong_ones():
    rng = np.random.default_rng(4)
    grid = np.geomspace(10, 2000, 12)
    width, dim = (a.ravel() for a in np.meshgrid(grid, grid))
    depth = np.full(width.shape, 50.0)
    clean = np.sqrt(0.64 * dim / (depth * width) + 6.25 / dim)
    noisy = clean * np.exp(0.02 * rng.standard_normal(clean.size))
    fit = fit_free_law(depth, width, dim, noisy, depth_term=False)
    assert fit["ci_low"] <= 1 / 6 <= fit["ci_high"]
    assert abs(fit["gamma"] - 0.5) < 4 * fit["gamma_se"] + 1e-9
    assert fit["wald_pvalue"] > 1e-3
    wrong = fit_free_law(depth, width, dim, noisy, depth_term=False, expected=(1.0, 0.5))
    assert wrong["wald_pvalue"] < 1e-6
    output = np.sqrt(0.02 * (dim / (depth * width)) ** 2 + 0.8 / dim)
    fit = fit_free_law(depth, width, dim, output, depth_term=False, expected=(1.0, 0.5))
    assert fit["exponent"] == pytest.approx(1 / 5, abs=1e-4)


@pytest.mark.parametrize(
    "name, overrides, field",
    [
        ("chizat-scaling", {"dims": [8, 4]}, "dims"),
        ("chizat-scaling", {"panel_dim": 5}, "panel_dim"),
        ("chizat-scaling", {"dims": [10, 2000]}, "dims"),
        ("chizat-scaling", {"w_seeds": [1, 1]}, "w_seeds"),
        ("chizat-grid", {"widths": [4, 8]}, "widths"),
        ("chizat-grid", {"residuals": "square"}, "residuals"),
        ("chizat-coordinates", {"show_steps": [4, 0]}, "show_steps"),
        ("chizat-coordinates", {"trajectory_step": 9}, "trajectory_step"),
        ("chizat-coordinates", {"coordinates": 2000}, "coordinates"),
    ],
)
def test_bad_specs_name_the_field(name, overrides, field):
    with pytest.raises(pydantic.ValidationError, match=field):
        get_experiment(name).fast(**overrides)


def test_full_settings_are_the_authors():
    scaling = get_experiment("chizat-scaling").full()
    assert scaling.depths == authors_grid() and len(scaling.depths) == 15
    assert scaling.widths == authors_grid()[:-1]
    assert scaling.unit_seeds * len(scaling.w_seeds) == 65
    assert (scaling.step, scaling.eta) == (5, 0.1)
    grid = get_experiment("chizat-grid").full()
    assert grid.widths[0] == 1 and grid.widths[-1] == 2000 and len(grid.widths) == 20
    assert (grid.depth, grid.steps, grid.reps, grid.lr) == (50, 15, 5, 0.5)
    coordinates = get_experiment("chizat-coordinates").full()
    assert (coordinates.dim, coordinates.width, coordinates.depth) == (1000, 1000, 200)
    assert math.isclose(coordinates.eta, 0.1)


@pytest.mark.slow
def test_fast_defaults_reproduce_the_authors_findings():
    """Fast defaults (minutes): the coordinate laws hold (C17), both error sources of the global
    law are detected on the linear grid (C13, C14), and the tanh grid's embedding budget
    exponent is 1/6 within the tolerance (C15)."""
    verdicts = {}
    for name in ("chizat-coordinates", "chizat-scaling", "chizat-grid"):
        experiment = get_experiment(name)
        dataset = experiment.run(experiment.fast())
        verdicts.update({c.id: c.passed for c in experiment.claims(dataset)})
    assert verdicts["C17"] and verdicts["C13"] and verdicts["C14"] and verdicts["C15"]
