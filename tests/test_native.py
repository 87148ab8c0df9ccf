"""The compiled layer of several inputs (``initialization/native.py``, ``_factor_update.c``)
against the tensor path it replaces (``chain._factor_rows_last`` and the increment), one
layer at a time on degenerate inputs, and the fallback where no compiler works."""

from __future__ import annotations

import itertools
import math
import os
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import deeplimit as dl
from deeplimit import compiled
from deeplimit.initialization import chain, native
from deeplimit.initialization.observables import OBSERVABLES
from stretch_reference import stretch_bounds, stretch_steps

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no kernel: {native.reason()}")

DTYPES = [torch.float64, torch.float32]


def _layer(phi, y0, z, scale, compiled, relu=False):
    """One increment of the CPU chain on ``(k, n, B)`` memory: the factor and the new state.
    With ``relu``, ``phi`` is ignored and the ReLU of the state is factored."""
    k, n, size = phi.shape
    space = chain._Workspace(k, n, size, phi.dtype, torch.device("cpu"))
    y = torch.empty((k, n, size), dtype=phi.dtype).permute(2, 0, 1)
    noise = torch.empty((k, n, size), dtype=phi.dtype).permute(2, 0, 1)
    y.permute(1, 2, 0).copy_(y0)
    noise.permute(1, 2, 0).copy_(z)
    space.phi.permute(1, 2, 0).copy_(y0.clamp(min=0) if relu else phi)
    norm, low, high = chain._norm_and_range(space.phi, space.square, space.phi_norm, space)
    view = SimpleNamespace(y=y, phi=space.phi, phi_norm=norm, phi_range=(low, high))
    if compiled:
        assert space.native(norm) is not None
    assert chain._increment_rows_last(space, y, view, noise, scale, relu, compiled, True)
    return space.factor()[0].clone(), y.permute(1, 2, 0).clone(), space


def _inputs(kind, dtype, k=4, n=16, size=150, seed=0):
    """phi (k, n, size), y0 and z; ``size`` not a multiple of the kernel's tile."""
    generator = torch.Generator().manual_seed(seed)
    phi = torch.randn((k, n, size), generator=generator, dtype=dtype).clamp_(min=0)
    small, big = (1e-160, 1e150) if dtype == torch.float64 else (1e-20, 1e18)
    if kind == "zero rows":  # collapsed inputs in a third of the samples
        phi[1, :, ::3] = 0
    elif kind == "tiny":  # squares underflow: every tile is left to the tensor path
        phi *= small
    elif kind == "huge":
        phi *= big
    elif kind == "some subnormal":  # a fifth of the samples have a row of subnormal numbers
        phi[2, :, ::5] *= torch.finfo(dtype).tiny * 2.0**-3
    elif kind == "repeated":
        phi[2] = phi[0]
    elif kind == "collinear":
        phi[1] = 2 * phi[0]
    elif kind == "nearly collinear":  # a residual between eps and sqrt(eps) of the norm
        delta = 1e-10 if dtype == torch.float64 else 1e-4
        direction = torch.randn(phi[0].shape, generator=generator, dtype=dtype)
        direction /= direction.norm(dim=0, keepdim=True)
        phi[1] = 2 * phi[0] + delta * phi[0].norm(dim=0, keepdim=True) * direction
    elif kind == "more inputs than the width":
        pass
    y0 = torch.randn(phi.shape, generator=generator, dtype=dtype)
    z = torch.randn(phi.shape, generator=generator, dtype=dtype)
    return phi, y0, z


def _tolerance(dtype, n):
    """Sums of ``n`` products in two orders differ by at most about ``n`` units of rounding
    (relative to the sum of the absolute terms, here the product of the rows' norms)."""
    return 4 * n * torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["plain", "zero rows", "tiny", "huge", "some subnormal"])
def test_kernel_equals_the_tensor_path_to_rounding(dtype, kind):
    """Where no input is close to the span of the others, the factor and the new state of the
    kernel are the tensor path's up to the order of the sums along the width: each entry of
    ``C`` within ``4 n eps`` of the row's norm, each ``y`` within that of its increment."""
    phi, y0, z = _inputs(kind, dtype)
    scale = 0.1
    factor, y, _ = _layer(phi, y0, z, scale, True)
    reference, y_reference, _ = _layer(phi, y0, z, scale, False)
    assert torch.isfinite(factor).all() and torch.isfinite(y).all()
    norms = chain.stable_norm(phi.permute(2, 0, 1)).t()  # (k, B)
    tolerance = _tolerance(dtype, phi.shape[1])
    assert ((factor - reference).abs() <= tolerance * norms.unsqueeze(1)).all()
    # |increment of y_a| <= scale sum_b |C[a, b]| |z_b| <= scale ||phi_a|| sum_b |z_b|
    bound = scale * norms.unsqueeze(1) * z.abs().sum(0, keepdim=True)
    eps = torch.finfo(dtype).eps
    assert ((y - y_reference).abs() <= tolerance * bound + 4 * eps * (y.abs() + bound)).all()
    upper = factor.permute(2, 0, 1).triu(1)  # C[a, b] for b > a: zero
    assert not upper.any()


def _spanned_rows_project_nothing(factor, phi):
    """Whether every row whose residual is at most ``eps ||phi_j||`` (spanned by the earlier
    rows to rounding) was set to zero, so that no later row has a part along it: ``C[a, j] =
    0`` for ``a > j``; returns how many such (row, sample) pairs there are."""
    eps = torch.finfo(phi.dtype).eps
    norms = chain.stable_norm(phi.permute(2, 0, 1)).t()  # (k, B)
    k = phi.shape[0]
    count = 0
    for j in range(1, k - 1):
        spanned = factor[j, j] <= eps * norms[j]
        count += int(spanned.sum())
        assert not factor[j + 1 :, j][:, spanned].any()
    return count


