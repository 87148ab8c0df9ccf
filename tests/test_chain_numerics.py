"""The chain at the edges of floating point: nearly collinear inputs, underflow, repeated
records (issue 8, items 1, 3 and 4)."""

import math

import numpy as np
import pytest
import torch

import deeplimit as dl
from deeplimit import stats
from deeplimit.initialization import chain
from deeplimit.initialization.chain import factor_rows, stable_norm

# ---------------------------------------------------------------------------------------------
# Nearly collinear inputs: the law path against explicit weights

WIDTH, DEPTH = 5, 64
X1 = np.array([0.7, -0.4, 1.1, 0.3, -0.9])
DIRECTION = np.array([0.2, 0.5, -0.3, 0.8, 0.1]) / np.linalg.norm([0.2, 0.5, -0.3, 0.8, 0.1])
# KS at family level 1e-3, Bonferroni over the 8 comparisons of the grid below. With N samples
# per side the two-sample KS rejects at level a beyond D ~ sqrt(-ln(a/2)/2) sqrt(2/N): N = 8000
# resolves D ~ 0.035 at a = 1e-3/8, while the Gram-Cholesky factor shifted the law by D > 0.3.
SAMPLES = 8000
LEVEL = 1e-3 / 8


def _pair(eps: float, dtype: str) -> tuple[np.ndarray, float]:
    """Inputs ``(x1, x1 + eps v)`` as the dtype represents them (the same float64 numbers are
    given to every path), and their exact distance."""
    x1 = X1.astype(dtype).astype(np.float64)
    x2 = (X1 + eps * DIRECTION).astype(dtype).astype(np.float64)
    return np.stack([x1, x2]), float(np.linalg.norm(x2 - x1))


def _sensitivity(y0: np.ndarray, distance: float, method: str, dtype: str, seed: int):
    y = dl.sample_resnet(
        WIDTH, DEPTH, "tanh", samples=SAMPLES, y0=y0, method=method, seed=seed, dtype=dtype
    )
    return ((y[:, 1] - y[:, 0]).double().norm(dim=-1) / distance).numpy()


# (eps, dtype of the law path, dtype of the explicit-weights reference). float32 resolves
# eps = 1e-3 (the difference spans ~1e4 ulps): its law path is compared with float64 weights.
# At eps = 1e-6 the difference of the two float32 inputs is ~16 ulps of |x|: rounding the
# states adds ~8 % to the difference in *any* float32 path, so there the two float32 paths
# are compared with each other (same inputs, same rounding mechanism), not with float64.
RESOLVED = [
    (1e-3, "float64", "float64"),
    (1e-6, "float64", "float64"),
    (1e-9, "float64", "float64"),
    (1e-3, "float32", "float64"),
    (1e-6, "float32", "float32"),
]


@pytest.mark.parametrize("eps, dtype, reference", RESOLVED)
def test_law_of_the_sensitivity_to_a_tiny_perturbation_matches_explicit_weights(
    eps, dtype, reference
):
    """``||Y_L(x2) - Y_L(x1)|| / ||x2 - x1||`` for ``x2 = x1 + eps v``: the factor of
    ``Phi`` keeps the orthogonal part of ``phi(Y(x2))`` down to rounding, so the law path has
    the law of explicit weights for every eps (a Cholesky factor of ``Phi Phi^T`` with a pivot
    tolerance dropped it: 15-20 % low at eps = 1e-9 in float64, at eps = 1e-3 in float32)."""
    y0, distance = _pair(eps, dtype)
    law = _sensitivity(y0, distance, "law", dtype, seed=1)
    weights = _sensitivity(y0, distance, "weights", reference, seed=2)
    result = stats.two_sample_test(law, weights, level=LEVEL)
    assert result.passed, result


