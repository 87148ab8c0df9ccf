"""The Hayou experiments (Figs. 1-21 and the claims without a figure): every experiment runs at
smoke scale and writes its figure and claims, and the claims report of that run renders in
headless Chromium; spec validation; activations beyond the paper; the helpers the figures add
(exact sign-flip probability, infinite-width gradient heuristic, the generic Itô residual).
The fast defaults with their claims are the slow tests."""

import json
import math
import os

import numpy as np
import pytest
import scipy.stats
from pydantic import ValidationError

import deeplimit as dl
from browser import render_check
from deeplimit.experiments import get_experiment, suite_members
from deeplimit.experiments.hayou_common import (
    activation_kind,
    log_growth_run,
    standard_layers,
)
from deeplimit.experiments.hayou_fig5 import regime_formula
from deeplimit.experiments.hayou_fig8 import infinite_width_gradient
from deeplimit.experiments.hayou_fig9 import sign_flip_probability
from deeplimit.report import PAPER_CLAIMS
from deeplimit.reproduce import reproduce, reproduce_suite
from deeplimit.stats import binomial_test, mean_zscore

LEVEL = 1e-3
HAYOU = [experiment.name for experiment in suite_members("hayou")]


def test_every_figure_of_the_paper_has_an_experiment():
    figures = {f"hayou-fig{i}" for i in range(1, 22)}
    assert figures <= set(HAYOU)
    assert "hayou-claims" in HAYOU
    orders = [get_experiment(name).order for name in HAYOU]
    assert orders == sorted(orders)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Every experiment of the suite at smoke scale and the claims report, through
    reproduce_suite, run once for the tests below."""
    return reproduce_suite("hayou", scale="smoke", out=tmp_path_factory.mktemp("smoke"))


@pytest.fixture(scope="module")
def smoke(suite):
    results = {result.name: result for result in suite.reproductions}
    assert list(results) == HAYOU
    return results, suite.report.markdown.parent.parent


@pytest.mark.parametrize("name", HAYOU)
def test_experiment_runs_at_smoke_scale_and_writes_figure_and_claims(name, smoke):
    results, out = smoke
    result = results[name]
    suffixes = {path.suffix for path in result.files}
    assert {".png", ".pdf", ".nc", ".json"} <= suffixes
    assert all(path.stat().st_size > 0 for path in result.files)
    summary = json.loads((out / name / f"{name}.json").read_text())
    assert summary["caption"] == result.caption
    assert f"seed {result.spec.seed}" in result.caption
    for claim in result.claims:
        assert claim.id and claim.statement and claim.expected
        assert isinstance(claim.passed, bool)
    # the stored dataset gives the same spec back, and the figure can be redrawn from it
    experiment = get_experiment(name)
    assert experiment.spec_from_dataset(result.dataset) == result.spec
    experiment.plot(result.dataset)


def test_the_suite_checks_every_paper_claim(smoke):
    results, _ = smoke
    ids = {claim.id for result in results.values() for claim in result.claims}
    assert set(PAPER_CLAIMS["hayou"]) <= ids


@pytest.mark.browser
def test_hayou_report_renders_with_every_figure_and_claim(tmp_path, suite):
    """The self-contained HTML report, opened in a real browser: every figure image decodes,
    and every claim C1-C16 has a row (the suite at smoke scale: verdicts are not asserted)."""
    result = suite
    check = render_check(result.report.html, tmp_path / "profile")
    assert check["done"] == "yes"
    assert int(check["images"]) == len(result.reproductions) > 0
    assert int(check["loaded"]) == int(check["images"])
    # every in-page link (contents, claim sources) leads to an element of the page
    assert int(check["links"]) == int(check["resolved"]) > len(result.reproductions)
    assert int(check["sources"]) >= len(PAPER_CLAIMS["hayou"])
    assert check["ids"].split(",") == PAPER_CLAIMS["hayou"]
    markdown = result.report.markdown.read_text()
    for reproduction in result.reproductions:
        assert reproduction.title in markdown
        assert (
            result.report.markdown.parent
            / os.path.relpath(reproduction.figure_png, result.report.markdown.parent)
        ).exists()
    assert "MISSING" not in markdown


# --------------------------------------------------------------------------------------------
# specs


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("hayou-fig5", {"widths": (3, 2)}, "widths must be"),
        ("hayou-fig5", {"activation": "sigmoid"}, "activation"),
        ("hayou-fig4", {"depths": (5,)}, "depths must be"),
        ("hayou-fig6", {"samples": (100,)}, "one count >= 20 per width"),
        ("hayou-fig7", {"rho0": 1.0}, "rho0 must be in"),
        ("hayou-fig14", {"hidden_layers": (1, 500)}, "hidden_layers must be"),
        ("hayou-fig2", {"alpha": -1.0}, "alpha must be"),
        ("hayou-fig12", {"alphas": (1.0, 1.0)}, "alphas must be"),
        ("hayou-fig5", {"level": 2.0}, "level must be"),
    ],
)
def test_bad_specs_name_the_field(name, overrides, match):
    with pytest.raises(ValidationError, match=match):
        get_experiment(name).fast(**overrides)


def test_activation_field_accepts_specs_objects_and_callables():
    experiment = get_experiment("hayou-fig5")
    assert experiment.fast(activation="GELU").activation == "gelu"
    assert (
        experiment.fast(activation=dl.parse_activation("leaky:alpha=1,beta=0.5")).model_dump(
            mode="json"
        )["activation"]
        == "leaky:alpha=1,beta=0.5"
    )

    def softsign(x):
        return x / (1 + x.abs())

    spec = experiment.smoke(activation=softsign)
    assert spec.model_dump(mode="json")["activation"] == "custom:softsign"
    dataset = experiment.run(spec)
    assert np.all(np.isfinite(dataset["mean"].values))
    stored = experiment.spec_from_dataset(dataset)
    assert stored.activation == "custom:softsign"
    assert [c.id for c in experiment.claims(dataset)] == ["fig5-ito", "fig5-ito", "fig5-limit"]
    experiment.plot(dataset)
    with pytest.raises(ValueError, match="names a user callable"):
        experiment.run(stored)


def test_activation_kinds():
    assert activation_kind("relu") == "relu"
    assert activation_kind("leaky:alpha=1,beta=0") == "relu"
    assert activation_kind("linear") == "identity"
    assert activation_kind("gelu") == activation_kind("tanh") == "smooth"
    assert activation_kind("leaky:alpha=1,beta=0.5") == "other"
    assert activation_kind("ou") == activation_kind("custom:f") == "other"


# --------------------------------------------------------------------------------------------
# activations beyond the paper


def test_regime_change_for_gelu_emits_only_claims_that_apply(tmp_path):
    result = reproduce("hayou-fig5", scale="smoke", out=tmp_path, overrides={"activation": "gelu"})
    ids = {claim.id for claim in result.claims}
    assert ids == {"fig5-ito", "fig5-limit"}
    assert "gelu" in result.caption and "do not apply" in result.caption
    assert all(math.isnan(row["formula"]) for row in result.statistics)


def test_collapse_figure_for_a_smooth_activation_checks_lemma_2(tmp_path):
    result = reproduce("hayou-fig4", scale="smoke", out=tmp_path, overrides={"activation": "tanh"})
    assert [claim.id for claim in result.claims] == ["C16"]
    assert result.claims[0].passed and result.claims[0].measured == 0


@pytest.mark.parametrize("name", ["hayou-fig6", "hayou-fig7", "hayou-fig8", "hayou-fig13"])
def test_figures_run_with_other_activations(name, tmp_path):
    result = reproduce(name, scale="smoke", out=tmp_path, overrides={"activation": "silu"})
    assert "silu" in result.caption
    assert result.claims


# --------------------------------------------------------------------------------------------
# helpers of the figures


def test_standard_layers():
    assert standard_layers(200) == (1, 2, 5, 10, 20, 50, 100, 200)
    assert standard_layers(7) == (1, 2, 5, 7)


def test_log_growth_runs_are_shared_between_figures():
    relu = dl.parse_activation("relu")
    first = log_growth_run(3, 10, relu, samples=200, layers=(5,))
    again = log_growth_run(3, 10, relu, samples=200, layers=(1, 5))
    assert first is again  # both layer sets lie in the standard grid
    assert first.log_growth.shape == (200, len(standard_layers(10)))
    with pytest.raises(ValueError):
        first.log_growth[0, 0] = 1.0  # read-only: shared through the cache


def test_regime_formula():
    assert regime_formula(4) == 0 and regime_formula(2) == -0.25 and regime_formula(8) == 0.125


def test_sign_flip_probability_matches_the_width_one_chain():
    """Width 1, phi(x) = a x: Y_L = Y_0 prod (1 + a Z_l/sqrt L); the sign flips when an odd
    number of factors is negative."""
    for depth, a in ((3, 1.0), (5, 2.0)):
        y = dl.sample_resnet(1, depth, f"linear:a={a}", samples=40000, y0=[1.0], seed=depth)
        flips = int((y[:, 0] < 0).sum())
        assert binomial_test(flips, 40000, sign_flip_probability(depth, a)).pvalue > LEVEL / 2
    assert sign_flip_probability(500, 1.0) < 1e-100


@pytest.mark.parametrize(("activation", "chi"), [("relu", 0.5), ("linear", 1.0)])
def test_infinite_width_gradient_of_homogeneous_activations(activation, chi):
    values = infinite_width_gradient(dl.parse_activation(activation), 1.0, 50)
    expected = (1 + chi / 50) ** (50 - np.arange(51))
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_infinite_width_gradient_matches_wide_networks_for_tanh():
    """The heuristic E||g_0||^2 = prod (1 + chi_k/L) against width 200 (exact gradients)."""
    norms = dl.gradient_norms(200, 40, "tanh", samples=300, x=[1.0], layers=0, method="law")
    heuristic = infinite_width_gradient(dl.parse_activation("tanh"), 1.0, 40)[0]
    result = mean_zscore(norms.numpy() ** 2, heuristic, level=LEVEL)
    assert abs(result.mean / heuristic - 1) < 0.03, str(result)


@pytest.mark.parametrize("activation", ["gelu", "leaky:alpha=1,beta=0.5"])
def test_ito_residual_is_a_martingale_for_any_activation(activation):
    """Beyond ReLU's Thm 1: R = LG_L - int mu has mean 0 and variance E int rho/n."""
    run = log_growth_run(3, 100, dl.parse_activation(activation), samples=20000, seed=3)
    residual = run.residual
    variation = run.variation[run.alive]
    assert mean_zscore(residual, 0.0, level=LEVEL).passed
    assert abs(residual.var() / variation.mean() - 1) < 4 * math.sqrt(2 / residual.size) + 0.02


