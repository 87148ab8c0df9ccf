"""The random-ResNet sampler and the SDE solver: shapes, determinism, paths against each other."""

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

import deeplimit as dl
from deeplimit.initialization.chain import gram_square_root

Y0_TWO = [[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]]


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(y0=[1.0, 2.0, 3.0]), (7, 3)),
        (dict(y0=Y0_TWO), (7, 2, 3)),
        (dict(y0=[[1.0, 2.0, 3.0]]), (7, 1, 3)),
        (dict(x=[1.0, 0.5]), (7, 3)),
        (dict(x=[[1.0, 0.5], [0.0, 1.0]]), (7, 2, 3)),
        (dict(y0=[1.0, 2.0, 3.0], record="all"), (7, 11, 3)),
        (dict(y0=Y0_TWO, record="all"), (7, 11, 2, 3)),
        (dict(y0=Y0_TWO, record=[0, 5]), (7, 2, 2, 3)),
        (dict(y0=Y0_TWO, record=[5]), (7, 1, 2, 3)),
        (dict(y0=Y0_TWO, record=4), (7, 2, 3)),
    ],
)
@pytest.mark.parametrize("method", ["law", "weights"])
def test_result_shapes(kwargs, shape, method):
    y = dl.sample_resnet(3, 10, "relu", samples=7, method=method, **kwargs)
    assert tuple(y.shape) == shape
    assert y.dtype == torch.float64


def test_recorded_layers_are_the_right_ones():
    all_layers = dl.sample_resnet(2, 12, "tanh", samples=50, y0=[0.3, -1.0], record="all")
    some = dl.sample_resnet(2, 12, "tanh", samples=50, y0=[0.3, -1.0], record=[12, 0, 7])
    assert torch.equal(some, all_layers[:, [12, 0, 7]])
    assert torch.equal(
        all_layers[:, 0], torch.tensor([0.3, -1.0], dtype=torch.float64).expand(50, 2)
    )
    last = dl.sample_resnet(2, 12, "tanh", samples=50, y0=[0.3, -1.0])
    assert torch.equal(last, all_layers[:, -1])


@pytest.mark.parametrize("method", ["law", "weights"])
@pytest.mark.parametrize("inputs", ["y0-one", "x-two"])
def test_same_seed_same_numbers_whatever_the_chunk_size(method, inputs):
    kwargs = (
        dict(y0=[1.0, -1.0, 0.5, 2.0]) if inputs == "y0-one" else dict(x=[[1.0, 2.0], [-1.0, 0.3]])
    )
    reference = dl.sample_resnet(4, 20, "relu", samples=3000, method=method, seed=5, **kwargs)
    for chunk_size in (1, 97, 1000, 10**6):
        again = dl.sample_resnet(
            4, 20, "relu", samples=3000, method=method, seed=5, chunk_size=chunk_size, **kwargs
        )
        assert torch.equal(again, reference), chunk_size
    tiny_budget = dl.sample_resnet(
        4, 20, "relu", samples=3000, method=method, seed=5, memory_budget=1, **kwargs
    )
    assert torch.equal(tiny_budget, reference)
    other_seed = dl.sample_resnet(4, 20, "relu", samples=3000, method=method, seed=6, **kwargs)
    assert not torch.equal(other_seed, reference)


def test_sde_with_steps_equal_to_depth_is_the_resnet_in_law_and_in_numbers():
    """Lemma 6: the ResNet is the Euler scheme of the SDE with step 1/L."""
    for kwargs in (dict(y0=[1.0, -0.5]), dict(x=[[1.0], [-2.0]])):
        resnet = dl.sample_resnet(2, 30, "gelu", samples=500, record="all", seed=2, **kwargs)
        sde = dl.sample_sde(2, "gelu", steps=30, samples=500, record="all", seed=2, **kwargs)
        assert torch.equal(resnet, sde)


def test_sde_records_times_on_the_grid():
    paths = dl.sample_sde(2, "relu", steps=40, samples=20, y0=[1.0, 0.5], record="all")
    at = dl.sample_sde(2, "relu", steps=40, samples=20, y0=[1.0, 0.5], record=[0.25, 1.0, 0.0])
    assert torch.equal(at, paths[:, [10, 40, 0]])
    one = dl.sample_sde(2, "relu", steps=40, samples=20, y0=[1.0, 0.5], record=0.5)
    assert torch.equal(one, paths[:, 20])
    with pytest.raises(ValueError, match="not a multiple of 1/steps"):
        dl.sample_sde(2, "relu", steps=40, samples=20, y0=[1.0, 0.5], record=[0.33])