@pytest.mark.parametrize("eps, dtype", [(1e-3, "float64"), (1e-6, "float64"), (1e-3, "float32")])
def test_correlation_of_nearly_collinear_inputs_matches_explicit_weights(eps, dtype):
    """The correlation observable, as ``1 - c`` (``c`` itself rounds to 1), law against
    weights in the same dtype, where ``1 - c ~ eps^2`` is resolved (``eps^2 >> u``)."""
    y0, _ = _pair(eps, dtype)
    samples = {}
    for method, seed in (("law", 3), ("weights", 4)):
        obs = dl.observe_resnet(
            WIDTH,
            DEPTH,
            "tanh",
            samples=SAMPLES,
            y0=y0,
            method=method,
            seed=seed,
            dtype=dtype,
            observables="correlation",
        )
        samples[method] = (1.0 - obs["correlation"][:, 0, 0]).double().numpy() / eps**2
    result = stats.two_sample_test(samples["law"], samples["weights"], level=LEVEL)
    assert result.passed, result


@pytest.mark.parametrize(
    "eps, dtype", [(0.0, "float64"), (0.0, "float32"), (1e-9, "float32"), (1e-20, "float64")]
)
@pytest.mark.parametrize("method", ["law", "weights"])
def test_inputs_identical_in_the_dtype_stay_identical(eps, dtype, method):
    """eps = 0, or an eps below the dtype's resolution (then the two inputs round to the same
    numbers): both paths keep the two inputs exactly equal, correlation 1 to rounding."""
    y0, distance = _pair(eps, dtype)
    assert distance == 0.0
    y = dl.sample_resnet(WIDTH, DEPTH, "tanh", samples=2000, y0=y0, method=method, dtype=dtype)
    assert torch.equal(y[:, 0], y[:, 1])
    obs = dl.observe_resnet(
        WIDTH,
        DEPTH,
        "tanh",
        samples=200,
        y0=y0,
        method=method,
        dtype=dtype,
        observables="correlation",
    )
    unit = torch.finfo(getattr(torch, dtype)).eps
    assert (obs["correlation"] - 1).abs().max() <= 8 * unit


def _reference_rows():
    generator = torch.Generator().manual_seed(0)
    phi = torch.randn(600, 4, 6, generator=generator, dtype=torch.float64)
    phi[:100, 1] = 0.0  # a collapsed input
    phi[100:200, 2] = phi[100:200, 0]  # two equal inputs
    phi[200:300, 3] = 2.0 * phi[200:300, 1] - phi[200:300, 0]  # a linear combination
    phi[300:400, 0] = 0.0  # the first input collapsed
    phi[400:500] = phi[400:500, :1]  # four identical inputs
    phi[500:] *= 1e-170  # squares underflow
    return phi


def _factor_samples_last(phi):
    """The CPU chain's factor (``chain._factor_rows_last``) of ``phi`` (batch, k, n) stored
    samples-last, as (batch, k, k) like ``factor_rows``."""
    size, k, n = phi.shape
    memory = phi.permute(1, 2, 0).contiguous()
    space = chain._Workspace(k, n, size, phi.dtype, torch.device("cpu"))
    norm = stable_norm(memory.permute(2, 0, 1))
    return chain._factor_rows_last(memory, norm, space).permute(2, 0, 1)


FACTORS = pytest.mark.parametrize(
    "factor_rows", [factor_rows, _factor_samples_last], ids=["factor_rows", "samples_last"]
)