@pytest.mark.parametrize(("alpha", "beta", "sigma"), [(1.0, 1.0, 1.0), (2.0, 0.5, 1.5)])
def test_ou_activation_satisfies_the_construction_of_prop_4(alpha, beta, sigma):
    """g = alpha E(beta x): g'|phi| = sigma and g'' phi^2 / 2 = -theta g (Fig. 2's check)."""
    from deeplimit.experiments.hayou_fig2 import HayouFig2Spec, _ito_residuals

    spec = HayouFig2Spec(alpha=alpha, beta=beta, sigma=sigma)
    first, second = _ito_residuals(spec, np.linspace(-3, 3, 61))
    assert np.abs(first).max() < 1e-6 and np.abs(second).max() < 1e-6


# --------------------------------------------------------------------------------------------
# the fast defaults and their claims (minutes: slow)


@pytest.mark.slow
@pytest.mark.parametrize("name", HAYOU)
def test_fast_default_passes_its_claims(name, tmp_path):
    result = reproduce(name, out=tmp_path)
    failed = [f"{c.id}: {c.statement} ({c.measured})" for c in result.claims if not c.passed]
    assert not failed, failed


@pytest.mark.slow
def test_regime_change_sign_with_the_experiment_at_width_four(tmp_path):
    """C10 at n = 3 and 4 only, with the experiment's own statistics."""
    result = reproduce("hayou-fig5", out=tmp_path, overrides={"widths": (3, 4), "samples": 200_000})
    rows = {row["width"]: row for row in result.statistics}
    assert rows[3]["z"] < -scipy.stats.norm.isf(LEVEL) < scipy.stats.norm.isf(LEVEL) < rows[4]["z"]
