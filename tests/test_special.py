import math

import mpmath
import numpy as np
import pytest
import scipy.special
import torch

from deeplimit.special import dawson, erfi, erfi_inverse

# other test modules change mpmath's global precision: set it where it is used


@mpmath.workdps(40)
def _mp_dawson(x):
    x = mpmath.mpf(x)
    return mpmath.exp(-x * x) * mpmath.sqrt(mpmath.pi) / 2 * mpmath.erfi(x)


@mpmath.workdps(40)
def _mp_erfi_inverse(y, start):
    """Refine ``start`` by Newton on log erfi in 40-digit arithmetic."""
    z, target = mpmath.mpf(start), mpmath.log(mpmath.mpf(y))
    for _ in range(8):
        z = z - (mpmath.log(mpmath.erfi(z)) - target) * _mp_dawson(z)
    return z


def test_dawson_matches_mpmath_on_all_branches():
    xs = np.concatenate(
        [np.logspace(-300, -1, 40), np.linspace(0.05, 30, 600), np.logspace(1.5, 250, 40)]
    )
    xs = np.concatenate([xs, -xs[::7]])
    got = dawson(torch.tensor(xs)).numpy()
    for x, value in zip(xs, got):
        exact = _mp_dawson(x)
        assert abs(float((mpmath.mpf(value) - exact) / exact)) < 5e-15, x


def test_dawson_special_values():
    got = dawson(torch.tensor([0.0, math.inf, -math.inf, math.nan], dtype=torch.float64))
    assert got[0] == 0 and got[1] == 0 and got[2] == 0 and math.isnan(got[3])


def test_erfi_matches_scipy():
    u = np.linspace(-26, 26, 4001)
    got = erfi(torch.tensor(u)).numpy()
    exact = scipy.special.erfi(u)
    scale = np.where(exact == 0, 1.0, np.abs(exact))
    assert np.max(np.abs(got - exact) / scale) < 1e-13


def test_erfi_inverse_relative_accuracy_up_to_1e300():
    magnitudes = np.logspace(-300, 300, 601)
    ys = np.concatenate([magnitudes, -magnitudes[::5], [1.7e308], np.linspace(0.01, 10, 200)])
    got = erfi_inverse(torch.tensor(ys)).numpy()
    worst = 0.0
    for y, u in zip(ys, got):
        exact = _mp_erfi_inverse(abs(y), abs(u))
        assert math.copysign(1.0, u) == math.copysign(1.0, y)
        worst = max(worst, float(abs((abs(u) - exact) / exact)))
    assert worst < 1e-12


def test_erfi_inverse_round_trip_and_special_values():
    y = torch.linspace(-50, 50, 1001, dtype=torch.float64)
    assert torch.allclose(erfi(erfi_inverse(y)), y, rtol=1e-13, atol=1e-300)
    special = erfi_inverse(torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan]))
    assert special[0] == 0 and special[1] == 0
    assert special[2] == math.inf and special[3] == -math.inf and math.isnan(special[4])


def test_erfi_inverse_keeps_shape_and_dtype():
    y = torch.randn(3, 4, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    u = erfi_inverse(y * 10)
    assert u.shape == y.shape and u.dtype == torch.float32
    exact = erfi_inverse((y * 10).double())
    assert torch.allclose(u.double(), exact, rtol=1e-6, atol=1e-30)


def test_erfi_inverse_is_monotone():
    y = torch.logspace(-20, 200, 5000, dtype=torch.float64)
    u = erfi_inverse(y)
    assert bool((u[1:] > u[:-1]).all())


@pytest.mark.gpu
def test_erfi_inverse_on_cuda_matches_cpu(cuda_device):
    y = torch.logspace(-300, 300, 2001, dtype=torch.float64)
    y = torch.cat([y, -y])
    on_gpu = erfi_inverse(y.to(cuda_device)).cpu()
    assert torch.allclose(on_gpu, erfi_inverse(y), rtol=1e-13)
    assert torch.allclose(erfi(on_gpu[:1000].to(cuda_device)).cpu(), y[:1000], rtol=1e-12)