@FACTORS
def test_factor_rows_reproduces_phi_phi_transpose_for_degenerate_rows(factor_rows):
    phi = _reference_rows()
    factor = factor_rows(phi)
    assert torch.isfinite(factor).all()
    assert torch.equal(factor, torch.tril(factor))
    assert (torch.diagonal(factor, dim1=-2, dim2=-1) >= 0).all()
    scale = phi.norm(dim=-1).amax(-1)[:, None, None] ** 2
    gram = phi @ phi.transpose(1, 2)
    error = (factor @ factor.transpose(1, 2) - gram).abs() / torch.where(scale > 0, scale, 1)
    assert error.max() < 64 * torch.finfo(torch.float64).eps
    assert torch.equal(factor[400:500, 1:], factor[400:500, :1].expand(-1, 3, -1))
    wide = torch.randn(300, 8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    factor = factor_rows(wide)  # k > n: rank n
    gram = wide @ wide.transpose(1, 2)
    assert torch.allclose(factor @ factor.transpose(1, 2), gram, rtol=0, atol=1e-12 * gram.max())


@FACTORS
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("eps", [1e-2, 1e-4, 1e-6, 1e-9, 1e-12])
def test_factor_rows_resolves_orthogonal_parts_down_to_rounding(dtype, eps, factor_rows):
    """Rows ``phi`` and ``phi + eps w`` with ``w`` orthogonal to ``phi``: the second diagonal
    entry is ``eps |w|`` to an absolute error of a few ``u |phi|`` (Gram-Schmidt), where a
    factor of ``Phi Phi^T`` errs by ``u |phi|^2 / (eps |w|)`` or drops it."""
    unit = torch.finfo(dtype).eps
    if eps < 100 * unit:
        pytest.skip("the orthogonal part is below the dtype's resolution")
    phi = torch.tensor([1.0, -0.5, 0.25, 2.0], dtype=torch.float64)
    w = torch.tensor([0.5, 1.0, 0.0, 0.0], dtype=torch.float64)
    rows = torch.stack([phi, phi + eps * w]).to(dtype)
    exact = rows.double()
    residual = exact[1] - (exact[1] @ exact[0]) / (exact[0] @ exact[0]) * exact[0]
    diagonal = factor_rows(rows[None])[0, 1, 1].double()
    assert abs(diagonal - residual.norm()) <= 8 * unit * float(phi.norm())


def test_stable_norm_does_not_underflow_or_overflow():
    for dtype in (torch.float64, torch.float32):
        info = torch.finfo(dtype)
        for scale in (1e-170, 1e-300, 1e-20, 1.0, 1e20, 1e170, info.max / 8, info.tiny * 4):
            x = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64) * scale
            x = x.to(dtype)
            if x[0, 0] == 0 or not torch.isfinite(x).all():
                continue
            norm = stable_norm(x)
            assert norm[1] == 0
            expected = math.hypot(*x[0].double().tolist())
            assert math.isclose(float(norm[0]), expected, rel_tol=4 * info.eps), (dtype, scale)
    # where the plain norm sqrt(sum x^2) (what the chain computes; within rounding of torch's
    # vector_norm) is valid, a power-of-two scaling gives the same bits
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    plain = x.square().sum(-1).sqrt()
    torch.testing.assert_close(plain, torch.linalg.vector_norm(x, dim=-1), rtol=4e-16, atol=0)
    for power in (-900, -300, 0, 300, 900):
        assert torch.equal(stable_norm(x * 2.0**power), plain * 2.0**power)
    # samples last in memory (the CPU chain's layout): the same norms, to rounding
    torch.testing.assert_close(stable_norm(x.t().contiguous().t()), plain, rtol=4e-16, atol=0)


# ---------------------------------------------------------------------------------------------
# Underflow is reported, never counted as collapse; log-growth lives in log space

# Width 1, phi(y) = a y: log|Y_L / Y_0| = sum_l log|1 + (a / sqrt(L)) Z_l|, whose mean is about
# -0.24 L at a / sqrt(L) ~ 0.8: below float32's range (e^-87) at L = 1000 and float64's
# (e^-745) at L = 4000, for every path. ISSUE is the case of issue 8, item 3.
ISSUE = dict(width=1, depth=10_000, activation="linear:a=50", y0=[1.0])
UNDERFLOW = {
    "float64": dict(width=1, depth=4000, activation="linear:a=50", y0=[1.0]),
    "float32": dict(width=1, depth=1000, activation="linear:a=25", y0=[1.0]),
}


