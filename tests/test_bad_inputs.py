"""The audit of bad input: every public entry point, every CLI command and option.

The promise (docs and issue 8): a bad input raises a ``ValueError`` (or ``TypeError``) whose
message is one line and names the parameter and what is allowed; a run that cannot fit in
memory is refused before it allocates, naming the parameter and the estimate; a run that will
take hours warns first (``RuntimeWarning``) with the estimated time. On the command line the
same errors are one line on stderr (``error: ...``), nothing else, and exit status 2.

Each row of ``API`` and ``CLI`` is one bad input; the tables are meant to grow.
"""

from __future__ import annotations

import math
import resource
import signal
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deeplimit
from deeplimit import laws, stats
from deeplimit.activations import OU, Linear, PiecewiseLinear, SoftplusM, parse_activation
from deeplimit.cli import app
from deeplimit.training import (
    LazyScaling,
    MeanFieldScaling,
    PowerLawScaling,
    TrainingData,
    build_resnet,
    predicted_regime,
    synthetic_task,
    train,
)

BAD = (ValueError, TypeError)
SLOW = RuntimeWarning


@pytest.fixture(autouse=True)
def _limits():
    """A bad input must be refused at once: if a size check regresses, fail (time out, or hit
    an address-space cap of 4 GB more than now) instead of hanging or exhausting the machine."""

    def expire(signum, frame):
        raise TimeoutError("the bad input was not refused within 60 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as handle:
            current = int(handle.read().split()[0]) * resource.getpagesize()
        cap = current + 4 * 2**30
        if limits[1] == resource.RLIM_INFINITY or cap < limits[1]:
            resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    except (OSError, ValueError):
        pass
    yield
    resource.setrlimit(resource.RLIMIT_AS, limits)
    signal.setitimer(signal.ITIMER_REAL, 0.0)
    signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------- API table

API: list = []


def case(token, exception=BAD):
    """Register the decorated zero-argument function as one bad API input."""

    def register(function):
        API.append(pytest.param(function, token, exception, id=function.__name__))
        return function

    return register


def _resnet(**kwargs):
    arguments = dict(width=2, depth=3, activation="relu", samples=4, y0=[1.0, 0.5])
    arguments.update(kwargs)
    width, depth, activation = (arguments.pop(k) for k in ("width", "depth", "activation"))
    return deeplimit.sample_resnet(width, depth, activation, **arguments)


def _sde(**kwargs):
    arguments = dict(width=2, activation="relu", steps=4, samples=4, y0=[1.0, 0.5])
    arguments.update(kwargs)
    width, activation = arguments.pop("width"), arguments.pop("activation")
    return deeplimit.sample_sde(width, activation, **arguments)


def _observe(**kwargs):
    arguments = dict(width=2, depth=3, activation="relu", samples=4, y0=[1.0, 0.5])
    arguments.update(kwargs)
    width, depth, activation = (arguments.pop(k) for k in ("width", "depth", "activation"))
    return deeplimit.observe_resnet(width, depth, activation, **arguments)


def _observe_sde(**kwargs):
    arguments = dict(width=2, activation="relu", steps=4, samples=4, y0=[1.0, 0.5])
    arguments.update(kwargs)
    width, activation = arguments.pop("width"), arguments.pop("activation")
    return deeplimit.observe_sde(width, activation, **arguments)


def _gradients(**kwargs):
    arguments = dict(width=2, depth=3, activation="tanh", samples=4, y0=[1.0, 0.5])
    arguments.update(kwargs)
    width, depth, activation = (arguments.pop(k) for k in ("width", "depth", "activation"))
    return deeplimit.gradient_norms(width, depth, activation, **arguments)


def _collapse(**kwargs):
    arguments = dict(width=2, depth=3, activation="relu", samples=8, x=[1.0])
    arguments.update(kwargs)
    width, depth, activation = (arguments.pop(k) for k in ("width", "depth", "activation"))
    return deeplimit.collapse_probability(width, depth, activation, **arguments)


def _train(**kwargs):
    arguments = dict(depth=2, hidden_width=4, embedding_dim=3, steps=1)
    arguments.update(kwargs)
    depth, width, dim = (arguments.pop(k) for k in ("depth", "hidden_width", "embedding_dim"))
    return deeplimit.train_resnet(depth, width, dim, **arguments)


def _limit(**kwargs):
    arguments = dict(embedding_dim=3, steps=1, intervals=8)
    arguments.update(kwargs)
    return deeplimit.mean_ode_limit(arguments.pop("embedding_dim"), **arguments)


# sample_resnet ---------------------------------------------------------------------------


@case("width")
def resnet_width_zero():
    _resnet(width=0, y0=[1.0])


@case("width")
def resnet_width_fraction():
    _resnet(width=2.5)


@case("width")
def resnet_width_string():
    _resnet(width="2")


@case("width")
def resnet_width_bool():
    _resnet(width=True, y0=[1.0])


@case("width")
def resnet_width_none():
    _resnet(width=None)


@case("depth")
def resnet_depth_zero():
    _resnet(depth=0)


@case("depth")
def resnet_depth_negative():
    _resnet(depth=-1)


@case("depth")
def resnet_depth_bool():
    _resnet(depth=True)


@case("depth")
def resnet_depth_fraction():
    _resnet(depth=1.5)


@case("activation")
def resnet_activation_unknown():
    _resnet(activation="nope")


@case("activation")
def resnet_activation_number():
    _resnet(activation=3)


@case("activation")
def resnet_activation_bad_parameter_value():
    _resnet(activation="leaky:alpha=x")


@case("activation")
def resnet_activation_unknown_parameter():
    _resnet(activation="relu:a=1")


@case("activation")
def resnet_activation_complex_output():
    _resnet(activation=lambda x: x.to(torch.complex128))


@case("samples")
def resnet_samples_zero():
    _resnet(samples=0)


@case("samples")
def resnet_samples_negative():
    _resnet(samples=-5)


@case("samples")
def resnet_samples_bool():
    _resnet(samples=True)


@case("samples")
def resnet_samples_string():
    _resnet(samples="10")


@case("samples")
def resnet_samples_too_many():
    _resnet(samples=10**12)


@case("y0")
def resnet_y0_wrong_width():
    _resnet(width=3)


@case("y0")
def resnet_y0_ragged():
    _resnet(y0=[[1.0, 2.0], [3.0]])


@case("y0")
def resnet_y0_nan():
    _resnet(y0=[1.0, math.nan])


@case("y0")
def resnet_y0_bool():
    _resnet(y0=[True, False])


@case("y0")
def resnet_y0_strings():
    _resnet(y0=["1", "2"])


@case("y0")
def resnet_y0_complex():
    _resnet(y0=[1 + 1j, 2.0])


@case("y0")
def resnet_y0_complex_array():
    _resnet(y0=np.array([1.0, 2.0], dtype=complex))


@case("y0")
def resnet_y0_text():
    _resnet(y0="abc")


@case("y0")
def resnet_y0_empty():
    _resnet(y0=[])


@case("y0")
def resnet_y0_and_x():
    _resnet(x=[1.0])


@case("y0")
def resnet_neither_y0_nor_x():
    _resnet(y0=None)


@case("x")
def resnet_x_strings():
    _resnet(y0=None, x=["1"])


@case("x")
def resnet_x_infinite():
    _resnet(y0=None, x=[math.inf])


@case("x")
def resnet_x_three_dimensional():
    _resnet(y0=None, x=np.zeros((2, 2, 2)))


@case("x")
def resnet_x_complex_tensor():
    _resnet(y0=None, x=torch.tensor([1 + 2j]))


@case("x")
def resnet_x_bool_tensor():
    _resnet(y0=None, x=torch.tensor([True, False]))


@case("method")
def resnet_method_unknown():
    _resnet(method="exact")


@case("method")
def resnet_method_none():
    _resnet(method=None)


@case("record")
def resnet_record_unknown_word():
    _resnet(record="first")


@case("record")
def resnet_record_beyond_depth():
    _resnet(record=99)


@case("record")
def resnet_record_negative():
    _resnet(record=-1)


@case("record")
def resnet_record_list_beyond_depth():
    _resnet(record=[1, 99])


@case("record")
def resnet_record_empty():
    _resnet(record=[])


@case("record")
def resnet_record_bool():
    _resnet(record=True)


@case("record")
def resnet_record_fraction():
    _resnet(record=1.5)


@case("seed")
def resnet_seed_negative():
    _resnet(seed=-1)


@case("seed")
def resnet_seed_fraction():
    _resnet(seed=1.5)


@case("seed")
def resnet_seed_string():
    _resnet(seed="0")


@case("seed")
def resnet_seed_bool():
    _resnet(seed=True)


@case("device")
def resnet_device_unknown():
    _resnet(device="gpu")


@case("device")
def resnet_device_index_too_large():
    _resnet(device="cuda:64")


@case("dtype")
def resnet_dtype_half():
    _resnet(dtype="float16")


@case("dtype")
def resnet_dtype_integer():
    _resnet(dtype=torch.int64)


@case("dtype")
def resnet_dtype_none():
    _resnet(dtype=None)


@case("chunk_size")
def resnet_chunk_size_zero():
    _resnet(chunk_size=0)


@case("chunk_size")
def resnet_chunk_size_negative():
    _resnet(chunk_size=-3)


@case("chunk_size")
def resnet_chunk_size_fraction():
    _resnet(chunk_size=1.5)


@case("chunk_size")
def resnet_chunk_size_bool():
    _resnet(chunk_size=True)


@case("memory_budget")
def resnet_memory_budget_negative():
    _resnet(memory_budget=-1)


@case("memory_budget")
def resnet_memory_budget_nan():
    _resnet(memory_budget=math.nan)


@case("memory_budget")
def resnet_memory_budget_text():
    _resnet(memory_budget="big")


@case("memory_budget")
def resnet_memory_budget_zero():
    _resnet(memory_budget=0)


@case("memory_budget")
def resnet_memory_budget_bool():
    _resnet(memory_budget=True)


@case("memory_budget")
def resnet_memory_budget_beyond_memory():
    _resnet(width=64, samples=2**20, memory_budget=2**60, y0=None, x=np.ones(4096))


@case("on_nonfinite")
def resnet_on_nonfinite_unknown():
    _resnet(on_nonfinite="crash")


@case("progress")
def resnet_progress_text():
    _resnet(progress="nope")


@case("progress")
def resnet_progress_number():
    _resnet(progress=5)


@case("width")
def resnet_weights_width_too_large():
    _resnet(width=10**6, samples=1, depth=1, method="weights", y0=None, x=[1.0])


@case("record")
def resnet_all_layers_too_many():
    _resnet(width=10, depth=10**8, samples=10**4, record="all", y0=None, x=[1.0])


@case("depth", SLOW)
def resnet_depth_takes_hours():
    _resnet(depth=10**9, samples=1)


@case("depth", SLOW)
def resnet_wide_and_deep_takes_hours():
    _resnet(width=256, depth=10**6, samples=10**4, y0=None, x=[1.0])


# sample_sde --------------------------------------------------------------------------------


@case("steps")
def sde_steps_zero():
    _sde(steps=0)


@case("steps")
def sde_steps_bool():
    _sde(steps=True)


@case("steps")
def sde_steps_fraction():
    _sde(steps=1.5)


@case("steps")
def sde_steps_string():
    _sde(steps="10")


@case("steps", SLOW)
def sde_steps_take_hours():
    _sde(steps=10**9, samples=1)


@case("record")
def sde_record_off_grid():
    _sde(record=0.3)


@case("record")
def sde_record_beyond_one():
    _sde(record=1.5)


@case("record")
def sde_record_list_beyond_one():
    _sde(record=[0.5, 2.0])


@case("record")
def sde_record_negative():
    _sde(record=-0.25)


@case("record")
def sde_record_bool():
    _sde(record=True)


@case("record")
def sde_record_nan():
    _sde(record=math.nan)


@case("width")
def sde_width_zero():
    _sde(width=0)


@case("samples")
def sde_samples_zero():
    _sde(samples=0)


@case("samples")
def sde_samples_too_many():
    _sde(samples=10**12)


@case("y0")
def sde_y0_wrong_width():
    _sde(y0=[1.0, 2.0, 3.0])


@case("y0")
def sde_y0_bool():
    _sde(y0=[True, False])


@case("activation")
def sde_activation_unknown():
    _sde(activation="sigmoid")


@case("activation")
def sde_activation_ou_negative():
    _sde(activation="ou:alpha=-1")


@case("seed")
def sde_seed_negative():
    _sde(seed=-1)


@case("dtype")
def sde_dtype_text():
    _sde(dtype="half")


@case("device")
def sde_device_unknown():
    _sde(device="tpu")


@case("memory_budget")
def sde_memory_budget_text():
    _sde(memory_budget="big")


@case("chunk_size")
def sde_chunk_size_zero():
    _sde(chunk_size=0)


@case("on_nonfinite")
def sde_on_nonfinite_bool():
    _sde(on_nonfinite=True)


@case("progress")
def sde_progress_text():
    _sde(progress="nope")


@case("x")
def sde_x_complex():
    _sde(y0=None, x=[1j])


# observe_resnet / observe_sde ----------------------------------------------------------------


@case("observables")
def observe_observables_unknown():
    _observe(observables="nope")


@case("observables")
def observe_observables_none():
    _observe(observables=None)


@case("observables")
def observe_observables_empty():
    _observe(observables=[])


@case("observables")
def observe_observables_number_inside():
    _observe(observables=["log_growth", 3])


@case("observables")
def observe_observables_number():
    _observe(observables=5)


@case("observables")
def observe_correlation_needs_two_inputs():
    _observe(observables="correlation")


@case("layers")
def observe_layers_beyond_depth():
    _observe(layers=99)


@case("layers")
def observe_layers_unknown_word():
    _observe(layers="first")


@case("layers")
def observe_layers_empty():
    _observe(layers=[])


@case("width")
def observe_width_zero():
    _observe(width=0)


@case("depth")
def observe_depth_zero():
    _observe(depth=0)


@case("samples")
def observe_samples_bool():
    _observe(samples=True)


@case("method")
def observe_method_unknown():
    _observe(method="x")


@case("seed")
def observe_seed_negative():
    _observe(seed=-1)


@case("y0")
def observe_y0_nan():
    _observe(y0=[math.nan, 1.0])


@case("progress")
def observe_progress_text():
    _observe(progress="nope")


@case("memory_budget")
def observe_memory_budget_text():
    _observe(memory_budget="big")


@case("dtype")
def observe_dtype_half():
    _observe(dtype="half")


@case("on_nonfinite")
def observe_on_nonfinite_number():
    _observe(on_nonfinite=1)


@case("samples")
def observe_samples_too_many():
    _observe(samples=10**12)


@case("times")
def observe_sde_times_off_grid():
    _observe_sde(times=0.3)


@case("times")
def observe_sde_times_beyond_one():
    _observe_sde(times=2)


@case("observables")
def observe_sde_observables_none():
    _observe_sde(observables=None)


@case("steps")
def observe_sde_steps_zero():
    _observe_sde(steps=0)


@case("steps", SLOW)
def observe_sde_steps_take_hours():
    _observe_sde(steps=10**9, samples=1)


@case("samples")
def observe_sde_samples_too_many():
    _observe_sde(samples=10**12)


@case("width")
def observe_sde_width_negative():
    _observe_sde(width=-1)


@case("y0")
def observe_sde_y0_nan():
    _observe_sde(y0=[math.nan, 0.0])


# gradient_norms -------------------------------------------------------------------------------


@case("grad_last")
def gradients_grad_last_wrong_shape():
    _gradients(grad_last=[1.0, 2.0, 3.0])


@case("grad_last")
def gradients_grad_last_nan():
    _gradients(grad_last=[math.nan, 1.0])


@case("grad_last")
def gradients_grad_last_text():
    _gradients(grad_last="abc")


@case("grad_last")
def gradients_grad_last_bool():
    _gradients(grad_last=[True, False])


@case("grad_last")
def gradients_grad_last_complex():
    _gradients(grad_last=[1j, 1.0])


@case("method")
def gradients_law_with_two_inputs():
    _gradients(method="law", y0=[[1.0, 0.5], [0.2, 0.1]])


@case("method")
def gradients_method_unknown():
    _gradients(method="exact")


@case("layers")
def gradients_layers_beyond_depth():
    _gradients(layers=99)


@case("layers")
def gradients_layers_empty():
    _gradients(layers=[])


@case("width")
def gradients_width_zero():
    _gradients(width=0)


@case("depth")
def gradients_depth_bool():
    _gradients(depth=True)


@case("samples")
def gradients_samples_zero():
    _gradients(samples=0)


@case("seed")
def gradients_seed_negative():
    _gradients(seed=-1)


@case("memory_budget")
def gradients_memory_budget_negative():
    _gradients(memory_budget=-1)


@case("progress")
def gradients_progress_text():
    _gradients(progress="nope")


@case("depth")
def gradients_path_too_long():
    _gradients(width=100, depth=10**9, samples=1, y0=None, x=[1.0])


# collapse_probability ------------------------------------------------------------------------


@case("conditional")
def collapse_conditional_text():
    _collapse(conditional="yes")


@case("conditional")
def collapse_conditional_none():
    _collapse(conditional=None)


@case("level")
def collapse_level_above_one():
    _collapse(level=1.5)


@case("level")
def collapse_level_zero():
    _collapse(level=0)


@case("level")
def collapse_level_text():
    _collapse(level="0.9")


@case("level")
def collapse_level_nan():
    _collapse(level=math.nan)


@case("x")
def collapse_two_inputs():
    _collapse(x=[[1.0], [2.0]])


@case("conditional")
def collapse_every_start_collapsed():
    _collapse(x=None, y0=[-1.0, -2.0])


@case("width")
def collapse_width_zero():
    _collapse(width=0)


@case("depth")
def collapse_depth_zero():
    _collapse(depth=0)


@case("samples")
def collapse_samples_zero():
    _collapse(samples=0)


@case("method")
def collapse_method_unknown():
    _collapse(method="exact")


@case("seed")
def collapse_seed_negative():
    _collapse(seed=-1)


@case("activation")
def collapse_activation_unknown():
    _collapse(activation="nope")


@case("samples")
def collapse_samples_too_many():
    _collapse(samples=10**12)


@case("progress")
def collapse_progress_text():
    _collapse(progress="nope")


# correlation_coefficients --------------------------------------------------------------------


@case("y_a")
def correlation_shapes_differ():
    deeplimit.correlation_coefficients([1.0, 2.0], [1.0, 2.0, 3.0], "relu")


@case("y_a")
def correlation_text():
    deeplimit.correlation_coefficients("abc", [1.0], "relu")


@case("y_a")
def correlation_complex():
    deeplimit.correlation_coefficients([1j, 1.0], [1.0, 1.0], "relu")


@case("y_b")
def correlation_nan():
    deeplimit.correlation_coefficients([1.0, 1.0], [math.nan, 1.0], "relu")


@case("y_a")
def correlation_bool():
    deeplimit.correlation_coefficients([True, False], [1.0, 1.0], "relu")


@case("y_a")
def correlation_scalar():
    deeplimit.correlation_coefficients(1.0, 1.0, "relu")


@case("y_a")
def correlation_zero_vector():
    deeplimit.correlation_coefficients([0.0, 0.0], [1.0, 1.0], "relu")


@case("activation")
def correlation_activation_unknown():
    deeplimit.correlation_coefficients([1.0, 1.0], [1.0, 2.0], "nope")


# mean-field limits -----------------------------------------------------------------------------


@case("q0")
def meanfield_variance_q0_zero():
    deeplimit.meanfield_variance("tanh", 0.0, 1.0)


@case("q0")
def meanfield_variance_q0_negative():
    deeplimit.meanfield_variance("tanh", -1.0, 1.0)


@case("q0")
def meanfield_variance_q0_nan():
    deeplimit.meanfield_variance("tanh", math.nan, 1.0)


@case("q0")
def meanfield_variance_q0_text():
    deeplimit.meanfield_variance("tanh", "1", 1.0)


@case("q0")
def meanfield_variance_q0_bool():
    deeplimit.meanfield_variance("tanh", True, 1.0)


@case("q0")
def meanfield_variance_q0_complex():
    deeplimit.meanfield_variance("tanh", 1 + 1j, 1.0)


@case("t")
def meanfield_variance_t_beyond_one():
    deeplimit.meanfield_variance("tanh", 1.0, 2.0)


@case("t")
def meanfield_variance_t_nan():
    deeplimit.meanfield_variance("tanh", 1.0, [math.nan])


@case("t")
def meanfield_variance_t_strings():
    deeplimit.meanfield_variance("tanh", 1.0, ["0.5"])


@case("t")
def meanfield_variance_t_empty():
    deeplimit.meanfield_variance("tanh", 1.0, [])


@case("t")
def meanfield_variance_t_bool():
    deeplimit.meanfield_variance("tanh", 1.0, True)


@case("t")
def meanfield_variance_t_complex():
    deeplimit.meanfield_variance("tanh", 1.0, [0.5j])


@case("activation")
def meanfield_variance_activation_unknown():
    deeplimit.meanfield_variance("nope", 1.0, 1.0)


@case("depth")
def infinite_width_depth_zero():
    deeplimit.infinite_width_variance("tanh", 1.0, 0)


@case("depth")
def infinite_width_depth_fraction():
    deeplimit.infinite_width_variance("tanh", 1.0, 1.5)


@case("depth")
def infinite_width_depth_too_large():
    deeplimit.infinite_width_variance("relu", 1.0, 10**12)


@case("q0")
def infinite_width_q0_negative():
    deeplimit.infinite_width_variance("tanh", -1.0, 3)


@case("q0")
def log_growth_q0_zero():
    deeplimit.meanfield_log_growth("tanh", 0.0, 1.0)


@case("t")
def log_growth_t_negative():
    deeplimit.meanfield_log_growth("tanh", 1.0, -1.0)


@case("activation")
def log_growth_activation_unknown():
    deeplimit.meanfield_log_growth("nope", 1.0, 1.0)


@case("activation")
def log_growth_activation_zero():
    deeplimit.meanfield_log_growth(lambda x: torch.zeros_like(x), 1.0, 1.0)


@case("kernel0")
def covariance_kernel_not_square():
    deeplimit.meanfield_covariance("tanh", np.ones((2, 3)), 1.0)


@case("kernel0")
def covariance_kernel_not_symmetric():
    deeplimit.meanfield_covariance("tanh", [[1.0, 0.5], [0.0, 1.0]], 1.0)


@case("kernel0")
def covariance_kernel_not_psd():
    deeplimit.meanfield_covariance("tanh", [[1.0, 2.0], [2.0, 1.0]], 1.0)


@case("kernel0")
def covariance_kernel_nan():
    deeplimit.meanfield_covariance("tanh", [[1.0, math.nan], [math.nan, 1.0]], 1.0)


@case("kernel0")
def covariance_kernel_text():
    deeplimit.meanfield_covariance("tanh", "abc", 1.0)


@case("kernel0")
def covariance_kernel_bool():
    deeplimit.meanfield_covariance("tanh", [[True, False], [False, True]], 1.0)


@case("kernel0")
def covariance_kernel_complex():
    deeplimit.meanfield_covariance("tanh", [[1.0, 0.5j], [-0.5j, 1.0]], 1.0)


@case("t")
def covariance_t_beyond_one():
    deeplimit.meanfield_covariance("tanh", np.eye(2), 2.0)


@case("rho0")
def relu_correlation_rho_above_one():
    deeplimit.relu_correlation(1.5, 1.0)


@case("rho0")
def relu_correlation_rho_nan():
    deeplimit.relu_correlation(math.nan, 1.0)


@case("rho0")
def relu_correlation_rho_text():
    deeplimit.relu_correlation("0.5", 1.0)


@case("rho0")
def relu_correlation_rho_bool():
    deeplimit.relu_correlation(True, 1.0)


@case("rho0")
def relu_correlation_rho_complex():
    deeplimit.relu_correlation(0.5j, 1.0)


@case("t")
def relu_correlation_t_negative():
    deeplimit.relu_correlation(0.5, -0.5)


@case("t")
def relu_correlation_t_empty():
    deeplimit.relu_correlation(0.5, [])


# laws -----------------------------------------------------------------------------------------


@case("mean")
def normal_law_mean_nan():
    laws.normal_law(math.nan, 1.0)


@case("var")
def normal_law_var_zero():
    laws.normal_law(0.0, 0.0)


@case("var")
def normal_law_var_negative():
    laws.normal_law(0.0, -1.0)


@case("mean")
def normal_law_mean_text():
    laws.normal_law("1", 1.0)


@case("mean")
def normal_law_mean_bool():
    laws.normal_law(True, 1.0)


@case("var")
def normal_law_var_complex():
    laws.normal_law(0.0, 1j)


@case("a")
def gbm_law_a_bool():
    laws.gbm_law(a=True)


@case("a")
def gbm_law_a_text():
    laws.gbm_law(a="2")


@case("y0")
def gbm_law_y0_infinite():
    laws.gbm_law(y0=math.inf)


@case("y0")
def gbm_law_y0_vector():
    laws.gbm_law(y0=[1.0, 2.0])


@case("y0")
def relu_width1_law_neither():
    laws.relu_width1_law()


@case("y0")
def relu_width1_law_both():
    laws.relu_width1_law(y0=1.0, x=[1.0])


@case("x")
def relu_width1_law_x_matrix():
    laws.relu_width1_law(x=[[1.0, 2.0], [3.0, 4.0]])


@case("x")
def relu_width1_law_x_strings():
    laws.relu_width1_law(x=["1"])


@case("x")
def relu_width1_law_x_bool():
    laws.relu_width1_law(x=[True])


@case("x")
def relu_width1_law_x_complex():
    laws.relu_width1_law(x=[1j])


@case("y0")
def relu_width1_law_y0_bool():
    laws.relu_width1_law(y0=True)


@case("alpha")
def ou_law_alpha_zero():
    laws.ou_law(alpha=0.0)


@case("beta")
def ou_law_beta_negative():
    laws.ou_law(beta=-1.0)


@case("sigma")
def ou_law_sigma_text():
    laws.ou_law(sigma="1")


@case("y0")
def ou_law_y0_nan():
    laws.ou_law(y0=math.nan)


@case("alpha")
def ou_law_alpha_bool():
    laws.ou_law(alpha=True)


@case("width")
def identity_log_norm_width_zero():
    laws.identity_log_norm_law(0)


@case("width")
def identity_log_norm_width_fraction():
    laws.identity_log_norm_law(2.5)


@case("width")
def identity_log_norm_width_bool():
    laws.identity_log_norm_law(True)


@case("norm0")
def identity_norm_norm0_zero():
    laws.identity_norm_law(3, 0.0)


@case("norm0")
def identity_norm_norm0_negative():
    laws.identity_norm_law(3, -1.0)


@case("norm0")
def identity_norm_norm0_text():
    laws.identity_norm_law(3, "1")


@case("q0")
def depth_then_width_q0_zero():
    laws.depth_then_width_law(q0=0.0)


@case("t")
def depth_then_width_t_beyond_one():
    laws.depth_then_width_law(t=2.0)


@case("t")
def depth_then_width_t_bool():
    laws.depth_then_width_law(t=True)


@case("depth")
def collapse_law_depth_zero():
    laws.relu_width1_collapse_probability(0)


@case("depth")
def collapse_law_depth_fraction():
    laws.relu_width1_collapse_probability(1.5)


@case("depth")
def collapse_law_depth_text():
    laws.relu_width1_collapse_probability("5")


@case("depth")
def collapse_law_depth_bool():
    laws.relu_width1_collapse_probability(True)


@case("layer")
def collapse_law_layer_beyond_depth():
    laws.relu_width1_collapse_probability([5], layer=[6])


@case("layer")
def collapse_law_layer_negative():
    laws.relu_width1_collapse_probability(5, layer=-1)


@case("depth")
def nonpositive_law_depth_zero():
    laws.relu_width1_nonpositive_probability(0)


GBM = laws.gbm_law(1.0, 1.0)


@case("x")
def law_cdf_text():
    GBM.cdf("abc")


@case("x")
def law_cdf_nan():
    GBM.cdf([math.nan])


@case("x")
def law_cdf_strings():
    GBM.cdf(["1"])


@case("x")
def law_cdf_complex():
    GBM.cdf([1j])


@case("x")
def law_cdf_bool():
    GBM.cdf(True)


@case("x")
def law_sf_nan():
    GBM.sf(math.nan)


@case("x")
def law_logpdf_text():
    GBM.logpdf("abc")


@case("x")
def law_pdf_nan():
    GBM.pdf([math.nan])


@case("x")
def mixture_cdf_nan():
    laws.relu_width1_law(x=[1.0]).cdf([0.5, math.nan])


@case("q")
def law_ppf_above_one():
    GBM.ppf(1.5)


@case("q")
def law_ppf_text():
    GBM.ppf("abc")


@case("q")
def law_ppf_bool():
    GBM.ppf(True)


@case("qs")
def law_quantiles_above_one():
    GBM.quantiles([0.5, 2.0])


@case("size")
def law_sample_size_negative():
    GBM.sample(-1)


@case("size")
def law_sample_size_fraction():
    GBM.sample(2.5)


@case("size")
def law_sample_size_bool():
    GBM.sample(True)


@case("seed")
def law_sample_seed_negative():
    GBM.sample(10, seed=-1)


@case("seed")
def law_sample_seed_text():
    GBM.sample(10, seed="a")


@case("size")
def law_sample_too_many():
    GBM.sample(10**13)


@case("order")
def law_moment_zero():
    GBM.moment(0)


@case("order")
def law_moment_fraction():
    GBM.moment(1.5)


@case("order")
def law_moment_bool():
    GBM.moment(True)


# activations ----------------------------------------------------------------------------------


@case("activation")
def parse_activation_unknown():
    parse_activation("nope")


@case("activation")
def parse_activation_number():
    parse_activation(3)


@case("activation")
def parse_activation_parameter_twice():
    parse_activation("leaky:alpha=1,alpha=2")


@case("activation")
def parse_activation_ou_zero():
    parse_activation("ou:alpha=0")


@case("activation")
def parse_activation_softplus_negative():
    parse_activation("softplus_m:m=-1")


@case("activation")
def parse_activation_linear_nan():
    parse_activation("linear:a=nan")


@case("a")
def linear_activation_nan():
    Linear(a=math.nan)


@case("a")
def linear_activation_text():
    Linear(a="2")


@case("alpha")
def leaky_activation_bool():
    PiecewiseLinear(alpha=True)


@case("m")
def softplus_activation_zero():
    SoftplusM(m=0.0)


@case("alpha")
def ou_activation_bool():
    OU(alpha=True)


# stats ----------------------------------------------------------------------------------------


@case("samples")
def ks_samples_nan():
    stats.ks_test([math.nan, 1.0], GBM)


@case("law")
def ks_law_text():
    stats.ks_test([1.0, 2.0, 3.0], "abc")


@case("level")
def ks_level_above_one():
    stats.ks_test([1.0, 2.0, 3.0], GBM, level=2.0)


@case("samples")
def ks_samples_empty():
    stats.ks_test([], GBM)


@case("samples")
def ks_samples_text():
    stats.ks_test("abc", GBM)


@case("samples")
def ks_samples_bool():
    stats.ks_test([True, False, True], GBM)


@case("samples")
def ks_samples_complex():
    stats.ks_test([1j, 1.0], GBM)


@case("level")
def cvm_level_zero():
    stats.cvm_test([1.0, 2.0, 3.0], GBM, level=0.0)


@case("method")
def two_sample_method_unknown():
    stats.two_sample_test([1.0, 2.0], [1.0, 3.0], method="t")


@case("b")
def two_sample_b_nan():
    stats.two_sample_test([1.0, 2.0], [math.nan, 1.0])


@case("level")
def two_sample_level_bool():
    stats.two_sample_test([1.0, 2.0], [1.0, 3.0], level=True)


@case("a")
def wasserstein_a_empty():
    stats.wasserstein1([], [1.0])


@case("grid")
def wasserstein_law_grid_zero():
    stats.wasserstein1_to_law([1.0, 2.0], GBM, grid=0)


@case("expected")
def mean_zscore_expected_text():
    stats.mean_zscore([1.0, 2.0, 3.0], "x")


@case("successes")
def binomial_interval_more_successes_than_trials():
    stats.binomial_interval(5, 3)


@case("successes")
def binomial_interval_successes_negative():
    stats.binomial_interval(-1, 10)


@case("level")
def binomial_interval_level_above_one():
    stats.binomial_interval(5, 10, level=1.5)


@case("successes")
def binomial_interval_successes_bool():
    stats.binomial_interval(True, 10)


@case("probability")
def binomial_test_probability_above_one():
    stats.binomial_test(3, 10, 1.5)


@case("x")
def slope_x_zero():
    stats.fit_loglog_slope([1.0, 2.0, 0.0], [1.0, 2.0, 3.0])


@case("y")
def slope_y_shorter():
    stats.fit_loglog_slope([1.0, 2.0], [1.0])


@case("results")
def bonferroni_empty():
    stats.bonferroni([])


@case("level")
def bonferroni_level_above_one():
    stats.bonferroni([stats.binomial_test(3, 10, 0.3)], level=2.0)


# train_resnet ----------------------------------------------------------------------------------


@case("depth")
def train_depth_zero():
    _train(depth=0)


@case("hidden_width")
def train_hidden_width_zero():
    _train(hidden_width=0)


@case("embedding_dim")
def train_embedding_dim_zero():
    _train(embedding_dim=0)


@case("depth")
def train_depth_bool():
    _train(depth=True)


@case("hidden_width")
def train_hidden_width_text():
    _train(hidden_width="8")


@case("alpha")
def train_alpha_bool():
    _train(alpha=True)


@case("alpha")
def train_alpha_zero():
    _train(alpha=0.0)


@case("alpha")
def train_alpha_text():
    _train(alpha="1")


@case("lr")
def train_lr_text():
    _train(lr="0.5")


@case("lr")
def train_lr_negative():
    _train(lr=-1.0)


@case("lr")
def train_lr_bool():
    _train(lr=True)


@case("lr")
def train_lr_complex():
    _train(lr=0.5j)


@case("steps")
def train_steps_negative():
    _train(steps=-1)


@case("steps")
def train_steps_fraction():
    _train(steps=1.5)


@case("steps")
def train_steps_bool():
    _train(steps=True)


@case("steps")
def train_steps_text():
    _train(steps="3")


@case("steps")
def train_steps_too_many():
    _train(steps=10**9)


@case("seeds")
def train_seeds_zero():
    _train(seeds=0)


@case("seeds")
def train_seeds_empty():
    _train(seeds=[])


@case("seeds")
def train_seeds_negative_index():
    _train(seeds=[-1])


@case("seeds")
def train_seeds_bool():
    _train(seeds=True)


@case("seeds")
def train_seeds_too_many():
    _train(seeds=10**12)


@case("seed")
def train_seed_negative():
    _train(seed=-1)


@case("embedding_seed")
def train_embedding_seed_negative():
    _train(embedding_seed=-1)


@case("data_seed")
def train_data_seed_negative():
    _train(data_seed=-1)


@case("data")
def train_data_text():
    _train(data="abc")


@case("data")
def train_data_rows_differ():
    _train(data=(np.ones((3, 2)), np.ones((4, 2))))


@case("data")
def train_data_nan():
    _train(data=(np.full((3, 2), math.nan), np.ones((3, 2))))


@case("data")
def train_data_strings():
    _train(data=([["a"]], [[1.0]]))


@case("data")
def train_data_bool():
    _train(data=([[True]], [[1.0]]))


@case("data")
def train_data_complex():
    _train(data=(np.ones((3, 2)) * 1j, np.ones((3, 2))))


@case("activation")
def train_activation_unknown():
    _train(activation="nope")


@case("activation")
def train_activation_wrong_shape():
    _train(activation=lambda x: x.sum())


@case("device")
def train_device_unknown():
    _train(device="gpu")


@case("dtype")
def train_dtype_half():
    _train(dtype="half")


@case("scaling")
def train_scaling_text():
    _train(scaling="mf")


@case("scaling")
def train_scaling_and_alpha():
    _train(scaling=MeanFieldScaling(2.0), alpha=3.0)


@case("block")
def train_block_number():
    _train(block=3)


@case("explosion_factor")
def train_explosion_factor_zero():
    _train(explosion_factor=0.0)


@case("explosion_factor")
def train_explosion_factor_text():
    _train(explosion_factor="big")


@case("on_divergence")
def train_on_divergence_unknown():
    _train(on_divergence="crash")


@case("record_movement")
def train_record_movement_text():
    _train(record_movement="yes")


@case("record_layers")
def train_record_layers_text():
    _train(record_layers="no")


@case("hidden_width")
def train_hidden_width_too_large():
    _train(hidden_width=10**6, embedding_dim=1024, depth=64)


@case("hidden_width")
def train_hidden_width_far_too_large():
    _train(hidden_width=10**9)


@case("steps", SLOW)
def train_steps_take_hours():
    _train(depth=256, hidden_width=4096, embedding_dim=64, steps=10**5)


@case("steps")
def build_then_train_steps_negative():
    data = synthetic_task()
    model = build_resnet(2, 4, 3, input_dim=data.input_dim, output_dim=data.output_dim)
    train(model, data, -1)


@case("data")
def build_then_train_data_text():
    data = synthetic_task()
    model = build_resnet(2, 4, 3, input_dim=data.input_dim, output_dim=data.output_dim)
    train(model, "abc", 1)


@case("input_dim")
def build_input_dim_zero():
    build_resnet(2, 4, 3, input_dim=0, output_dim=2)


@case("X")
def training_data_text():
    TrainingData("abc", torch.ones(3, 2))


# mean_ode_limit / limit_error ------------------------------------------------------------------


@case("embedding_dim")
def limit_embedding_dim_zero():
    _limit(embedding_dim=0)


@case("method")
def limit_method_unknown():
    _limit(method="fast")


@case("activation")
def limit_exact_needs_linear():
    _limit(method="exact", activation="tanh")


@case("alpha")
def limit_alpha_bool():
    _limit(alpha=True)


@case("lr")
def limit_lr_text():
    _limit(lr="0.5")


@case("steps")
def limit_steps_negative():
    _limit(steps=-1)


@case("steps")
def limit_steps_too_many():
    _limit(steps=10**9)


@case("intervals")
def limit_intervals_too_few():
    _limit(intervals=2)


@case("intervals")
def limit_intervals_bool():
    _limit(intervals=True)


@case("reference_depth")
def limit_reference_depth_one():
    _limit(activation="tanh", reference_depth=1)


@case("reference_width")
def limit_reference_width_zero():
    _limit(activation="tanh", reference_width=0)


@case("reference_seeds")
def limit_reference_seeds_one():
    _limit(activation="tanh", reference_seeds=1)


@case("reference_seed")
def limit_reference_seed_negative():
    _limit(activation="tanh", reference_seed=-1)


@case("scaling")
def limit_scaling_lazy():
    _limit(scaling=LazyScaling())


@case("data")
def limit_data_text():
    _limit(data="abc")


@case("embedding_seed")
def limit_embedding_seed_negative():
    _limit(embedding_seed=-1)


@case("device")
def limit_device_unknown():
    _limit(activation="tanh", device="gpu")


@case("dtype")
def limit_dtype_half():
    _limit(activation="tanh", dtype="half")


def _trained_and_limit():
    result = _train(activation="identity", steps=1, seeds=2)
    limit = _limit(activation="identity", steps=1)
    return result, limit


@case("result")
def limit_error_result_text():
    deeplimit.limit_error("abc", _limit())


@case("limit")
def limit_error_limit_number():
    deeplimit.limit_error(_trained_and_limit()[0], 3)


@case("quantity")
def limit_error_quantity_unknown():
    deeplimit.limit_error(*_trained_and_limit(), quantity="loss")


@case("diverged")
def limit_error_diverged_unknown():
    deeplimit.limit_error(*_trained_and_limit(), diverged="drop")


@case("step")
def limit_error_step_beyond_steps():
    deeplimit.limit_error(*_trained_and_limit(), step=99)


@case("step")
def limit_error_step_fraction():
    deeplimit.limit_error(*_trained_and_limit(), step=1.5)


@case("per_seed")
def limit_error_per_seed_text():
    deeplimit.limit_error(*_trained_and_limit(), per_seed="yes")


@case("steps")
def limit_error_steps_differ():
    result = _train(activation="identity", steps=2, seeds=2)
    deeplimit.limit_error(result, _limit(activation="identity", steps=1))


# scalings -------------------------------------------------------------------------------------


@case("alpha")
def mean_field_alpha_zero():
    MeanFieldScaling(alpha=0.0)


@case("alpha")
def mean_field_alpha_bool():
    MeanFieldScaling(alpha=True)


@case("lr")
def mean_field_lr_text():
    MeanFieldScaling(lr="0.5")


@case("lr")
def mean_field_lr_negative():
    MeanFieldScaling(lr=-1.0)


@case("alpha")
def mean_field_alpha_complex():
    MeanFieldScaling(alpha=1j)


@case("relative_lrs")
def mean_field_relative_lrs_negative():
    MeanFieldScaling(relative_lrs={"u": -1.0})


@case("relative_lrs")
def mean_field_relative_lrs_list():
    MeanFieldScaling(relative_lrs=[1.0])


@case("exponent")
def lazy_exponent_too_large():
    LazyScaling(exponent=0.7)


@case("exponent")
def lazy_exponent_bool():
    LazyScaling(exponent=True)


@case("alpha0")
def lazy_alpha0_zero():
    LazyScaling(alpha0=0.0)


@case("residual_exponents")
def power_law_two_exponents():
    PowerLawScaling(residual_exponents=(1.0, 2.0))


@case("lr_exponents")
def power_law_exponent_text():
    PowerLawScaling(lr_exponents=(1.0, "x", 1.0))


@case("a")
def phase_point_a_text():
    PowerLawScaling.phase_point("x", 1.0)


@case("a")
def predicted_regime_a_nan():
    predicted_regime(math.nan, 1.0)


@case("b")
def predicted_regime_b_text():
    predicted_regime(1.0, "1")


@pytest.mark.parametrize("call, token, exception", API)
def test_bad_api_input_is_refused_in_one_line_naming_the_parameter(call, token, exception):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a slow run warns before it starts
        with pytest.raises(exception) as caught:
            call()
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    assert token in message, message
    if exception is SLOW:  # the warning gives the estimate
        assert " h" in message or " days" in message or " years" in message, message


def test_the_api_table_is_large():
    assert len(API) >= 224


# ----------------------------------------------------------------------------- CLI table

runner = CliRunner()
CLI: list = []


def cli(token, *args, **kwargs):
    CLI.append(pytest.param(list(map(str, args)), token, id=kwargs.get("id") or " ".join(args)))


RESNET = ("sample", "resnet", "--width", "2", "--depth", "3", "--samples", "4", "-q")
SDE = ("sample", "sde", "--width", "2", "--steps", "4", "--samples", "4", "-q")
TRAIN = ("train", "-L", "2", "-M", "4", "-D", "3", "-K", "1", "--seeds", "1")
LIMIT = ("limit", "-D", "3", "-K", "1", "--intervals", "8")
OUT = "{tmp}/o.nc"

cli("--width", "sample", "resnet", "--width", "abc", "--depth", "3", "--y0", "1", "--out", OUT)
cli("width", "sample", "resnet", "--width", "0", "--depth", "3", "--y0", "1", "--out", OUT)
cli("--width", "sample", "resnet", "--width", "2.5", "--depth", "3", "--y0", "1", "--out", OUT)
cli("--depth", "sample", "resnet", "--width", "1", "--depth", "abc", "--y0", "1", "--out", OUT)
cli("depth", "sample", "resnet", "--width", "1", "--depth", "0", "--y0", "1", "--out", OUT)
cli("samples", *RESNET, "--samples", "0", "--y0", "1,1", "--out", OUT)
cli("--samples", *RESNET, "--samples", "abc", "--y0", "1,1", "--out", OUT)
cli("samples", *RESNET, "--samples", "1000000000000", "--y0", "1,1", "--out", OUT)
cli("--x", *RESNET, "--x", "1,,2", "--out", OUT)
cli("--x", *RESNET, "--x", "1,a", "--out", OUT)
cli("--x", *RESNET, "--x", "", "--out", OUT)
cli("--x", *RESNET, "--x", "1,", "--out", OUT)
cli("y0", *RESNET, "--y0", "1,2,3", "--out", OUT)
cli("y0", *RESNET, "--y0", "1,2", "--x", "1", "--out", OUT)
cli("y0", *RESNET, "--out", OUT)
cli("x", *RESNET, "--x", "nan", "--out", OUT)
cli("x", *RESNET, "--x", "1,inf", "--out", OUT)
cli("--y0", *RESNET, "--y0", "1,2", "--y0", "1", "--out", OUT)
cli("activation", *RESNET, "--y0", "1,1", "--activation", "nope", "--out", OUT)
cli("activation", *RESNET, "--y0", "1,1", "--activation", "leaky:gamma=1", "--out", OUT)
cli("method", *RESNET, "--y0", "1,1", "--method", "exact", "--out", OUT)
cli("record", *RESNET, "--y0", "1,1", "--record", "99", "--out", OUT)
cli("record", *RESNET, "--y0", "1,1", "--record", "1.5", "--out", OUT)
cli("record", *RESNET, "--y0", "1,1", "--record", "abc", "--out", OUT)
cli("record", *RESNET, "--y0", "1,1", "--record", "-1", "--out", OUT)
cli("record", *RESNET, "--y0", "1,1", "--record", "1,,2", "--out", OUT)
cli("seed", *RESNET, "--y0", "1,1", "--seed", "-1", "--out", OUT)
cli("--seed", *RESNET, "--y0", "1,1", "--seed", "abc", "--out", OUT)
cli("device", *RESNET, "--y0", "1,1", "--device", "gpu", "--out", OUT)
cli("--dtype", *RESNET, "--y0", "1,1", "--dtype", "float16", "--out", OUT)
cli("--out", *RESNET, "--y0", "1,1", "--out", "{tmp}/o.txt")
cli("--out", *RESNET, "--y0", "1,1", "--out", "/proc/o.nc")
cli("--out", *RESNET, "--y0", "1,1", "--out", "{tmp}/a-file/o.nc")
cli("--out", *RESNET, "--y0", "1,1")
cli("width", *RESNET, "--width", "1000000", "--method", "weights", "--x", "1", "--out", OUT)
cli("--foo", *RESNET, "--y0", "1,1", "--foo", "1", "--out", OUT)
cli("--quiet", *RESNET, "--y0", "1,1", "--quiet=maybe", "--out", OUT)
cli("steps", *SDE, "--steps", "0", "--y0", "1,1", "--out", OUT)
cli("--steps", *SDE, "--steps", "abc", "--y0", "1,1", "--out", OUT)
cli("record", *SDE, "--y0", "1,1", "--record", "0.3", "--out", OUT)
cli("record", *SDE, "--y0", "1,1", "--record", "2", "--out", OUT)
cli("width", *SDE, "--width", "0", "--y0", "1", "--out", OUT)
cli("--dtype", *SDE, "--y0", "1,1", "--dtype", "half", "--out", OUT)
cli("--x", *SDE, "--x", "1,,2", "--out", OUT)
cli("--out", *SDE, "--y0", "1,1", "--out", "{tmp}/o.txt")
cli("--y0", *SDE, "--y0", "a", "--out", OUT)
cli("activation", *SDE, "--y0", "1,1", "--activation", "ou:alpha=0", "--out", OUT)
cli("samples", *SDE, "--y0", "1,1", "--samples", "-1", "--out", OUT)
cli("law", "law", "nope")
cli("--alpha", "law", "gbm", "--alpha", "1")
cli("--a", "law", "gbm", "--a", "abc")
cli("a", "law", "gbm", "--a", "nan")
cli("alpha", "law", "ou", "--alpha", "0")
cli("beta", "law", "ou", "--beta", "-1")
cli("width", "law", "identity-norm", "--width", "0", "--norm0", "1")
cli("norm0", "law", "identity-norm", "--width", "2", "--norm0", "0")
cli("t", "law", "depth-then-width", "--t", "2")
cli("--x", "law", "relu-width1", "--x", "1,,2")
cli("--depth", "law", "relu-width1", "--x", "1", "--depth", "0")
cli("y0", "law", "relu-width1", "--depth", "5")
cli("--quantiles", "law", "gbm", "--quantiles", "1.5")
cli("--quantiles", "law", "gbm", "--quantiles", "a,b")
cli("y0", "law", "relu-width1", "--y0", "1", "--x", "1")
cli("depth", *TRAIN, "-L", "0", "--out", OUT)
cli("--depth", *TRAIN, "-L", "abc", "--out", OUT)
cli("--width", *TRAIN, "-M", "0", "--out", OUT)
cli("--dim", *TRAIN, "-D", "0", "--out", OUT)
cli("alpha", *TRAIN, "--alpha", "0", "--out", OUT)
cli("alpha", *TRAIN, "--alpha", "nan", "--out", OUT)
cli("lr", *TRAIN, "--lr", "-1", "--out", OUT)
cli("--lr", *TRAIN, "--lr", "abc", "--out", OUT)
cli("steps", *TRAIN, "-K", "-1", "--out", OUT)
cli("seeds", *TRAIN, "--seeds", "0", "--out", OUT)
cli("seed", *TRAIN, "--seed", "-1", "--out", OUT)
cli("embedding-seed", *TRAIN, "--embedding-seed", "-1", "--out", OUT)
cli("data-seed", *TRAIN, "--data-seed", "-1", "--out", OUT)
cli("activation", *TRAIN, "--activation", "nope", "--out", OUT)
cli("--dtype", *TRAIN, "--dtype", "float16", "--out", OUT)
cli("device", *TRAIN, "--device", "gpu", "--out", OUT)
cli("explosion-factor", *TRAIN, "--explosion-factor", "0", "--out", OUT)
cli("--out", *TRAIN, "--out", "{tmp}/o.txt")
cli("--out", *TRAIN, "--out", "/proc/o.nc")
cli("steps", *TRAIN, "-K", "1000000000", "--out", OUT)
cli("seeds", *TRAIN, "--seeds", "1000000000000", "--out", OUT)
cli("--width", *TRAIN, "-M", "1000000000", "--out", OUT)
cli("--width", *TRAIN, "-M", "3", "--antithetic", "--out", OUT)
cli("--dim", *LIMIT, "-D", "0", "--out", OUT)
cli("method", *LIMIT, "--method", "fast", "--out", OUT)
cli("activation", *LIMIT, "--method", "exact", "-a", "tanh", "--out", OUT)
cli("--infinite-dim", *LIMIT, "--infinite-dim", "--out", OUT)
cli("--against", *LIMIT, "--against", "{tmp}/missing.nc", "--out", OUT)
cli("--against", *LIMIT, "--against", "{tmp}/a-file", "--out", OUT)
cli("intervals", *LIMIT, "--intervals", "2", "--out", OUT)
cli("--reference-depth", *LIMIT, "-a", "tanh", "--reference-depth", "1", "--out", OUT)
cli("--reference-width", *LIMIT, "-a", "tanh", "--reference-width", "0", "--out", OUT)
cli("--reference-seeds", *LIMIT, "-a", "tanh", "--reference-seeds", "1", "--out", OUT)
cli("steps", *LIMIT, "-K", "-1", "--out", OUT)
cli("alpha", *LIMIT, "--alpha", "0", "--out", OUT)
cli("--out", *LIMIT, "--out", "{tmp}/o.txt")
cli("depth", *LIMIT, "--depth", "0", "--out", OUT)
cli("device", *LIMIT, "-a", "tanh", "--device", "gpu", "--out", OUT)
cli("experiment", "reproduce", "nope", "--out", "{tmp}")
cli("samples", "reproduce", "hayou-fig1", "--set", "samples=5", "--out", "{tmp}")
cli("--set", "reproduce", "hayou-fig1", "--set", "samples", "--out", "{tmp}")
cli("sample", "reproduce", "hayou-fig1", "--set", "sample=10", "--out", "{tmp}")
cli("--full", "reproduce", "hayou-fig1", "--full", "--smoke", "--out", "{tmp}")
cli("--workers", "reproduce", "hayou-fig1", "--workers", "0", "--out", "{tmp}")
cli("--workers", "reproduce", "hayou-fig1", "--workers", "2", "--out", "{tmp}")
cli("--out", "reproduce", "hayou-fig1", "--out", "{tmp}/a-file")
cli("--store", "reproduce", "hayou-fig1", "--out", "{tmp}", "--store", "{tmp}/a-file")
cli("seed", "reproduce", "hayou-fig1", "--seed", "-1", "--out", "{tmp}")
cli("device", "reproduce", "hayou-fig1", "--device", "gpu", "--out", "{tmp}")
cli("sweep file", "sweep", "{tmp}/missing.toml", "--store", "{tmp}/store")
cli("--executor", "sweep", "{tmp}/fig1.toml", "--executor", "nope", "--store", "{tmp}/store")
cli("--workers", "sweep", "{tmp}/fig1.toml", "--workers", "-1", "--store", "{tmp}/store")
cli("--store", "sweep", "{tmp}/fig1.toml", "--store", "{tmp}/a-file")
cli("seed", "sweep", "{tmp}/huge.toml", "--store", "{tmp}/store", "--dry-run")
cli("grid has", "sweep", "{tmp}/grid.toml", "--store", "{tmp}/store", "--dry-run")
cli("device", "sweep", "{tmp}/fig1.toml", "--device", "gpu", "--store", "{tmp}/store")
cli("--store", "results", "--store", "{tmp}/a-file")
cli("--store", "results", "--store", "{tmp}/missing")
cli("--where", "results", "--store", "{tmp}/store", "--where", "seed")
cli("status", "results", "--store", "{tmp}/store", "--status", "nope")
cli("--export", "results", "--store", "{tmp}/store", "--export", "{tmp}/o.txt")
cli("--experiment", "results", "--store", "{tmp}/store", "--export", "{tmp}/o.nc")
cli("--status", "results", "--store", "{tmp}/store", "--summaries", "--export", "{tmp}/o.csv",
    "--status", "failed")  # fmt: skip
cli("experiment", "plot", "nope", "--store", "{tmp}/store")
cli("key", "plot", "hayou-fig1", "--key", "zzz", "--store", "{tmp}/store")
cli("--full", "plot", "hayou-fig1", "--full", "--smoke", "--store", "{tmp}/store")
cli("--store", "plot", "hayou-fig1", "--store", "{tmp}/a-file")
cli("--key", "plot", "hayou-fig1", "--key", "abc", "--set", "seed=1", "--store", "{tmp}/store")
cli("nope", "nope")
cli("--version", "--version=2")


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "a-file").write_text("not a folder, not a result\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "fig1.toml").write_text('experiment = "hayou-fig1"\nscale = "smoke"\nseeds = 2\n')
    (tmp_path / "huge.toml").write_text(
        'experiment = "hayou-fig1"\nscale = "smoke"\nseeds = 1000000000000\n'
    )
    (tmp_path / "grid.toml").write_text(
        'experiment = "hayou-fig1"\nscale = "smoke"\nseeds = 1000\n'
        "[grid]\nsamples = {range = [1000, 2000]}\n"
    )
    return tmp_path


@pytest.mark.parametrize("args, token", CLI)
def test_bad_cli_input_is_one_line_naming_the_flag_and_exit_2(workspace, args, token):
    arguments = [a.replace("{tmp}", str(workspace)) for a in args]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.output
    lines = result.stderr.split("\n")
    assert lines[-1] == "" and len(lines) == 2, result.output  # one line, nothing before it
    assert lines[0].startswith("error: "), result.output
    assert token in lines[0], result.output


def test_the_cli_table_is_large():
    assert len(CLI) >= 80
