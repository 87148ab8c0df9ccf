"""The shorthand functions of the random-ResNet API, in one place: ``sample_resnet``,
``sample_sde``, ``observe_resnet``, ``observe_sde``, ``collapse_probability`` and
``gradient_norms``.

Each is ``RandomResNet(width, activation)`` or ``ResNetSDE(width, activation)`` with one of
its methods, a ``Sampling`` of the function's keyword arguments and a ``Start`` of its ``x`` /
``y0``, and gives the same numbers (``random_resnet.py``). They keep their historical keyword
names (``layers=``, ``times=`` for ``record=``) and their messages name them; the defaults are
those of ``Sampling`` (``sampling.py``). Their one body is ``shorthand``: it reads the
function's arguments and runs it through the engine of ``random_resnet.py``. The modules
where they used to live (``network``, ``sde``, ``observables``, ``gradients``) export them
under the same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chain import DEFAULT_MEMORY_BUDGET, ProgressCallback
from .sampling import (
    DEFAULT_DEVICE,
    DEFAULT_DTYPE,
    DEFAULT_METHOD,
    DEFAULT_ON_NONFINITE,
    DEFAULT_RECORD,
    DEFAULT_SEED,
    Sampling,
    Start,
)

if TYPE_CHECKING:
    from torch import Tensor

    from .observables import CollapseProbability, Observations

__all__ = [
    "collapse_probability",
    "gradient_norms",
    "observe_resnet",
    "observe_sde",
    "sample_resnet",
    "sample_sde",
]

# the sampling knobs a shorthand function may take, passed to Sampling as they are
_KNOBS = ("seed", "method", "dtype", "device", "chunk_size", "memory_budget", "on_nonfinite")
# function: (kind, its run_* function in random_resnet.py, its steps argument, its record one)
_SHORTHANDS: dict[str, tuple[str, str, str, str | None]] = {
    "sample_resnet": ("resnet", "run_sample", "depth", "record"),
    "sample_sde": ("sde", "run_sample", "steps", "record"),
    "observe_resnet": ("resnet", "run_observe", "depth", "layers"),
    "observe_sde": ("sde", "run_observe", "steps", "times"),
    "collapse_probability": ("resnet", "run_collapse", "depth", None),
    "gradient_norms": ("resnet", "run_gradients", "depth", "layers"),
}


def shorthand(name: str, arguments: dict[str, Any]) -> Any:
    """The body of the shorthand function ``name``, given its arguments (its ``locals()``
    before anything else): the description, the ``Sampling`` of its knobs and the ``Start`` of
    its ``x`` / ``y0``, validated in that order, then the run with the function's own names in
    messages (``context``, ``record_name``)."""
    from . import random_resnet

    kind, runner, steps_name, record_name = _SHORTHANDS[name]
    rest = dict(arguments)
    description = (random_resnet.RandomResNet if kind == "resnet" else random_resnet.ResNetSDE)(
        rest.pop("width"), rest.pop("activation")
    )
    steps = rest.pop(steps_name)
    knobs = {knob: rest.pop(knob) for knob in _KNOBS if knob in rest}
    sampling = Sampling(rest.pop("samples"), progress=rest.pop("progress"), **knobs)
    start = Start(x=rest.pop("x"), y0=rest.pop("y0"))
    record = rest.pop(record_name) if record_name else None
    return getattr(random_resnet, runner)(
        description.width,
        description.activation,
        kind,
        steps,
        start,
        sampling,
        record,
        context=name,
        record_name=record_name or "record",
        **rest,
    )


def sample_resnet(
    width: int,
    depth: int,
    activation: Any,
    *,
    samples: int,
    y0: Any = None,
    x: Any = None,
    method: str = DEFAULT_METHOD,
    record: Any = DEFAULT_RECORD["state"],
    seed: int = DEFAULT_SEED,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = DEFAULT_ON_NONFINITE,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Sample ``samples`` independent random ResNets of Eq. 1 and return their pre-activations.

    Shorthand for ``RandomResNet(width, activation).sample(depth, Start(x=x, y0=y0),
    Sampling(samples, ..., record=record))``, with the same numbers; the defaults are those
    of ``Sampling`` (``deeplimit.initialization.sampling``).

    Parameters
    ----------
    width, depth:
        ``n >= 1`` and ``L >= 1``.
    activation:
        A name or spec string (``"relu"``, ``"leaky:alpha=1,beta=0.5"``), an ``Activation`` or
        an elementwise callable.
    y0, x:
        Exactly one: the initial state ``Y_0`` (shape ``(width,)``, or ``(k, width)`` for ``k``
        inputs sharing the weights), or inputs ``x`` (shape ``(d,)`` or ``(k, d)``) from which
        each network draws ``Y_0 = W_in x``.
    method:
        ``"auto"`` (default) is ``"law"`` here. ``"law"``: exact in law, ``O(n k^2)`` per
        layer and network through a factor of the post-activations ``Phi`` with
        ``C C^T = Phi Phi^T`` (Lemma 6 for one input), accurate down to rounding for nearly
        collinear inputs. ``"weights"``: explicit Gaussian matrices ``W_l``, the reference
        path, ``O(n^2 k)``. ``"fused"`` (or ``Fused(...)``, opt-in): the law sampler compiled
        by ``torch.compile``, many layers per kernel call with counter-based normals generated
        inside; states only; the same law, other numbers (``deeplimit.initialization.fused``).
    record:
        ``"last"`` (layer ``L``), ``"all"`` (layers ``0..L``), a layer index, or a list of
        indices (a layer listed twice fills both slots). Unrecorded layers are never stored.
    seed, device, dtype:
        A given seed gives the same numbers on the same device whatever ``chunk_size``.
    chunk_size, memory_budget:
        Samples are processed in chunks of ``chunk_size`` samples (rounded up to whole random
        blocks), by default as many as fit in ``memory_budget`` bytes of working memory (at
        least one block). Before anything is allocated, a run whose results and chunks cannot
        fit in the memory of ``device`` raises a ValueError naming the argument and the
        estimate; one estimated at an hour or more warns (``RuntimeWarning``) with the time.
    on_nonfinite:
        ``"raise"`` (default) raises ``NumericalBlowupError`` when paths become NaN/inf and
        ``NumericalUnderflowError`` when they underflow (the norm of the state falls below
        the dtype's smallest normal number; an underflowed path is never counted as
        collapsed), ``"warn"`` warns and returns them, ``"ignore"`` returns them silently.
        For linear, ReLU and leaky activations the chain is rescaled by exact powers of two,
        so only the recorded layers have to be in range.
    progress:
        Optional callback ``progress(done, total)`` in units of network-layers.

    Returns
    -------
    Tensor of shape ``(samples, [layers,] [k,] width)``: the layer axis is present when
    ``record`` is ``"all"`` or a list, the input axis when ``y0`` / ``x`` was 2-D.

    Example
    -------
    >>> y = sample_resnet(3, 100, "relu", samples=1000, x=[1.0, -0.5])
    >>> y.shape
    torch.Size([1000, 3])
    """
    return shorthand("sample_resnet", locals())