def _width1_linear_log_growth_law(a: float, depth: int) -> dl.laws.NormalLaw:
    """``LG_L = sum_l log|1 + (a / sqrt(L)) Z_l|`` for width 1 and ``phi(y) = a y``: a sum of
    ``L`` iid terms, normal by the CLT with moments by quadrature (the sum's skewness is about
    ``-2 / sqrt(L)``: at L >= 1000 the normal cdf is off by < 2e-3, far below the KS
    resolution). The SDE law ``N(-a^2/2, a^2)`` (``identity_log_norm_law`` after the time
    change ``t -> a^2 t``) does not apply: ``a / sqrt(L) ~ 0.8`` is not small, and at the
    issue's a = 50, L = 1e4 its mean is -1250 where the exact one is -1728."""
    import scipy.integrate

    c = a / math.sqrt(depth)

    def moment(power: int) -> float:
        def integrand(z: float) -> float:
            return math.log(abs(1 + c * z)) ** power * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

        pole = -1 / c
        return sum(
            scipy.integrate.quad(integrand, lo, hi, limit=200)[0]
            for lo, hi in ((-math.inf, pole), (pole, math.inf))
        )

    mean, second = moment(1), moment(2)
    return dl.laws.normal_law(depth * mean, depth * (second - mean**2))


def test_linear_network_never_collapses_even_where_its_state_underflows():
    """The issue's case: P(collapse) was 1.0 (float64) and 0.228 (float32)."""
    for dtype in ("float64", "float32"):
        result = dl.collapse_probability(
            ISSUE["width"],
            ISSUE["depth"],
            ISSUE["activation"],
            samples=200,
            y0=ISSUE["y0"],
            dtype=dtype,
        )
        assert result.collapsed.max() == 0 and result.probability.max() == 0.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_growth_is_finite_and_exact_where_the_state_underflows(dtype):
    """|Y_L| is below the dtype's range for every path, yet LG_L is computed exactly in log
    space (the chain is scale-equivariant) and has the law of the sum of log-increments."""
    case = UNDERFLOW[dtype]
    obs = dl.observe_resnet(
        case["width"],
        case["depth"],
        case["activation"],
        samples=3000,
        y0=case["y0"],
        dtype=dtype,
        seed=5,
    )
    growth = obs["log_growth"].double().numpy()
    assert np.isfinite(growth).all()
    assert (growth < math.log(torch.finfo(getattr(torch, dtype)).tiny)).mean() > 0.99
    a = float(case["activation"].split("=")[1])
    result = stats.ks_test(growth, _width1_linear_log_growth_law(a, case["depth"]), level=1e-3 / 2)
    assert result.passed, result


def test_values_below_the_float_range_raise_underflow_with_count_layer_and_dtype():
    case = UNDERFLOW["float32"]
    width, depth, activation = case["width"], case["depth"], case["activation"]
    kwargs = dict(samples=200, y0=case["y0"], dtype="float32")
    with pytest.raises(dl.NumericalUnderflowError) as info:
        dl.sample_resnet(width, depth, activation, **kwargs)
    error = info.value
    assert isinstance(error, dl.NumericalError) and not isinstance(error, dl.NumericalBlowupError)
    assert error.total == 200 and error.paths > 190 and error.first_layer == depth
    for part in ("dtype=float32", "try dtype=torch.float64", "log_growth"):
        assert part in str(error)
    with pytest.warns(RuntimeWarning, match="underflowed"):
        y = dl.sample_resnet(width, depth, activation, on_nonfinite="warn", **kwargs)
    assert (y == 0).float().mean() > 0.95
    # the layers asked for are representable: nothing to report
    y = dl.sample_resnet(width, depth, activation, record=[0, 10], **kwargs)
    assert torch.isfinite(y).all() and (y != 0).all()
    with pytest.raises(dl.NumericalUnderflowError, match=f"at layer {depth}"):
        dl.observe_resnet(width, depth, activation, observables="norm", **kwargs)
    with pytest.raises(dl.NumericalUnderflowError, match="backward pass"):
        dl.gradient_norms(width, depth, activation, method="law", layers=[0], **kwargs)
    with pytest.raises(dl.NumericalUnderflowError, match="at step"):
        dl.sample_sde(width, activation, steps=depth, **kwargs)