def _gram_error(factor, phi):
    """max |C C^T - Phi Phi^T| / (||phi_a|| ||phi_b||) over samples and pairs."""
    c = factor.permute(2, 0, 1).double()
    p = phi.permute(2, 0, 1).double()
    gram = p @ p.transpose(1, 2)
    norms = gram.diagonal(dim1=1, dim2=2).sqrt()
    scale = norms.unsqueeze(-1) * norms.unsqueeze(-2)
    return float(((c @ c.transpose(1, 2) - gram).abs() / scale.clamp(min=1e-300)).max())


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["repeated", "collinear", "nearly collinear"])
def test_kernel_factors_the_gram_of_spanned_inputs_and_copies_repeated_rows(dtype, kind):
    """A repeated or collinear input: its residual is rounding, which side of the threshold
    ``eps ||phi_j||`` it falls on depends on the order of the sums, so the kernel and the
    tensor path may split the later rows' noise differently; both factor ``Phi Phi^T`` to
    rounding, and a repeated input gets the factor row of the input it repeats, bit for bit
    (so that equal inputs stay equal)."""
    phi, y0, z = _inputs(kind, dtype)
    factor, y, _ = _layer(phi, y0, z, 0.1, True)
    reference, _, _ = _layer(phi, y0, z, 0.1, False)
    tolerance = _tolerance(dtype, phi.shape[1])
    assert _gram_error(factor, phi) <= tolerance
    assert _gram_error(reference, phi) <= tolerance
    if kind == "collinear":  # (a repeated row's diagonal is its copy's: zero)
        assert _spanned_rows_project_nothing(factor, phi) > 0
        _spanned_rows_project_nothing(reference, phi)
    if kind == "nearly collinear":  # close to the span, not in it: its residual is kept
        norms = chain.stable_norm(phi.permute(2, 0, 1)).t()
        eps = torch.finfo(dtype).eps
        assert (factor[1, 1] > 10 * eps * norms[1]).all()
        assert (factor[1, 1] < eps**0.5 * norms[1]).all()  # (close: the repeated check ran)
        assert (reference[1, 1] > 10 * eps * norms[1]).all()
    if kind == "repeated":
        assert torch.equal(factor[2], factor[0])
        y0[2] = y0[0]
        _, y, _ = _layer(phi, y0, z, 0.1, True)
        assert torch.equal(y[2], y[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_more_inputs_than_the_width(dtype):
    """Eight inputs at width 3: rows 3..7 lie in the span of the earlier ones; the factor is
    still one of ``Phi Phi^T`` to rounding, finite, and a row spanned to rounding is not
    projected on (the kernel and the tensor path alike)."""
    phi, y0, z = _inputs("more inputs than the width", dtype, k=8, n=3)
    factor, y, _ = _layer(phi, y0, z, 0.1, True)
    reference, _, _ = _layer(phi, y0, z, 0.1, False)
    assert torch.isfinite(factor).all() and torch.isfinite(y).all()
    assert _gram_error(factor, phi) <= _tolerance(dtype, 3) * 8
    assert _spanned_rows_project_nothing(factor, phi) > 0
    _spanned_rows_project_nothing(reference, phi)


def test_tiles_left_to_the_tensor_path_are_counted_and_updated():
    """The kernel leaves the tiles with a sample whose squares underflow to the tensor path
    (``factor_rows`` again for those samples), then updates them: every sample moves."""
    phi, y0, z = _inputs("some subnormal", torch.float64)
    k, n, size = phi.shape
    space = chain._Workspace(k, n, size, phi.dtype, torch.device("cpu"))
    space.phi.permute(1, 2, 0).copy_(phi)
    norm = chain._norm_and_range(space.phi, space.square, space.phi_norm, space)[0]
    kernel = space.native(norm)
    y, noise = y0.clone(), z.clone()
    left = kernel.run(chain._memory(space.phi), y, noise, 0.1)
    assert left == len({b // native.TILE for b in range(0, size, 5)})
    assert (y == y0).all(0).all(0).sum() >= 5  # the samples of those tiles have not moved yet
    chain._mend_factor(chain._memory(space.phi), False, norm, space, kernel)
    kernel.finish(y, noise, 0.1)
    assert not (y == y0).all(0).all(0).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["plain", "zero rows", "repeated", "some subnormal"])
def test_relu_taken_on_the_way_is_phi_read_from_memory(dtype, kind):
    """The kernel reading the state and taking its ReLU on the way gives the bits of the kernel
    reading ``phi = relu(y)`` from memory (a repeated input: its ReLU, not its state, repeats;
    subnormal rows: deferred tiles mended from the state's ReLU)."""
    phi, y0, z = _inputs(kind, dtype)
    y0 = torch.where(phi > 0, phi, -phi - 0.5)  # relu(y0) = phi
    on_the_way = _layer(phi, y0, z, 0.1, True, relu=True)
    from_memory = _layer(phi, y0, z, 0.1, True, relu=False)
    assert torch.equal(on_the_way[0], from_memory[0]) and torch.equal(on_the_way[1], from_memory[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampler_with_and_without_the_kernel(monkeypatch, dtype):
    """Four inputs, depth 12: the kernel's chain is the tensor path's to rounding (a few units
    of ``n eps`` per layer), and identical in every bit whatever the chunk size."""
    y0 = torch.stack([torch.linspace(-1, 1, 16) + shift for shift in (0.5, 0.2, 0.9, 0.0)])
    kwargs = dict(samples=300, y0=y0, seed=4, dtype=dtype)
    fast = dl.sample_resnet(16, 12, "relu", **kwargs)
    assert torch.equal(dl.sample_resnet(16, 12, "relu", chunk_size=7, **kwargs), fast)
    monkeypatch.setitem(native.LIBRARY.state, "kernels", None)
    slow = dl.sample_resnet(16, 12, "relu", **kwargs)
    tolerance = 12 * _tolerance(getattr(torch, dtype), 16)
    assert float(((fast - slow).abs() / slow.abs().amax(-1, keepdim=True)).max()) <= tolerance


def test_without_a_compiler_the_tensor_path_runs(monkeypatch, tmp_path):
    """With no compiler (``CC`` names none) the kernel is unavailable, says why, and the
    sampler runs the tensor path; ``DEEPLIMIT_NATIVE=0`` turns the kernel off the same way."""
    monkeypatch.setattr(native.LIBRARY, "state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(tmp_path / "cache"))
    assert not native.available()
    assert "no C compiler" in native.reason()
    y0 = torch.stack([torch.linspace(-1, 1, 8) + shift for shift in (0.5, 0.2)])
    y = dl.sample_resnet(8, 4, "relu", samples=50, y0=y0, seed=1)
    assert torch.isfinite(y).all() and y.shape == (50, 2, 8)
    monkeypatch.setattr(native.LIBRARY, "state", {})
    monkeypatch.delenv("CC")
    monkeypatch.setenv("DEEPLIMIT_NATIVE", "0")
    assert not native.available() and "DEEPLIMIT_NATIVE=0" in native.reason()


@pytest.fixture
def quick_build(monkeypatch):
    """The tests of the build's mechanism (cache, fallbacks) compile without optimization:
    0.2 s a build of the kernels' file instead of ~5 s (the optimized build is the one every
    other test loads)."""
    from deeplimit import compiled

    monkeypatch.setattr(compiled, "FLAGS", (*compiled.FLAGS, "-O0"))


def test_the_build_is_cached_by_source_compiler_and_cpu(monkeypatch, tmp_path, quick_build):
    """The first load compiles one library into the cache folder; the next loads it as it
    is; another source (here: one more line) is another library."""
    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available()
    built = sorted((tmp_path / "native").glob("*.so"))
    assert len(built) == 1
    stamp = os.stat(built[0]).st_mtime_ns
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available()
    assert sorted((tmp_path / "native").glob("*.so")) == built
    assert os.stat(built[0]).st_mtime_ns == stamp
    source = tmp_path / "copy.c"
    source.write_text(native._SOURCE.read_text() + "\n/* another build */\n")
    monkeypatch.setattr(native.LIBRARY, "source_file", source)
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available()
    assert len(list((tmp_path / "native").glob("*.so"))) == 2
    assert not list((tmp_path / "native").glob("tmp*"))  # no half-written file left


def test_nan_stays_in_its_sample():
    """A NaN in one sample's phi makes that sample's factor and state NaN (the chain then
    reports it), and no other sample's."""
    phi, y0, z = _inputs("plain", torch.float64)
    phi[1, 3, 70] = math.nan
    factor, y, _ = _layer(phi, y0, z, 0.1, True)
    for values in (factor, y):
        bad = torch.isnan(values).any(0).any(0)
        assert bad[70] and int(bad.sum()) == 1


def test_provenance_names_the_path_that_ran(monkeypatch, tmp_path):
    """A result's provenance says whether the compiled kernel ran (its library) or the tensor
    path (and why): the two round differently."""
    from deeplimit.provenance import provenance

    y0 = torch.stack([torch.linspace(-1, 1, 8) + shift for shift in (0.5, 0.2)])
    dl.sample_resnet(8, 3, "relu", samples=20, y0=y0, seed=1)
    assert provenance({})["compiled_kernels"]["factor_update"].startswith("factor_update-")
    monkeypatch.setattr(native.LIBRARY, "state", {})
    monkeypatch.setenv("DEEPLIMIT_NATIVE", "0")
    dl.sample_resnet(8, 3, "relu", samples=20, y0=y0, seed=1)
    state = provenance({})["compiled_kernels"]["factor_update"]
    assert state == "tensor path: disabled by DEEPLIMIT_NATIVE=0"
    monkeypatch.delenv("DEEPLIMIT_NATIVE")
    monkeypatch.setattr(native.LIBRARY, "state", {})
    native.kernels()  # (leave the process as it was: the kernel loaded)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("relu", [False, True], ids=["identity", "relu"])
def test_row_norms_are_the_plain_norms_to_rounding(dtype, relu):
    """``native.row_norms`` against the tensor square-and-sum on samples-last memory of a size
    that is not a whole number of tiles: within ``n eps`` of the norm (sums in another order,
    here in double); NaN stays NaN in its row only, and a row of zeros (or of negative entries
    under the ReLU) has norm exactly 0."""
    generator = torch.Generator().manual_seed(5)
    memory = torch.randn((3, 40, 300), generator=generator, dtype=dtype)
    memory[1, :, 7] = -torch.rand(40, generator=generator, dtype=dtype)  # relu: a zero row
    memory[2, :, 9] = 0
    memory[0, 5, 11] = math.nan
    rows = torch.empty((3, 300), dtype=dtype)
    assert native.row_norms(memory, rows, relu=relu)
    values = memory.clamp(min=0) if relu else memory
    reference = values.square().sum(1).sqrt()
    ok = torch.isfinite(reference)
    assert torch.equal(torch.isnan(rows), ~ok) and int((~ok).sum()) == 1
    assert ((rows - reference).abs()[ok] <= 40 * torch.finfo(dtype).eps * reference[ok]).all()
    assert rows[2, 9] == 0 and (rows[1, 7] == 0) == relu
    # not laid out as the kernel reads: nothing written, False
    assert not native.row_norms(memory.transpose(0, 1), rows)
    assert not native.row_norms(memory, torch.empty((300, 3), dtype=dtype).t())


@pytest.mark.parametrize("width", [1, 16])
def test_one_input_with_and_without_the_kernel(monkeypatch, width):
    """One ReLU input (stretches checked at their ends, and step by step where observed): the
    chain with the compiled norms is the tensor path's to rounding, and the observed norms
    are those of the sampled states."""
    y0 = torch.linspace(-1, 1, width) + 0.5 if width > 1 else torch.tensor([0.7])
    kwargs = dict(samples=400, y0=y0, seed=2)
    fast = dl.sample_resnet(width, 20, "relu", record="all", **kwargs)
    observed = dl.observe_resnet(width, 20, "relu", observables=["norm"], layers="all", **kwargs)
    values = observed.values
    torch.testing.assert_close(values["y_norm"], fast.norm(dim=-1), rtol=1e-12, atol=0)
    torch.testing.assert_close(values["phi_norm"], fast.relu().norm(dim=-1), rtol=1e-12, atol=0)
    monkeypatch.setitem(native.LIBRARY.state, "kernels", None)
    slow = dl.sample_resnet(width, 20, "relu", record="all", **kwargs)
    tolerance = 20 * _tolerance(torch.float64, width)
    assert (
        float(((fast - slow).abs() / slow.abs().amax(-1, keepdim=True).clamp(min=1e-300)).max())
        <= tolerance
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_extremes_and_positive_counts_read_in_the_same_pass(dtype):
    """The smallest and largest entry that ``row_norms`` reads on the way, and of the norms it
    writes (NaN where an entry is NaN, as NumPy's min and max), and ``count_positive`` (NaN
    and -0 are not positive) against NumPy and a comparison; an empty block gives the range
    (1, 1) as ``_range``."""
    generator = torch.Generator().manual_seed(6)
    memory = torch.randn((2, 9, 517), generator=generator, dtype=dtype)
    memory[1, 4, 300] = 7.5  # the largest
    memory[0, 8, 516] = -6.25  # the smallest, in the last (partial) tile
    memory[1, 2, 5] = -0.0
    rows, extremes = torch.empty((2, 517), dtype=dtype), np.zeros(6)
    plain = torch.empty_like(rows)
    assert native.row_norms(memory, rows, True, extremes, plain=plain)
    assert tuple(extremes[:2]) == (-6.25, 7.5)
    assert tuple(extremes[2:4]) == (float(rows.min()), float(rows.max()))
    assert tuple(extremes[4:]) == (float(plain.min()), float(plain.max()))
    assert not native.row_norms(memory, rows, True, np.zeros(2))  # too short: refused
    counts = torch.empty((2, 517), dtype=torch.int32)
    assert native.count_positive(memory, counts)
    assert torch.equal(counts, (memory > 0).sum(1, dtype=torch.int32))
    memory[0, 3, 200] = math.nan
    assert native.row_norms(memory, rows, False, extremes) and np.isnan(extremes).all()
    assert native.count_positive(memory, counts)
    assert torch.equal(counts, (memory > 0).sum(1, dtype=torch.int32))
    empty = torch.empty((2, 9, 0), dtype=dtype)
    assert native.row_norms(empty, torch.empty((2, 0), dtype=dtype), True, extremes)
    assert tuple(extremes[:4]) == (1.0, 1.0, 1.0, 1.0)


def test_positive_counts_into_the_columns_of_a_results_array():
    """Counts written straight into a block's columns of a larger int32 array (rows of
    contiguous entries, far apart), leaving the other columns as they were."""
    memory = torch.randn((3, 5, 70), generator=torch.Generator().manual_seed(7))
    results = torch.full((3, 200), -1, dtype=torch.int32)
    assert native.count_positive(memory, results[:, 100:170])
    assert torch.equal(results[:, 100:170], (memory > 0).sum(1, dtype=torch.int32))
    assert (results[:, :100] == -1).all() and (results[:, 170:] == -1).all()
    assert not native.count_positive(memory, torch.empty((70, 3), dtype=torch.int32).t()[:, ::1])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_correlations_are_the_unit_vector_formula_to_rounding(dtype):
    """``native.correlations`` against ``<y_a / |y_a|, y_b / |y_b|>`` in tensor operations,
    written into a block's columns of a results array: within ``n eps``; a collapsed (zero)
    row gives NaN, as the formula does."""
    generator = torch.Generator().manual_seed(8)
    k, n, size = 4, 33, 150
    memory = torch.randn((k, n, size), generator=generator, dtype=dtype)
    memory[2] = memory[0] + 1e-3 * memory[1]  # nearly collinear with row 0
    memory[3, :, 17] = 0
    norms = memory.square().sum(1).sqrt()
    results = torch.zeros((6, 400), dtype=dtype)
    assert native.correlations(memory, norms, results[:, 200:350])
    unit = memory / norms.unsqueeze(1)
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    reference = torch.stack([(unit[a] * unit[b]).sum(0) for a, b in pairs])
    got = results[:, 200:350]
    assert torch.equal(torch.isnan(got), torch.isnan(reference))
    assert int(torch.isnan(got).sum()) == 3  # the pairs with row 3 at sample 17
    ok = ~torch.isnan(reference)
    assert ((got - reference).abs()[ok] <= 2 * n * torch.finfo(dtype).eps).all()
    assert not results[:, :200].any() and not results[:, 350:].any()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_norms_of_the_state_read_with_those_of_its_relu(dtype):
    """``row_norms(relu=True, plain=...)`` gives, in the same pass, the bits of
    ``row_norms(relu=False)`` for the state and of ``relu=True`` for its ReLU."""
    memory = torch.randn((3, 21, 333), generator=torch.Generator().manual_seed(9), dtype=dtype)
    both, plain = torch.empty((3, 333), dtype=dtype), torch.empty((3, 333), dtype=dtype)
    assert native.row_norms(memory, both, True, plain=plain)
    relu_only, alone = torch.empty_like(both), torch.empty_like(both)
    assert native.row_norms(memory, relu_only, True) and native.row_norms(memory, alone)
    assert torch.equal(both, relu_only) and torch.equal(plain, alone)
    assert not native.row_norms(memory, both, False, plain=plain)  # plain needs relu


def test_an_unwritable_cache_folder_falls_back_to_a_private_temporary_one(
    monkeypatch, tmp_path, quick_build
):
    """A cache folder that cannot be written (a read-only home): the library is built in this
    user's own folder of the temporary folder instead, and the kernel loads."""
    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", "/proc/no-such-folder")
    monkeypatch.setattr(compiled.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available(), native.reason()
    assert len(list(tmp_path.glob("deeplimit-*/factor_update-*.so"))) == 1
    shared = tmp_path / "other"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        compiled._check_private(shared)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_deferred_samples_do_not_depend_on_the_block_split(dtype):
    """Inputs whose squares underflow: every tile is left to the tensor path, which factors
    those samples again; one block of 150 samples or two of 75 give the same bits (the
    samples are factored again in groups of one shape)."""
    phi, y0, z = _inputs("tiny", dtype)
    y0 = y0 * (1e-160 if dtype == torch.float64 else 1e-20)
    factor, y, _ = _layer(phi, y0, z, 0.1, True)
    halves = [
        _layer(*(values[..., part].contiguous() for values in (phi, y0, z)), 0.1, True)
        for part in (slice(0, 75), slice(75, 150))
    ]
    assert torch.equal(torch.cat([h[0] for h in halves], -1), factor)
    assert torch.equal(torch.cat([h[1] for h in halves], -1), y)


def test_a_library_that_does_not_load_is_built_again_elsewhere(monkeypatch, tmp_path, quick_build):
    """A cached file that cannot be loaded (damaged, or a folder mounted without execution):
    the kernel is built again in this user's own temporary folder, and loads."""
    first, damaged, temporary = tmp_path / "first", tmp_path / "damaged", tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(compiled.tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(first))
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available()
    (built,) = (first / "native").glob("*.so")  # its name: what the next load looks for
    (damaged / "native").mkdir(parents=True)
    (damaged / "native" / built.name).write_bytes(b"not a shared library")
    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(damaged))
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available(), native.reason()
    assert len(list(temporary.glob("deeplimit-*/factor_update-*.so"))) == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [(1, 4, 1000), (3, 1, 77), (2, 16, 31), (4, 5, 64)])
def test_row_norms_in_every_case_give_the_arithmetic_written_out(dtype, shape):
    """``row_norms`` (sums, counts and extremes in registers, 32 samples at a time) in each of
    its cases (with or without the ReLU, the extremes, the counts, the plain norms) against
    the arithmetic it promises, written out: squares in double summed in the order of the
    coordinates, the root in double rounded to the dtype; norms, plain norms and counts bit for
    bit, the extremes those of NumPy; a NaN entry, -0, a zero row, a row of negatives and a
    block that is not a whole number of lanes."""
    generator = torch.Generator().manual_seed(11)
    m, n, size = shape
    memory = torch.randn(shape, generator=generator, dtype=dtype) * 3
    memory[0, :, size // 2] = 0
    memory[-1, :, size - 1] = -torch.rand(n, generator=generator, dtype=dtype)
    memory[0, n - 1, 0] = -0.0

    def reference(relu):  # NumPy: no fused multiply-add
        values = memory.double().numpy()
        values = np.where(values < 0, 0.0, values) if relu else values
        total = np.zeros((m, size))
        for t in range(n):  # in order, as the kernel sums
            total = total + values[:, t] * values[:, t]
        return torch.from_numpy(np.sqrt(total)).to(dtype).nan_to_num(-1)

    for nan in (False, True):
        if nan:
            memory[m // 2, n // 2, size // 3] = math.nan
        for relu in (True, False):
            rows = torch.empty((m, size), dtype=dtype)
            assert native.row_norms(memory, rows, relu)  # the sampler's case, no extremes
            assert torch.equal(rows.nan_to_num(-1), reference(relu))
        rows, extremes = torch.empty((m, size), dtype=dtype), np.zeros(6)
        assert native.row_norms(memory, rows, True, extremes)  # with the extremes
        assert torch.equal(rows.nan_to_num(-1), reference(True))
        counts = torch.empty((m, size), dtype=torch.int32)
        plain, observed = torch.empty_like(rows), torch.empty_like(rows)
        extremes_observed = np.zeros(6)
        assert native.row_norms(memory, observed, True, extremes_observed, counts, plain)
        assert torch.equal(observed.nan_to_num(-1), reference(True))
        assert torch.equal(plain.nan_to_num(-1), reference(False))
        assert torch.equal(counts, (memory > 0).sum(1, dtype=torch.int32))
        alone, alone_plain = torch.empty_like(rows), torch.empty_like(rows)  # plain, no counts
        assert native.row_norms(memory, alone, True, np.zeros(6), plain=alone_plain)
        assert torch.equal(alone.nan_to_num(-1), reference(True))
        assert torch.equal(alone_plain.nan_to_num(-1), reference(False))
        counted = torch.full((m, size + 3), -7, dtype=torch.int32)  # counts, no plain; rows apart
        assert native.row_norms(memory, alone, False, None, counted[:, :size])
        assert torch.equal(alone.nan_to_num(-1), reference(False))
        assert torch.equal(counted[:, :size], (memory > 0).sum(1, dtype=torch.int32))
        assert (counted[:, size:] == -7).all()
        if nan:
            assert np.isnan(extremes).all() and np.isnan(extremes_observed).all()
            continue
        values = memory.numpy()
        expected = [values.min(), values.max(), rows.min(), rows.max(), plain.min(), plain.max()]
        assert extremes_observed.tolist() == [float(v) for v in expected]
        assert extremes[:4].tolist() == [float(v) for v in expected[:4]]
        assert rows[0, size // 2] == 0 and (size < 2 or rows[-1, size - 1] == 0)


def test_a_compiler_that_refuses_the_x86_extras_builds_with_the_plain_flags(
    monkeypatch, tmp_path, quick_build
):
    """Where the compiler rejects the extra x86 flags (an old GCC or Clang), the kernel is
    built with ``FLAGS`` alone rather than not at all."""
    from deeplimit import compiled

    monkeypatch.setenv("DEEPLIMIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiled, "_flags", lambda: (*compiled.FLAGS, "-fno-such-flag-here"))
    monkeypatch.setattr(native.LIBRARY, "state", {})
    assert native.available(), native.reason()
    assert len(list((tmp_path / "native").glob("factor_update-*.so"))) == 1


def _bits(values: Tensor) -> Tensor:
    """The bit patterns of a float tensor (as integers of its size), to compare -0 and NaN."""
    return values.view(torch.int32 if values.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("count", [0, 1, 31, 32, 33, 517])
def test_width_one_pass_gives_the_bits_of_the_tensor_operations(dtype, count):
    """``width_one`` on three rows (inputs) of ``count`` samples: ``|y|``, ``clamp(y, min=0)``
    (-0 and NaN kept), the signs of a finite ReLU and the counts ``y > 0`` (into the columns
    of a wider array), with the ranges NumPy's min and max give (NaN where an entry is NaN, 1
    for no entry), in every combination of outputs and for partial lanes."""
    generator = torch.Generator().manual_seed(count)
    y = torch.randn((3, count), generator=generator, dtype=dtype)
    special = [-0.0, 0.0, math.inf, -math.inf, torch.finfo(dtype).tiny / 4, -7.5, 9.25]
    for index, value in enumerate(special[: max(0, 3 * count - 1)]):
        y.view(-1)[(index * 37) % (3 * count)] = value
    for with_sign, with_counts, with_modulus in itertools.product((False, True), repeat=3):
        relu = torch.full_like(y, 3.0)
        modulus = torch.full_like(y, 3.0) if with_modulus else None
        sign = torch.full_like(y, 3.0) if with_sign else None
        wide = torch.full((3, count + 5), 3, dtype=torch.int32)
        counts = wide[:, 2 : count + 2] if with_counts else None
        extremes = np.zeros(4)
        divisor = torch.rand(y.shape, generator=generator, dtype=dtype) + 0.25
        divisor.view(-1)[::7] = 0.0  # relu / 0: inf, or NaN for 0 / 0
        ratio = torch.full_like(y, 3.0)
        assert native.width_one(y, modulus, relu, sign, counts, extremes, divisor, ratio)
        assert torch.equal(_bits(ratio), _bits(torch.div(torch.clamp(y, min=0), divisor)))
        assert torch.equal(_bits(relu), _bits(torch.clamp(y, min=0)))
        if modulus is not None:
            assert torch.equal(_bits(modulus), _bits(torch.abs(y)))
        if sign is not None:
            assert torch.equal(sign, torch.sign(torch.clamp(y, min=0)))
        if counts is not None:
            assert torch.equal(counts, (y > 0).to(torch.int32))
            assert (wide[:, :2] == 3).all() and (wide[:, count + 2 :] == 3).all()
        for pair, values in zip((extremes[:2], extremes[2:]), (y.abs(), y.clamp(min=0))):
            expected = (values.min().item(), values.max().item()) if count else (1.0, 1.0)
            assert tuple(pair) == expected
    y[:, count // 2 :: 5] = math.nan
    extremes = np.zeros(4)
    assert native.width_one(y, None, torch.empty_like(y), None, None, extremes)
    assert (count == 0 and tuple(extremes) == (1.0,) * 4) or np.isnan(extremes).all()
    # not laid out as the kernel reads, or a divisor with no ratio: nothing written, False
    assert not native.width_one(y, None, torch.empty(count + 1, dtype=dtype), None, None, extremes)
    assert not native.width_one(y, None, relu, None, None, extremes, torch.ones_like(y))
    overlapping = torch.zeros(3 * count + 1, dtype=torch.int32)[: 3 * count].view(3, count)
    if count > 1:
        assert not native.width_one(y, None, relu, None, overlapping.t().t()[:, ::2], extremes)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "y0", [[0.7], [0.0], [-0.0], [-0.3], [3e38], [1e-40], [[0.7], [0.0], [0.2], [-0.5]]]
)
@pytest.mark.parametrize("norm", [True, False], ids=["norm", "scale-free"])
def test_width_one_observers_with_and_without_the_kernel(monkeypatch, dtype, y0, norm):
    """Width 1 (ReLU), every observable at every layer (or every scale-free one: the pass
    then skips ``|y|``), one or several inputs, from collapsed, -0, huge and tiny starts (the
    chain rescales those by powers of two): the compiled pass of a layer gives the numbers
    of the tensor operations, bit for bit."""
    kwargs = dict(samples=700, y0=torch.tensor(y0, dtype=torch.float64), seed=5, dtype=dtype)
    kwargs["on_nonfinite"] = "warn"  # the norms of a huge or tiny start leave the range
    several = len(y0) > 1
    names = [o for o in OBSERVABLES if (several or o != "correlation") and (norm or o != "norm")]

    def observe() -> dict[str, Tensor]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the underflow of the tiny start, reported
            found = dl.observe_resnet(1, 30, "relu", observables=names, layers="all", **kwargs)
        return {name: value for name, value in found.values.items() if torch.is_tensor(value)}

    fast = observe()
    # the tensor operations in place of the pass (the other kernels as they were)
    monkeypatch.setattr(native, "width_one", lambda *args: False)
    slow = observe()
    assert fast.keys() == slow.keys()
    for name, value in fast.items():
        if value.is_floating_point():
            assert torch.equal(_bits(value), _bits(slow[name])), name
        else:
            assert torch.equal(value, slow[name]), name


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_row_norms_divide_in_the_same_pass(dtype):
    """``row_norms`` with a divisor: the ratio of the norms it writes to the divisor, with
    ``torch.div``'s bits (zeros in the divisor: inf, or NaN for 0 / 0); a divisor without a
    ratio, or one not laid out as the rows, is refused."""
    generator = torch.Generator().manual_seed(3)
    memory = torch.randn((3, 5, 77), generator=generator, dtype=dtype)
    memory[1, :, 4] = -1.0  # a zero norm of the ReLU
    rows, ratio = torch.empty((3, 77), dtype=dtype), torch.empty((3, 77), dtype=dtype)
    divisor = torch.rand((3, 77), generator=generator, dtype=dtype) + 0.5
    divisor[1, 4], divisor[2, 9] = 0.0, 0.0
    counts = torch.empty((3, 77), dtype=torch.int32)
    assert native.row_norms(memory, rows, True, np.zeros(6), counts, None, divisor, ratio)
    assert torch.equal(_bits(ratio), _bits(torch.div(rows, divisor)))
    assert not native.row_norms(memory, rows, True, None, None, None, divisor)
    assert not native.row_norms(memory, rows, True, None, None, None, divisor.t().t()[:, :76])


@pytest.mark.parametrize("inputs", [1, 3])
@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_growth_divided_in_the_pass_is_the_reference(monkeypatch, dtype, width, inputs):
    """The log-growth with its division in the layer's compiled pass (``divide_into``) and
    with ``torch.div`` after it: the same bits, collapsed inputs and paths included."""
    y0 = torch.linspace(-1.0, 0.4, width) if width > 1 else torch.tensor([0.3])
    y0 = torch.stack([y0 + 0.2 * a for a in range(inputs)]) if inputs > 1 else y0
    kwargs = dict(samples=500, y0=y0, seed=9, dtype=dtype, layers="all")

    def growth() -> Tensor:
        return dl.observe_resnet(width, 6, "relu", observables=["log_growth"], **kwargs).values[
            "log_growth"
        ]

    taken = []
    divide_into = chain._Workspace.divide_into

    def spy(self: Any, divisor: Tensor, out: Tensor) -> bool:
        taken.append(divide_into(self, divisor, out))
        return taken[-1]

    monkeypatch.setattr(chain._Workspace, "divide_into", spy)
    fast = growth()
    assert taken and all(taken)  # the pass divided at every block
    monkeypatch.setattr(chain._Workspace, "divide_into", lambda self, divisor, out: False)
    slow = growth()
    assert torch.isfinite(fast).any() and (width > 1 or torch.isinf(fast).any())
    assert torch.equal(_bits(fast), _bits(slow))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_row_norms_bound_to_a_block_is_row_norms(dtype):
    """``RowNorms`` (``row_norms`` checked once per block): at every call, with counts into
    changing columns of a results array, plain norms and a divisor, the numbers of
    ``row_norms``; outputs not laid out as the kernel reads are refused at every call, first
    or later (nothing written)."""
    generator = torch.Generator().manual_seed(11)
    memory = torch.randn((2, 3, 45), generator=generator, dtype=dtype)
    rows, extremes = torch.empty((2, 45), dtype=dtype), np.zeros(6)
    bound = native.RowNorms(memory, rows, extremes)
    results = torch.zeros((4, 2, 100), dtype=torch.int32)
    plain, divisor = torch.empty_like(rows), torch.rand((2, 45), dtype=dtype) + 0.5
    ratio = torch.empty_like(rows)
    for layer in range(4):
        memory.mul_(-1.5)  # another state at every call
        counts = results[layer, :, 10:55]
        assert bound(True, counts, plain, divisor, ratio)
        expected = [torch.empty_like(rows), torch.zeros((2, 45), dtype=torch.int32)]
        expected += [torch.empty_like(rows), torch.empty_like(rows)]
        want = np.zeros(6)
        assert native.row_norms(memory, expected[0], True, want, expected[1], *expected[2:3])
        assert native.row_norms(memory, expected[0], True, None, None, None, divisor, expected[3])
        assert torch.equal(rows, expected[0]) and torch.equal(counts, expected[1])
        assert torch.equal(plain, expected[2]) and torch.equal(ratio, expected[3])
        assert np.array_equal(extremes, want)
    before = rows.clone()
    wrong = torch.zeros((2, 45), dtype=torch.int64)
    assert not bound(True, wrong)
    assert not bound(True, None, plain, divisor)  # a divisor without a ratio
    assert not bound(False, None, plain)  # plain norms only with the ReLU
    assert torch.equal(rows, before) and not wrong.any()
    unbound = native.RowNorms(memory, rows, None)  # no extremes asked for, as row_norms
    assert unbound(True) and native.row_norms(memory, before, True)
    assert torch.equal(rows, before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_width_one_correlations_without_norms_are_those_with_the_modulus(dtype):
    """At width 1 the kernel takes ``||y|| = |y|`` itself (no norms): ``y / |y|`` is +-1 with
    no division wherever ``|y|`` is finite and nonzero; the bits of the kernel given ``|y|``
    for every entry, zeros, infinities, NaN and subnormal numbers included; refused at other
    widths."""
    generator = torch.Generator().manual_seed(12)
    memory = torch.randn((3, 1, 203), generator=generator, dtype=dtype)
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, torch.finfo(dtype).tiny / 8, -1e-30]
    for index, value in enumerate(special):
        memory[index % 3, 0, 7 * index + 1] = value
    with_norms, without = torch.empty((3, 203), dtype=dtype), torch.empty((3, 203), dtype=dtype)
    assert native.correlations(memory, memory.abs()[:, 0], with_norms)
    assert native.correlations(memory, None, without)
    assert torch.equal(_bits(with_norms), _bits(without))
    assert not native.correlations(torch.ones((3, 2, 203), dtype=dtype), None, without)


def test_the_chain_writes_out_only_the_factor_of_the_tiles_it_mends(monkeypatch):
    """The chain runs the kernel in mode 2 (the factor written out only for the tiles left to
    the tensor path, which reads it there alone): the same numbers as mode 0, which writes
    every sample's factor. float32 inputs of a network each (``x``) whose second input is the
    first plus ~1e-12: residual norms around the floor ``sqrt(tiny) / eps``, so that tiles
    are left with some samples to factor again and others to keep as the kernel factored
    them; recorded at every layer, observed with correlations."""
    left: list[int] = []
    arguments = native.FactorUpdate.arguments

    def mode(self, phi, y, z, scale, mode, relu, keep=False):
        return arguments(self, phi, y, z, scale, 0 if keep and mode == 2 else mode, relu)

    run = native.FactorUpdate.run

    def counted(self, *args, **kwargs):
        tiles = run(self, *args, **kwargs)
        left.append(tiles)
        return tiles

    monkeypatch.setattr(native.FactorUpdate, "run", counted)
    direction = torch.tensor([0.3, -1.0, 0.8, 0.5], dtype=torch.float64)
    x = torch.stack([direction * 1e-6, direction * 1e-6 + 1e-12, direction.flip(0) * 1e-6])
    kwargs = dict(samples=700, x=x, dtype=torch.float32, seed=5, on_nonfinite="ignore")

    def results():
        y = dl.sample_resnet(8, 6, "relu", record="all", **kwargs)
        observed = dl.observe_resnet(8, 6, "relu", observables=("correlation",), **kwargs)
        return y, observed.values["correlation"]

    kept = results()
    assert any(count > 0 for count in left)  # tiles mended
    monkeypatch.setattr(
        native.FactorUpdate, "arguments", lambda self, *a: mode(self, *a, keep=True)
    )
    for first, second in zip(kept, results(), strict=True):
        assert torch.equal(first.nan_to_num(), second.nan_to_num())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "size"), [(1, 5), (1, 37), (1, 5000), (2, 8), (3, 7), (10, 333)])
def test_a_stretch_of_a_group_of_normals_is_its_steps_one_call_at_a_time(dtype, n, size):
    """``native.relu_stretch`` (the steps of a group of normals in one call) against
    ``addcmul_`` and the norms step by step: the same bits for the state (the sign of a zero
    after one and two steps included) and the last norms, and it stops after the first step
    with a norm in (0, bound) or not finite (bounds from the reference's own norms: below
    all, failing at the start, failing at a middle step), with that step's state; a NaN or
    an infinite entry at the start fails there."""
    function = native.relu_stretch(dtype)
    assert function is not None  # the kernel gave torch's bits on its check steps
    generator = torch.Generator().manual_seed(n * 1000 + size)
    z = torch.randn(9, n, size, generator=generator, dtype=dtype)
    y = torch.randn(n, size, generator=generator, dtype=dtype)
    y[0, :2] = torch.tensor([-0.0, 0.0], dtype=dtype)
    norm = torch.empty(size, dtype=dtype)
    if n == 1:
        torch.clamp(y[0], min=0, out=norm)
    else:
        native.row_norms(y.unsqueeze(0), norm.unsqueeze(0), relu=True)
    value = 0.3 / (1 + n)

    def kernel(start, first, bound, steps=9):
        out, last, spare = start.clone(), first.clone(), torch.empty_like(first)
        done = function(
            z.data_ptr(),
            steps,
            out.data_ptr(),
            last.data_ptr(),
            spare.data_ptr(),
            n,
            size,
            value,
            bound,
        )
        return done, out, last

    bounds = stretch_bounds(list(z), y, norm, value)
    for bound in bounds:
        done, state, last = stretch_steps(list(z), y, norm, value, bound)
        assert (done == 9, done == 0, done < 9)[bounds.index(bound)]
        found, out, first = kernel(y, norm, bound)
        assert found == done, bound
        assert torch.equal(out, state) and torch.equal(out.signbit(), state.signbit()), bound
        if done == 9:
            assert torch.equal(first, last)
    for count in (1, 2):  # the sign of a zero entry after one and two steps (later: +0)
        expected = stretch_steps(list(z[:count]), y, norm, value, 0.0)[1]
        assert torch.equal(kernel(y, norm, 0.0, count)[1].signbit(), expected.signbit())
    for bad in (float("nan"), float("inf")):
        start, first = y.clone(), norm.clone()
        start[-1, -1] = first[-1] = bad
        assert kernel(start, first, 1e-30)[0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_stretch_check_catches_a_kernel_off_by_a_rounding(dtype):
    """``native.relu_stretch`` is used only after it gave torch's bits on its check steps: a
    kernel whose increment is off by a relative 1e-7 (float64) or 1e-5 (float32) is caught."""
    real = native.kernels()[("relu stretch", dtype)]
    assert native._stretch_differs(real, dtype) is None
    off = 1 + (1e-7 if dtype == torch.float64 else 1e-5)

    def wrong(*args):
        return real(*args[:7], args[7] * off, args[8])

    assert "differs" in native._stretch_differs(wrong, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("k", "n", "size"), [(1, 1, 37), (1, 100, 1000), (3, 17, 33), (2, 5, 1)])
def test_the_samples_first_copy_is_torchs_copy(dtype, k, n, size):
    """``native.samples_first`` copies a samples-last state into a block's rows of a results
    array (rows of samples at any distance, tiles with and without remainders) as torch's
    copy of the permuted memory does; it declines what it cannot write."""
    generator = torch.Generator().manual_seed(k * n + size)
    memory = torch.randn((k, n, size), generator=generator, dtype=dtype)
    memory.view(-1)[:2] = torch.tensor([-0.0, float("nan")], dtype=dtype)
    out = torch.full((size + 3, 4, k, n), 7.0, dtype=dtype)
    expected = out.clone()
    expected[2 : size + 2, 1] = memory.permute(2, 0, 1)
    assert native.samples_first(memory, out[2 : size + 2, 1])
    assert torch.equal(out.view(torch.int8), expected.view(torch.int8))  # NaN and -0 too
    assert not native.samples_first(memory, out[2 : size + 2, 1].to(torch.float16))
    permuted = memory.transpose(1, 2).contiguous().transpose(1, 2)  # (k, n, B), samples first
    if not permuted.is_contiguous():
        assert not native.samples_first(permuted, out[2 : size + 2, 1])
    rows = out[2 : size + 2, 1]
    for overlapping in (rows[:, :1].expand(size, k, n), rows[:, :, :1].expand(size, k, n)):
        if overlapping.shape != (size, 1, 1) and 0 in overlapping.stride():
            assert not native.samples_first(memory, overlapping)  # (k > 1 or n > 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("width", "y0"), [(1, [0.4]), (7, [[0.5] * 7, [-0.2] * 7]), (100, None)])
def test_recorded_states_are_those_of_torchs_copy(monkeypatch, dtype, width, y0):
    """Every recorded layer of the chain, copied samples-first by the compiled copy, equals
    the chain's numbers copied by torch (starts 2^+-100 rescaled: the torch copy of the
    rescaled state)."""
    y0 = torch.linspace(-1.0, 1.0, width).tolist() if y0 is None else y0
    runs = []
    for copy in (True, False):
        if not copy:
            monkeypatch.setattr(native, "samples_first", lambda *args: False)
        for scale in (1.0, 2.0**100, 2.0**-100):
            start = (torch.tensor(y0, dtype=torch.float64) * scale).tolist()
            runs.append(
                dl.sample_resnet(
                    width,
                    9,
                    "relu",
                    y0=start,
                    samples=300,
                    seed=3,
                    dtype=dtype,
                    record=[0, 3, 3, 9],
                )
            )
    for first, second in zip(runs[:3], runs[3:], strict=True):
        assert torch.equal(first, second)