def test_gram_square_root_handles_singular_gram_matrices():
    generator = torch.Generator().manual_seed(0)
    phi = torch.randn(500, 4, 6, generator=generator, dtype=torch.float64)
    phi[:100, 1] = 0.0  # a collapsed input
    phi[100:200, 2] = phi[100:200, 0]  # two equal inputs
    phi[200:300, 3] = 2.0 * phi[200:300, 1] - phi[200:300, 0]  # a linear combination
    gram = phi @ phi.transpose(1, 2)
    root = gram_square_root(gram)
    assert torch.allclose(root @ root.transpose(1, 2), gram, rtol=1e-12, atol=1e-11)
    assert torch.equal(root, torch.tril(root))
    assert torch.isfinite(root).all()


def test_float32_path_matches_float64_in_law():
    kwargs = dict(samples=20000, y0=[1.0, 0.5, -0.3], seed=1)
    y64 = dl.sample_resnet(3, 50, "tanh", dtype=torch.float64, **kwargs)
    y32 = dl.sample_resnet(3, 50, "tanh", dtype="float32", **kwargs)
    assert y32.dtype == torch.float32
    for statistic in (lambda y: y[:, 0], lambda y: y.norm(dim=-1)):
        result = scipy.stats.ks_2samp(statistic(y64).numpy(), statistic(y32).double().numpy())
        assert result.pvalue > 1e-3 / 2


def _two_sample_p_values(a, b, functionals):
    return [scipy.stats.ks_2samp(f(a).numpy(), f(b).numpy()).pvalue for f in functionals]


@pytest.mark.parametrize("width", [1, 3, 16])
def test_exact_law_matches_explicit_weights_one_input(width):
    y0 = torch.linspace(-1.0, 1.5, width, dtype=torch.float64)
    kwargs = dict(samples=6000, y0=y0, record=[5, 20])
    law = dl.sample_resnet(width, 20, "relu", method="law", seed=10, **kwargs)
    weights = dl.sample_resnet(width, 20, "relu", method="weights", seed=11, **kwargs)
    functionals = [
        lambda y: y[:, 1, 0],
        lambda y: y[:, 1].norm(dim=-1),
        lambda y: y[:, 0, -1],
        lambda y: torch.relu(y[:, 1]).norm(dim=-1),
    ]
    p_values = _two_sample_p_values(law, weights, functionals)
    assert min(p_values) > 1e-3 / len(p_values), p_values  # Bonferroni at family level 1e-3


@pytest.mark.parametrize("width", [1, 3, 16])
def test_exact_law_matches_explicit_weights_two_inputs(width):
    x = [[1.0, 0.2], [-0.3, 1.0]]
    kwargs = dict(samples=6000, x=x, record=[3, 15])
    law = dl.sample_resnet(width, 15, "tanh", method="law", seed=20, **kwargs)
    weights = dl.sample_resnet(width, 15, "tanh", method="weights", seed=21, **kwargs)

    def correlation(y):
        a, b = y[:, 1, 0], y[:, 1, 1]
        return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))

    functionals = [
        lambda y: y[:, 1, 0, 0],
        lambda y: y[:, 1, 1, -1],
        lambda y: y[:, 0, 1].norm(dim=-1),
        lambda y: (y[:, 1, 0] * y[:, 1, 1]).sum(-1),
    ]
    if width > 1:
        functionals.append(correlation)
    p_values = _two_sample_p_values(law, weights, functionals)
    assert min(p_values) > 1e-3 / len(p_values), p_values


def test_explicit_weights_are_shared_across_inputs():
    """Two identical inputs stay identical along the whole path: the weights are shared."""
    for method in ("law", "weights"):
        y = dl.sample_resnet(
            5, 20, "relu", samples=200, x=[[1.0, 2.0], [1.0, 2.0]], method=method, record="all"
        )
        assert torch.allclose(y[:, :, 0], y[:, :, 1], rtol=1e-12, atol=1e-12)


def test_explicit_weights_have_variance_one_over_n_and_input_weights_one_over_d():
    """One layer from y0 with identity: Y_1 - Y_0 = W phi(Y_0)/sqrt(L); Y_0 = W_in x."""
    n, d = 4, 3
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    y0 = dl.sample_resnet(n, 1, "linear", samples=40000, x=x, record=0, method="weights")
    samples = y0.numpy().ravel()
    expected_var = float(x.pow(2).sum()) / d
    chi2 = scipy.stats.chi2(df=samples.size - 1)
    statistic = (samples.size - 1) * samples.var(ddof=1) / expected_var
    assert chi2.cdf(statistic) > 5e-4 and chi2.sf(statistic) > 5e-4