def test_underflow_without_scale_equivariance_is_reported_not_collapsed():
    """A user callable is not known to be homogeneous: its state is kept as is, and a state
    that underflows to zero is reported, and not counted as collapse when kept ('warn')."""
    times_25 = lambda t: 25.0 * t
    kwargs = dict(samples=200, y0=[1.0], dtype="float32")
    with pytest.raises(dl.NumericalUnderflowError, match="sample paths underflowed"):
        dl.collapse_probability(1, 1000, times_25, **kwargs)
    with pytest.warns(RuntimeWarning, match="underflowed"):
        obs = dl.observe_resnet(
            1, 1000, times_25, observables="collapse", on_nonfinite="warn", **kwargs
        )
    assert (obs["collapse_layer"] == -1).all()


def test_norms_do_not_underflow_while_the_state_is_representable():
    """Y ~ 1e-170 is representable in float64, but its squares are not: the one-input law
    path used to see ||phi(Y)|| = 0 and freeze every path."""
    identity = lambda t: t
    kwargs = dict(samples=300, seed=3, record="all")
    small = dl.sample_resnet(3, 20, identity, y0=[1e-170, -2e-170, 5e-171], **kwargs)
    plain = dl.sample_resnet(3, 20, identity, y0=[1.0, -2.0, 0.5], **kwargs)
    # the same chain up to the rounding of the inputs' scaling (relative 1e-16 per step)
    error = (small * 1e170 - plain).norm(dim=-1) / plain.norm(dim=-1)
    assert error.max() < 1e-12
    obs = dl.observe_resnet(
        3,
        20,
        identity,
        samples=300,
        y0=[1e-170, -2e-170, 5e-171],
        observables=["log_growth", "quasi_gbm", "norm", "collapse"],
    )
    assert torch.isfinite(obs["log_growth"]).all() and torch.isfinite(obs["drift"]).all()
    assert (obs["y_norm"] > 0).all() and (obs["collapse_layer"] == -1).all()


@pytest.mark.parametrize("method", ["law", "weights"])
def test_gradients_do_not_depend_on_the_input_scale_for_relu(method):
    """ReLU is positively homogeneous and phi' is scale-free: the gradient norms of an input
    of size 1e-300 (its squares underflow) are those of the same input at size 1."""
    kwargs = dict(samples=200, seed=4, method=method)
    tiny = dl.gradient_norms(3, 30, "relu", y0=[1e-300, -2e-300, 3e-300], **kwargs)
    plain = dl.gradient_norms(3, 30, "relu", y0=[1.0, -2.0, 3.0], **kwargs)
    assert torch.allclose(tiny, plain, rtol=1e-10, atol=0)


@pytest.mark.parametrize("activation", ["relu", "linear:a=3", "leaky:alpha=1,beta=0.3"])
@pytest.mark.parametrize("method", ["law", "weights"])
def test_power_of_two_rescaling_leaves_the_numbers_unchanged(activation, method):
    """Inputs 2^600 times larger or smaller: the chain rescales by powers of two, which is
    exact, so every recorded value is the plain one times 2^+-600 and the scale-free
    observables are identical."""
    kwargs = dict(samples=100, seed=6, method=method, x=[[1.0, -0.5], [0.3, 0.2]])
    plain = dl.sample_resnet(4, 30, activation, record="all", **kwargs)
    names = ["log_growth", "correlation", "active", "collapse"]
    observed = dl.observe_resnet(4, 30, activation, layers="all", observables=names, **kwargs)
    for power in (-600, 600):
        x = torch.tensor(kwargs["x"], dtype=torch.float64) * 2.0**power
        scaled = dl.sample_resnet(4, 30, activation, record="all", **{**kwargs, "x": x})
        assert torch.equal(scaled * 2.0**-power, plain)
        again = dl.observe_resnet(
            4, 30, activation, layers="all", observables=names, **{**kwargs, "x": x}
        )
        for name in observed.values:
            torch.testing.assert_close(again[name], observed[name], rtol=0, atol=0, equal_nan=True)


