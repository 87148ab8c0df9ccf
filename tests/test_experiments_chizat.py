"""The Chizat experiments (chizat.md §4, §6): every study end to end at smoke scale, the claims
report (C1–C12, none missing), spec validation, divergence bookkeeping, and fast variants of
the claims that tests/test_training_*.py do not cover (the D -> infinity term of C10/C11, the
lazy bias behind C12, the phase diagram); the fast default of every claim (C8 in D, C10, C11
included) is checked by the slow tests at the end."""

import json
import math

import numpy as np
import pydantic
import pytest
import torch
import xarray as xr
from matplotlib.figure import Figure

from deeplimit.experiments import get_experiment, suite_members
from deeplimit.experiments.chizat_joint import fit_joint_law
from deeplimit.experiments.chizat_lazy_optimum import parabola_minimum
from deeplimit.experiments.chizat_phase import theory_class
from deeplimit.report import PAPER_CLAIMS
from deeplimit.reproduce import reproduce_suite
from deeplimit.training import span_linear_limit

NAMES = [
    "chizat-init",
    "chizat-width",
    "chizat-depth",
    "chizat-dim",
    "chizat-alpha",
    "chizat-lazy",
    "chizat-phase",
    "chizat-joint",
    "chizat-lazy-optimum",
    "chizat-scaling",
    "chizat-grid",
    "chizat-coordinates",
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The whole suite at smoke scale, through reproduce_suite (files, report)."""
    return reproduce_suite("chizat", scale="smoke", out=tmp_path_factory.mktemp("chizat"))


def test_suite_members_in_order():
    assert [e.name for e in suite_members("chizat")] == NAMES


def test_every_experiment_runs_end_to_end_at_smoke_scale(suite):
    assert [r.name for r in suite.reproductions] == NAMES
    for reproduction in suite.reproductions:
        experiment = get_experiment(reproduction.name)
        dataset = reproduction.dataset
        assert isinstance(dataset, xr.Dataset)
        assert experiment.spec_from_dataset(dataset) == reproduction.spec
        assert dataset.attrs["caption"].startswith(experiment.caption(reproduction.spec))
        assert reproduction.claims, reproduction.name
        for row in reproduction.statistics:
            assert set(experiment.table) <= set(row), reproduction.name
        suffixes = sorted(path.suffix for path in reproduction.files)
        assert suffixes == [".json", ".nc", ".pdf", ".png"]
        assert isinstance(experiment.plot(dataset), Figure)


def test_captions_state_the_parameters(suite):
    for reproduction in suite.reproductions:
        caption = reproduction.caption
        spec = reproduction.spec.model_dump()
        assert f"seed {spec['seed']}" in caption, reproduction.name
        for key in ("depth", "dim", "steps"):
            if key in spec and isinstance(spec[key], int):
                assert str(spec[key]) in caption, (reproduction.name, key)


def test_report_lists_every_claim_c1_to_c12(suite):
    rows = json.loads(suite.report.json.read_text())["claims"]
    ids = {row["id"] for row in rows}
    assert ids == set(PAPER_CLAIMS["chizat"])
    assert not [row for row in rows if row["verdict"] == "MISSING"]
    text = suite.report.markdown.read_text()
    for claim_id in PAPER_CLAIMS["chizat"]:
        assert f"| {claim_id} |" in text
    # every fitted slope comes with its confidence interval
    for row in rows:
        if row["statistic"].startswith("log-log slope") and math.isfinite(row["measured"] or 0):
            assert "CI" in row["tolerance"] or "fewer than 3" in row["tolerance"], row


@pytest.mark.parametrize(
    "name, overrides, field",
    [
        ("chizat-init", {"c2_splits": [[8, 2], [4, 8]]}, "c2_splits"),
        ("chizat-init", {"c1_seeds": 1}, "c1_seeds"),
        ("chizat-width", {"widths": [16, 8, 32]}, "widths"),
        ("chizat-width", {"dtype": "float16"}, "dtype"),
        ("chizat-depth", {"seeds": 2}, "seeds"),
        ("chizat-depth", {"lr": -1.0}, "lr"),
        ("chizat-dim", {"dims": [8, 16]}, "dims"),
        ("chizat-alpha", {"alphas": [1.0, 0.0, 2.0]}, "alphas"),
        ("chizat-lazy", {"function_tolerance": 0.0}, "function_tolerance"),
        ("chizat-phase", {"a_values": [1.0]}, "a_values"),
        ("chizat-phase", {"agreement": 1.5}, "agreement"),
        ("chizat-joint", {"max_ratio": float("nan")}, "max_ratio"),
        ("chizat-lazy-optimum", {"alpha_exponents": [0, 1]}, "alpha_exponents"),
        ("chizat-width", {"seed": -1}, "seed"),
        ("chizat-width", {"bogus": 3}, "bogus"),
    ],
)
def test_bad_spec_names_the_field(name, overrides, field):
    with pytest.raises(pydantic.ValidationError, match=field):
        get_experiment(name).smoke(**overrides)


def test_diverged_networks_are_reported_not_zeroed():
    experiment = get_experiment("chizat-depth")
    spec = experiment.smoke(lr=50.0)
    dataset = experiment.run(spec)
    assert int(dataset.diverged.sum()) > 0
    # an error where every network diverged is NaN, never 0
    all_gone = dataset.diverged.values == spec.seeds
    assert np.all(np.isnan(dataset.error.values[all_gone]))
    assert np.all(dataset.error.values[~np.isnan(dataset.error.values)] > 0)
    assert "diverged and are excluded" in dataset.attrs["caption"]
    assert "step" in dataset.attrs["caption"]
    claims = experiment.claims(dataset)
    assert all("diverged" in claim.statement for claim in claims)


def test_span_limit_equals_the_d_dimensional_exact_limit():
    from deeplimit.training import exact_linear_limit

    for kwargs in (dict(), dict(alpha=2.0, lr=0.3), dict(activation="linear:a=2")):
        exact = exact_linear_limit(12, steps=4, estimate_error=False, intervals=32, **kwargs)
        span = span_linear_limit(12, steps=4, intervals=32, **kwargs)
        assert torch.allclose(span.embeddings, exact.embeddings, rtol=0, atol=1e-12)
        assert torch.allclose(span.outputs, exact.outputs, rtol=0, atol=1e-12)
        layered = exact_linear_limit(12, steps=4, depth=6, **kwargs)
        span_layered = span_linear_limit(12, steps=4, depth=6, **kwargs)
        assert torch.allclose(span_layered.embeddings, layered.embeddings, rtol=0, atol=1e-12)


def test_d_to_infinity_term_decays_like_one_over_sqrt_d():
    """The 1/sqrt(D) term of C10/C11: the fixed-D Mean ODE against its D -> infinity limit
    (coupled embeddings, averaged over draws) has slope -1/2 in D."""
    dims = [16, 64, 256, 1024]
    gaps = []
    for dim in dims:
        squares = []
        for draw in range(8):
            fixed = span_linear_limit(dim, steps=4, depth=8, embedding_seed=draw)
            joint = span_linear_limit(dim, steps=4, depth=8, embedding_seed=draw, infinite_dim=True)
            squares.append(float(((fixed.embeddings[-1] - joint.embeddings[-1]) ** 2).mean()))
        gaps.append(math.sqrt(np.mean(squares)))
    assert np.polyfit(np.log(dims), np.log(gaps), 1)[0] == pytest.approx(-0.5, abs=0.1)


def test_joint_law_fit_recovers_known_exponents():
    rng = np.random.default_rng(0)
    hidden = np.repeat([256.0, 1024.0, 4096.0, 16384.0], 5)
    dim = np.tile([16.0, 32.0, 64.0, 128.0, 256.0], 4)
    error = np.sqrt(1.5 * dim / hidden + 6.0 / dim) * np.exp(0.01 * rng.standard_normal(dim.size))
    fit = fit_joint_law(hidden, dim, error)
    assert fit["gamma"] == pytest.approx(0.5, abs=0.03)
    assert fit["delta"] == pytest.approx(0.5, abs=0.03)
    assert fit["exponent"] == pytest.approx(1 / 6, abs=0.01)
    assert fit["ci_low"] < 1 / 6 < fit["ci_high"]


def test_lazy_bias_is_second_order_in_one_over_alpha():
    """Behind the C12 verdict: the Mean ODE approaches the lazy ODE like alpha^-2 (the first-
    order term is odd in v), exact for linear sigma."""
    lazy = span_linear_limit(8, steps=4, lazy=True)
    gaps = []
    for alpha in (8.0, 16.0, 32.0, 64.0):
        mean_ode = span_linear_limit(8, steps=4, alpha=alpha)
        gaps.append(float(((mean_ode.embeddings - lazy.embeddings) ** 2).mean().sqrt()))
    assert np.polyfit(np.log([8, 16, 32, 64]), np.log(gaps), 1)[0] == pytest.approx(-2.0, abs=0.05)


def test_parabola_minimum():
    alphas = 2.0 ** np.arange(-2, 6, 0.5)
    errors = np.sqrt(0.04 / alphas**4 + 0.01 * alphas**2)
    star = parabola_minimum(alphas, errors)
    assert star == pytest.approx((2 * 0.04 / 0.01) ** (1 / 6), rel=0.1)
    assert math.isnan(parabola_minimum(alphas, 1.0 / alphas))  # minimum at the edge
    assert math.isnan(parabola_minimum(alphas[:2], errors[:2]))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (1.0, 1.0, "feature learning"),
        (0.75, 0.5, "lazy"),
        (0.5, 0.0, "lazy"),
        (1.0, 0.5, "no learning"),
        (1.0, 1.5, "unstable"),
        (0.25, -1.5, "unstable"),
        (1.25, 1.5, "unstable"),
    ],
)
def test_theory_classes(a, b, expected):
    assert theory_class(a, b) == expected


def test_phase_diagram_small_grid_matches_theory():
    """Fast variant: cells around the critical point are classified as the theory says."""
    experiment = get_experiment("chizat-phase")
    spec = experiment.fast(
        depth=4,
        widths=(16, 64, 256),
        dim=8,
        a_values=(0.75, 1.0),
        b_values=(0.0, 0.5, 1.0, 1.5),
        seeds=1,
        steps=6,
    )
    rows = experiment.classify(experiment.run(spec))
    by_cell = {(r["a"], r["b"]): r for r in rows}
    assert by_cell[(1.0, 1.0)]["measured"] == "feature learning"
    assert by_cell[(0.75, 0.5)]["measured"] == "lazy"
    assert by_cell[(1.0, 0.0)]["measured"] == "no learning"
    assert by_cell[(1.0, 1.5)]["measured"] == "unstable"
    assert sum(r["measured"] == r["theory"] for r in rows) == len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fast_default_claims_pass(name):
    """The fast default of every experiment passes its claims (C12 against the slope its own
    measured bias exponent predicts: see its module), except the free-exponent budget claims on
    the authors' small grids, which are known to FAIL there: for D <= 256 the 1/sqrt(D) term is
    pre-asymptotic, so the fitted budget exponent lies outside theory +- tolerance (issue 10
    measured 0.28-0.29 for the embedding; docs/chizat.md). They must keep failing at this scale
    until the grid changes; a pass would mean the grid or the estimator changed."""
    experiment = get_experiment(name)
    dataset = experiment.run(experiment.fast())
    for claim in experiment.claims(dataset):
        if (name, claim.id) in PREASYMPTOTIC_AT_FAST_SCALE:
            assert not claim.passed, (name, claim.id, claim.measured)
            continue
        assert claim.passed, (claim.id, claim.measured, claim.statement)


# (experiment, claim) whose fast-default grid cannot reach the asymptotic exponent
PREASYMPTOTIC_AT_FAST_SCALE = {
    ("chizat-scaling", "C10"),
    ("chizat-scaling", "C11"),
    ("chizat-grid", "C16"),
}


@pytest.mark.parametrize("name", NAMES)
def test_full_and_fast_specs_are_valid_and_round_trip(name):
    experiment = get_experiment(name)
    for spec in (experiment.fast(), experiment.full(), experiment.smoke()):
        assert type(spec).model_validate_json(spec.model_dump_json()) == spec
        assert spec.threads == 1


def test_per_network_errors_give_the_rms_error_of_the_claims(suite):
    """The error sweeps store each network's error (the 95% bars of their figures): the RMS
    over the networks is the error their claims fit, to rounding."""
    from deeplimit.experiments.chizat_common import rms_over

    pairs = {
        "chizat-alpha": [("output_errors", "output_error")],
        "chizat-dim": [("embedding_errors", "embedding_error")],
        "chizat-width": [
            ("tanh_embedding_errors", "tanh_embedding_error"),
            ("linear_output_errors", "linear_output_error"),
        ],
        "chizat-depth": [("errors", "error")],
    }
    by_name = {r.name: r.dataset for r in suite.reproductions}
    for name, variables in pairs.items():
        for per_network, error in variables:
            rms = rms_over(by_name[name][per_network].values)[0]
            np.testing.assert_allclose(rms, by_name[name][error].values, rtol=1e-12)