def test_nonfinite_paths_are_reported():
    explode = lambda t: t * 1e200
    with pytest.raises(
        dl.NumericalBlowupError, match=r"300 of 300 sample paths became non-finite.*at layer [12] "
    ):
        dl.sample_resnet(2, 5, explode, samples=300, y0=[1.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = dl.sample_resnet(2, 5, explode, samples=300, y0=[1.0, 1.0], on_nonfinite="warn")
    assert any("non-finite" in str(w.message) for w in caught)
    assert not torch.isfinite(y).all()
    with pytest.raises(dl.NumericalBlowupError, match="at step"):
        dl.sample_sde(2, explode, steps=5, samples=300, y0=[1.0, 1.0])


def test_error_counts_only_affected_paths():
    # phi = 1e200 * relu: only paths with a positive coordinate explode.
    explode_positive = lambda t: torch.relu(t) * 1e200
    with pytest.raises(dl.NumericalBlowupError) as info:
        dl.sample_resnet(1, 3, explode_positive, samples=1000, x=[1.0])
    # Y_0 > 0 and Y_1 > 0 (probability 1/4) make Y_2 overflow; the other paths stay finite.
    assert 200 < info.value.paths < 300 and info.value.total == 1000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=0), "width must be an integer >= 1, got 0"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(depth=2.5), "depth must be an integer >= 1"),
        (dict(samples=0), "samples must be an integer >= 1"),
        (dict(activation="sigmoidish"), "activation must be one of"),
        (dict(activation="leaky:alpha"), "key=value"),
        (
            dict(y0=[1.0, 2.0]),
            r"y0 must have shape \(width,\) = \(3,\) or \(k, 3\), got shape \(2,\)",
        ),
        (dict(y0=[[1.0, 2.0, 3.0, 4.0]]), r"y0 must have shape .* got shape \(1, 4\)"),
        (dict(y0=[1.0, math.nan, 0.0]), "y0 must be finite, got 1 NaN or inf entry"),
        (dict(y0=None, x=[1.0, math.inf]), "x must be finite"),
        (dict(y0=None, x=np.ones((2, 2, 2))), "x must be one vector"),
        (dict(y0=[1.0, 2.0, 3.0], x=[1.0]), "give exactly one of y0 .* got both"),
        (dict(y0=None), "give exactly one of y0 .* got neither"),
        (dict(method="exact"), "method must be one of 'law', 'weights'"),
        (dict(record="first"), "record must be 'last', 'all'"),
        (dict(record=[0, 11]), r"record must be .* in \[0, 10\].*got 11"),
        (dict(record=[]), "empty list"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(dtype=torch.int64), "dtype must be torch.float32 or torch.float64"),
        (dict(device="tpu"), "device must be"),
        (dict(chunk_size=0), "chunk_size must be an integer >= 1"),
        (dict(on_nonfinite="skip"), "on_nonfinite must be one of"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, match):
    arguments = dict(width=3, depth=10, activation="relu", samples=5, y0=[1.0, 2.0, 3.0])
    arguments.update(kwargs)
    width, depth, activation = (
        arguments.pop("width"),
        arguments.pop("depth"),
        arguments.pop("activation"),
    )
    with pytest.raises(ValueError, match=match):
        dl.sample_resnet(width, depth, activation, **arguments)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device is available"):
        dl.sample_resnet(3, 10, "relu", samples=5, y0=[1.0, 2.0, 3.0], device="cuda")


def test_sde_bad_steps():
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        dl.sample_sde(3, "relu", steps=0, samples=5, y0=[1.0, 2.0, 3.0])


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["law", "weights"])
def test_cuda_paths_match_cpu_in_law_and_are_chunk_independent(method, cuda_device):
    kwargs = dict(samples=20000, x=[[1.0, 0.5], [0.2, -1.0]], method=method, seed=4)
    gpu = dl.sample_resnet(4, 30, "relu", device=cuda_device, **kwargs)
    again = dl.sample_resnet(4, 30, "relu", device="cuda", chunk_size=333, **kwargs)
    assert gpu.device.type == "cuda" and torch.equal(gpu, again)
    cpu = dl.sample_resnet(4, 30, "relu", **{**kwargs, "samples": 6000})
    p = scipy.stats.ks_2samp(gpu[:, 0, 0].cpu().numpy(), cpu[:, 0, 0].numpy()).pvalue
    assert p > 1e-3
    f32 = dl.sample_resnet(4, 30, "relu", device=cuda_device, dtype=torch.float32, **kwargs)
    p = scipy.stats.ks_2samp(
        f32[:, 1].norm(dim=-1).double().cpu().numpy(), gpu[:, 1].norm(dim=-1).cpu().numpy()
    ).pvalue
    assert p > 1e-3