def test_cli_reports_underflow_in_one_line_with_exit_code_3(tmp_path):
    from typer.testing import CliRunner

    from deeplimit.cli import app

    out = tmp_path / "u.nc"
    result = CliRunner().invoke(
        app,
        [
            "sample",
            "resnet",
            "--width",
            "1",
            "--depth",
            "10000",
            "--activation",
            "linear:a=50",
            "--y0",
            "1",
            "--samples",
            "50",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "sample paths underflowed" in lines[0], result.output
    assert "mean 0" not in result.output and not out.exists()


# ---------------------------------------------------------------------------------------------
# Repeated layers / times fill every slot (as numpy's a[[3, 3]] does)


@pytest.mark.parametrize("method", ["law", "weights"])
@pytest.mark.parametrize("inputs", [dict(y0=[1.0, -0.5, 0.3]), dict(x=[[1.0, 0.2], [0.3, -1.0]])])
def test_sample_resnet_fills_every_slot_of_a_repeated_layer(method, inputs):
    kwargs = dict(samples=50, method=method, seed=8, **inputs)
    every = dl.sample_resnet(3, 6, "relu", record="all", **kwargs)
    for record in ([3, 3], [6, 0, 6, 3, 0], [0, 0]):
        y = dl.sample_resnet(3, 6, "relu", record=record, **kwargs)
        assert torch.equal(y, every[:, record]), record


def test_sample_sde_fills_every_slot_of_a_repeated_time():
    kwargs = dict(steps=8, samples=50, y0=[1.0, 0.5], seed=9)
    every = dl.sample_sde(2, "tanh", record="all", **kwargs)
    y = dl.sample_sde(2, "tanh", record=[0.5, 0.5, 1.0, 0.5], **kwargs)
    assert torch.equal(y, every[:, [4, 4, 8, 4]])


PER_LAYER = ("log_growth", "correlation", "active", "y_norm", "phi_norm")


def _assert_observations_match(observations, reference, index):
    for name, values in observations.values.items():
        expected = reference[name][:, index] if name in PER_LAYER else reference[name]
        torch.testing.assert_close(values, expected, rtol=0, atol=0, equal_nan=True, msg=name)


@pytest.mark.parametrize("method", ["law", "weights"])
def test_observe_resnet_fills_every_slot_of_a_repeated_layer(method):
    names = ["log_growth", "active", "correlation", "norm", "collapse", "quasi_gbm"]
    kwargs = dict(samples=40, observables=names, method=method, seed=10)
    kwargs["x"] = [[1.0, 0.2], [0.3, -1.0]]
    every = dl.observe_resnet(3, 6, "relu", layers="all", **kwargs)
    repeated = dl.observe_resnet(3, 6, "relu", layers=[2, 5, 2, 2], **kwargs)
    assert repeated.layers == (2, 5, 2, 2)
    _assert_observations_match(repeated, every, [2, 5, 2, 2])


def test_observe_sde_fills_every_slot_of_a_repeated_time():
    kwargs = dict(steps=8, samples=40, y0=[1.0, 0.5], observables=["log_growth", "norm"], seed=11)
    every = dl.observe_sde(2, "tanh", times="all", **kwargs)
    repeated = dl.observe_sde(2, "tanh", times=[0.25, 0.25, 1.0], **kwargs)
    assert repeated.times == (0.25, 0.25, 1.0)
    _assert_observations_match(repeated, every, [2, 2, 8])


@pytest.mark.parametrize("method", ["law", "weights"])
def test_gradient_norms_fill_every_slot_of_a_repeated_layer(method):
    kwargs = dict(samples=40, y0=[1.0, -0.5, 0.3], method=method, seed=12)
    every = dl.gradient_norms(3, 6, "tanh", layers="all", **kwargs)
    repeated = dl.gradient_norms(3, 6, "tanh", layers=[4, 4, 0, 4], **kwargs)
    assert torch.equal(repeated, every[:, [4, 4, 0, 4]])


def test_cli_record_with_a_repeated_layer_writes_both_slots(tmp_path):
    from typer.testing import CliRunner

    from deeplimit.cli import app
    from deeplimit.results import load_result

    def run(record, out):
        args = ["sample", "resnet", "--width", "2", "--depth", "6", "--y0", "1,0.5"]
        args += ["--samples", "30", "--record", record, "--out", str(out), "-q"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return load_result(out)[0]["Y"].values

    repeated = run("5,5", tmp_path / "r.nc")
    single = run("5", tmp_path / "s.nc")
    assert repeated.shape == (30, 2, 2)
    assert np.array_equal(repeated[:, 0], single) and np.array_equal(repeated[:, 1], single)


# ---------------------------------------------------------------------------------------------
# Without host checks (what an accelerator does) every guarded branch is taken: same numbers


def test_every_guarded_branch_is_exact_for_the_rows_that_do_not_need_it(monkeypatch):
    """On a GPU the chain reads no check back to the host (a sync per layer), so it takes every
    branch those checks guard; on the CPU it skips the ones not needed. Both give the same
    bits: here the CPU is made to take every branch."""
    from deeplimit.initialization import chain

    cases = [
        ("sample", dict(activation="relu", x=[[1.0, 0.2], [1.0, 0.2], [0.0, 0.0]])),
        ("sample", dict(activation="tanh", y0=[[1e-170, 2e-170, 0.0], [1.0, 2.0, 0.0]])),
        ("sample", dict(activation="linear:a=3", x=[[2.0**-700, 1.0]])),
        ("observe", dict(activation="relu", x=[[1.0, 0.2], [0.3, -1.0], [0.3, -1.0]])),
        ("observe", dict(activation="linear:a=50", y0=[[1.0, 0.5, -1.0]], depth=2000)),
        ("gradients", dict(activation="relu", y0=[1e-300, -2e-300, 3e-300])),
    ]

    def run(kind, case):
        case = dict(case)
        depth = case.pop("depth", 12)
        common = dict(samples=60, seed=13, **case)
        if kind == "sample":
            return {"y": dl.sample_resnet(3, depth, record="all", **common)}
        if kind == "gradients":
            return {"g": dl.gradient_norms(3, depth, method="law", **common)}
        names = ["log_growth", "collapse", "active", "quasi_gbm", "norm"]
        if np.ndim(case.get("x", case.get("y0"))) == 2 and len(case.get("x", case.get("y0"))) > 1:
            names.append("correlation")
        on = "ignore" if depth > 100 else "raise"  # norm may be out of range: compare it anyway
        return dl.observe_resnet(
            3, depth, layers="all", observables=names, on_nonfinite=on, **common
        ).values

    expected = [run(kind, case) for kind, case in cases]
    monkeypatch.setattr(chain, "_host_checks", lambda device: False)
    for (kind, case), reference in zip(cases, expected, strict=True):
        for name, values in run(kind, case).items():
            torch.testing.assert_close(
                values, reference[name], rtol=0, atol=0, equal_nan=True, msg=f"{kind} {name}"
            )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_samples_last_factor_is_factor_rows_to_rounding(dtype):
    """Generic rows (k = 4 post-activations of width 16, correlated about 0.5): the CPU
    chain's factor is ``factor_rows``'s entry by entry to a few units of rounding of the row's
    norm (the same Gram-Schmidt in another summation order; row a of C has norm ||phi_a||)."""
    generator = torch.Generator().manual_seed(2)
    phi = torch.randn(500, 4, 16, generator=generator, dtype=torch.float64).relu().to(dtype)
    fast, reference = _factor_samples_last(phi), factor_rows(phi)
    assert torch.equal(fast, torch.tril(fast))
    error = (fast - reference).abs() / phi.double().norm(dim=-1, keepdim=True).to(dtype)
    assert error.max() <= 16 * torch.finfo(dtype).eps, error.max()


def _factor_last_modes(phi, phi_low=math.nan):
    """``_factor_rows_last`` of ``phi`` (batch, k, n) with the per-row checks at every step
    (``careful``) and with one check at the end (the default): both factors as (batch, k, k),
    and the workspace's ``careful`` flag after each."""
    size, k, n = phi.shape
    memory = phi.permute(1, 2, 0).contiguous()
    norm = stable_norm(memory.permute(2, 0, 1))
    factors, flags = [], []
    for careful in (True, False):
        space = chain._Workspace(k, n, size, phi.dtype, torch.device("cpu"))
        space.careful = careful
        factor = chain._factor_rows_last(memory, norm, space, phi_low)
        factors.append(factor.permute(2, 0, 1).clone())
        flags.append(space.careful)
    return factors, flags


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_factor_checked_at_the_end_is_the_factor_checked_at_every_row(dtype):
    """The samples-last factor checked once at the end of a block equals, bit for bit, the one
    checked at every row: for rows in general position (no row close to the span of the
    earlier ones: the end check passes and leaves the careful mode) and for blocks with
    collapsed, repeated, collinear and nearly repeated rows (the end check finds them, the
    block is factored again with the checks, and the next layers keep them)."""
    generator = torch.Generator().manual_seed(11)
    general = torch.randn(300, 4, 16, generator=generator, dtype=torch.float64).to(dtype)
    (careful, fast), flags = _factor_last_modes(general)
    assert torch.equal(careful, fast) and flags == [False, False]
    degenerate = _reference_rows()[:500].to(dtype)
    near = general.clone()
    near[:, 2] = near[:, 0] * (1 + torch.finfo(dtype).eps)  # within rounding of row 0's span
    for phi in (degenerate, near):
        (careful, fast), flags = _factor_last_modes(phi)
        assert torch.equal(careful, fast) and flags == [True, True]
        gram = phi.double() @ phi.double().transpose(1, 2)
        scale = phi.double().norm(dim=-1).amax(-1)[:, None, None] ** 2
        error = (fast.double() @ fast.double().transpose(1, 2) - gram).abs() / scale
        assert error.max() < 64 * torch.finfo(dtype).eps


@pytest.mark.parametrize("scale", [2.0**-70, 2.0**-60, 1.0, 2.0**64], ids=str)
def test_factor_end_check_keeps_the_range_checks_in_float32(scale):
    """float32 rows of size 2^-70 .. 2^60 (squares below the smallest normal number, or above
    the largest) with the smallest ``||phi_i||`` passed as the chain passes it: the end check
    skips the range check of the diagonal only where it is implied, so every sample still has a
    factor of ``Phi`` to rounding (the suspect ones factored again by ``factor_rows``)."""
    generator = torch.Generator().manual_seed(12)
    exact = torch.randn(200, 4, 8, generator=generator, dtype=torch.float64)
    exact[:50, 3] = exact[:50, 1] + 1e-3 * exact[:50, 0]  # nearly collinear rows
    phi = (exact * scale).float()
    low = float(phi.double().norm(dim=-1).min())
    (careful, fast), _ = _factor_last_modes(phi, low)
    assert torch.equal(careful, fast) and torch.isfinite(fast).all()
    rows = phi.double() / scale
    gram = rows @ rows.transpose(1, 2)
    product = (fast.double() / scale) @ (fast.double() / scale).transpose(1, 2)
    norms = rows.norm(dim=-1).amax(-1)[:, None, None] ** 2
    assert ((product - gram).abs() / norms).max() < 64 * torch.finfo(torch.float32).eps