def sample_sde(
    width: int,
    activation: Any,
    *,
    steps: int,
    samples: int,
    y0: Any = None,
    x: Any = None,
    record: Any = DEFAULT_RECORD["state"],
    seed: int = DEFAULT_SEED,
    method: Any = DEFAULT_METHOD,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = DEFAULT_ON_NONFINITE,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Euler-Maruyama paths of the infinite-depth SDE on ``[0, 1]``.

    Shorthand for ``ResNetSDE(width, activation).sample(steps, Start(x=x, y0=y0),
    Sampling(samples, ..., record=record))``, with the same numbers.

    Arguments are those of ``sample_resnet`` with ``steps`` (Euler steps, ``dt = 1/steps``) in
    place of ``depth``, and ``record`` given in time: ``"last"`` (t = 1), ``"all"`` (every grid
    time ``j/steps``), a time, or a list of times on that grid (a time listed twice fills both
    slots). The increments are drawn exactly in law through a factor of ``phi(X_t)`` with the
    Gram matrix ``C C^T = phi(X_t) phi(X_t)^T`` (one and several inputs alike); ``method``
    as in ``sample_resnet`` (``"fused"``: the compiled engine).

    Returns a tensor of shape ``(samples, [times,] [k,] width)``.

    Example
    -------
    >>> x1 = sample_sde(1, "linear", steps=1000, samples=10000, y0=[1.0])
    >>> x1.shape
    torch.Size([10000, 1])
    """
    return shorthand("sample_sde", locals())


def observe_resnet(
    width: int,
    depth: int,
    activation: Any,
    *,
    samples: int,
    observables: Any = ("log_growth",),
    layers: Any = DEFAULT_RECORD["observables"],
    y0: Any = None,
    x: Any = None,
    method: str = DEFAULT_METHOD,
    seed: int = DEFAULT_SEED,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = DEFAULT_ON_NONFINITE,
    progress: ProgressCallback | None = None,
) -> Observations:
    """Observables of ``samples`` random ResNets (Eq. 1), computed while sampling.

    Shorthand for ``RandomResNet(width, activation).observe(depth, Start(x=x, y0=y0),
    observables, Sampling(samples, ..., record=layers))``, with the same numbers.

    Arguments as ``sample_resnet``, plus ``observables`` (names from ``OBSERVABLES``) and
    ``layers`` (``"last"``, ``"all"``, an index or a list: where per-layer observables are
    kept; a layer listed twice fills both slots). Same seed, same networks as
    ``sample_resnet``. Correlations are exact with ``method="law"`` too: its factor of the
    post-activations is exact for the joint law of all inputs, nearly collinear ones included.
    For linear, ReLU and leaky activations the scale-free observables (``log_growth``,
    ``collapse``, ``active``, ``quasi_gbm``, ``correlation``) stay exact where ``Y_l`` itself
    under- or overflows the dtype; ``norm`` is then reported as out of range.

    Example
    -------
    >>> obs = observe_resnet(4, 200, "relu", samples=1000, x=[1.0],
    ...                      observables=["log_growth", "quasi_gbm"])
    >>> residual = obs.quasi_gbm_residual   # LG_L - drift, ~ N(0, 1/4) for large L
    """
    return shorthand("observe_resnet", locals())


def observe_sde(
    width: int,
    activation: Any,
    *,
    steps: int,
    samples: int,
    observables: Any = ("log_growth",),
    times: Any = DEFAULT_RECORD["observables"],
    y0: Any = None,
    x: Any = None,
    seed: int = DEFAULT_SEED,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = DEFAULT_ON_NONFINITE,
    progress: ProgressCallback | None = None,
) -> Observations:
    """Observables along Euler-Maruyama paths of the SDE (``times`` on the grid ``j/steps``).

    Shorthand for ``ResNetSDE(width, activation).observe(steps, Start(x=x, y0=y0),
    observables, Sampling(samples, ..., record=times))``, with the same numbers."""
    return shorthand("observe_sde", locals())


def collapse_probability(
    width: int,
    depth: int,
    activation: Any = "relu",
    *,
    samples: int,
    x: Any = None,
    y0: Any = None,
    conditional: bool = True,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
    method: str = DEFAULT_METHOD,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    progress: ProgressCallback | None = None,
) -> CollapseProbability:
    """Probability that the network has collapsed (``phi(Y_l) = 0``) at or before layer ``l``.

    Shorthand for ``RandomResNet(width, activation).collapse_probability(depth,
    Start(x=x, y0=y0), Sampling(samples, ...), conditional=..., level=...)``.

    Collapse is absorbing (Lemma 1), so this is the empirical cdf of the first collapse layer,
    with Wilson intervals at ``level`` (default 95 %). With ``conditional=True`` only networks
    with ``phi(Y_0) != 0`` count (the paper's Fig. 4: the curve then tends to 0 with depth);
    otherwise layer 0 contributes ``P(phi(Y_0) = 0)`` (``2^-n`` for ReLU with random ``x``).
    One input (``x`` or ``y0`` a vector).
    """
    return shorthand("collapse_probability", locals())


def gradient_norms(
    width: int,
    depth: int,
    activation: Any,
    *,
    samples: int,
    y0: Any = None,
    x: Any = None,
    grad_last: Any = None,
    layers: Any = DEFAULT_RECORD["gradients"],
    method: str = DEFAULT_METHOD,
    seed: int = DEFAULT_SEED,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Norms ``||g_l||`` of the gradient back-propagated from a fixed ``g_L`` (Fig. 8).

    Shorthand for ``RandomResNet(width, activation).gradient_norms(depth, Start(x=x, y0=y0),
    Sampling(samples, ..., record=layers), grad_last=grad_last)``, with the same numbers.

    ``grad_last`` is ``g_L`` (shape ``(width,)``, or ``(k, width)`` for ``k`` inputs; default the
    unit vector ``(1, ..., 1)/sqrt(n)`` for every input). ``layers`` as in ``sample_resnet``
    (default ``"all"``). The networks are those ``sample_resnet`` draws with the same seed and
    method. ``method="law"`` is exact for one input (see the module docstring); for several
    inputs use ``method="weights"``. The default ``"auto"``, the same as everywhere, takes
    ``"law"`` for one input and ``"weights"`` for several.

    Returns ``(samples, layers[, k])`` (the layer axis dropped for a single layer index).
    """
    return shorthand("gradient_norms", locals())
