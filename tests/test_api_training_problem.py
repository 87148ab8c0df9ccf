"""``TrainingProblem``: one description → the finite networks (``.train``) and their limit
(``.limit(method)``), issue 9. The function shorthands are the objects bit for bit; the default
method is the exact and fastest one and says so; a run and a limit of different problems are
refused; an explicit ``alpha``/``lr`` next to a ``scaling`` is refused whatever its value; unit
movements are recorded only when asked for."""

import dataclasses
import math
import pickle

import pytest
import torch

import deeplimit
from deeplimit.training import (
    Exact,
    Lazy,
    LazyScaling,
    LimitResult,
    MeanFieldScaling,
    Particles,
    PowerLawScaling,
    Reference,
    Span,
    TrainingProblem,
    TwoLayerBlock,
    build_resnet,
    exact_linear_limit,
    limit_error,
    mean_ode_limit,
    reference_limit,
    span_linear_limit,
    synthetic_task,
    train,
    train_resnet,
)
from deeplimit.training.defaults import DEFAULT_ACTIVATION


def _same(a, b):
    """Bit-for-bit equality of the records of two results (NaN where both are NaN)."""
    for name in ("outputs", "embeddings", "loss"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)), name


# -- the object is the functions -------------------------------------------------------------


def test_train_equals_train_resnet_and_the_two_halves_bit_for_bit():
    problem = TrainingProblem(6, alpha=2.0, lr=0.3, steps=3, embedding_seed=4)
    run = problem.train(3, 8, seeds=[0, 5], seed=2)
    shorthand = train_resnet(
        3, 8, 6, alpha=2.0, lr=0.3, steps=3, embedding_seed=4, seeds=[0, 5], seed=2
    )
    data = synthetic_task()
    model = build_resnet(
        3,
        8,
        6,
        input_dim=5,
        output_dim=5,
        scaling=MeanFieldScaling(2.0, 0.3),
        seeds=[0, 5],
        seed=2,
        embedding_seed=4,
    )
    halves = train(model, data, 3)
    _same(run, shorthand)
    _same(run, halves)
    assert torch.equal(run.w_in, halves.w_in) and run.block == "2LP(tanh)"
    assert run.problem is problem and shorthand.problem == problem and halves.problem is None


def test_limit_methods_equal_the_functions_bit_for_bit():
    problem = TrainingProblem(7, activation="identity", lr=0.4, steps=3)
    kwargs = dict(activation="identity", lr=0.4, steps=3, intervals=16)
    _same(problem.limit(Exact(16, solver="matrix")), exact_linear_limit(7, **kwargs))
    _same(problem.limit(Exact(depth=6, solver="matrix")), exact_linear_limit(7, depth=6, **kwargs))
    joint = problem.limit(Span(infinite_dim=True, intervals=16))
    _same(joint, span_linear_limit(7, infinite_dim=True, **kwargs))
    _same(problem.limit(Lazy(intervals=16)), span_linear_limit(7, lazy=True, **kwargs))
    tanh = TrainingProblem(5, steps=2)
    small = dict(depth=4, hidden_width=8, seeds=2)
    _same(tanh.limit(Reference(**small)), reference_limit(5, steps=2, **small))
    particles = tanh.limit(Particles(**small))
    _same(particles, reference_limit(5, steps=2, antithetic=True, extrapolate=True, **small))
    assert particles.method == "particles" and isinstance(particles.strategy, Particles)


def test_span_solver_is_the_matrix_ode_to_rounding_and_is_the_default():
    """mean_ode_limit (and problem.limit()) take the span solver for linear blocks: the same
    states, embeddings, outputs and discretization budget as the O(D^3) matrix ODE."""
    matrix = exact_linear_limit(24, activation="identity", steps=4, intervals=32)
    default = mean_ode_limit(24, activation="identity", steps=4, intervals=32)
    assert default.method == "exact" and default.details["solver"] == "span"
    assert default.strategy == Exact(intervals=32)
    for name in ("states", "embeddings", "outputs", "loss"):
        difference = (getattr(default, name) - getattr(matrix, name)).abs().max()
        assert float(difference) < 1e-12, name
    assert torch.equal(default.depth_grid, matrix.depth_grid)
    budget, reference = (r.error_budget["discretization"] for r in (default, matrix))
    assert budget > 0 and abs(budget - reference) < 1e-12 + 1e-6 * reference
    layers = TrainingProblem(24, activation="linear:a=2", steps=3)
    fast, slow = (layers.limit(Exact(depth=5, solver=s)) for s in ("span", "matrix"))
    assert fast.method == slow.method == "exact-layers"
    assert float((fast.states - slow.states).abs().max()) < 1e-12


# -- the default method ----------------------------------------------------------------------


def test_default_method_is_exact_for_linear_blocks_and_says_so():
    problem = TrainingProblem(6, activation="identity", steps=2)
    assert problem.default_method() == Exact()
    limit = problem.limit()
    assert limit.strategy == Exact() and limit.details["chosen_automatically"] is True
    assert "chosen automatically" in limit.description and "span solver" in limit.description
    chosen = problem.limit(Exact())
    assert chosen.details["chosen_automatically"] is False
    assert "chosen automatically" not in chosen.description
    lazy = TrainingProblem(6, activation="identity", scaling=LazyScaling(), steps=2)
    assert lazy.default_method() == Lazy() and lazy.limit().details["alpha"] == math.inf


def test_default_method_for_tanh_is_reference_networks_labelled_an_estimate():
    problem = TrainingProblem(4, steps=0)
    assert problem.default_method() == Reference()
    limit = problem.limit()
    assert limit.method == "reference" and limit.strategy == Reference()
    assert limit.description.startswith("estimate of the Neural Mean ODE limit")
    assert "no exact solver exists for sigma = tanh" in limit.description
    assert math.isfinite(limit.error_budget["embeddings_total"])


def test_no_method_applies_is_an_error_naming_the_case():
    with pytest.raises(ValueError, match="scaling"):
        TrainingProblem(4, scaling=PowerLawScaling()).limit()
    with pytest.raises(ValueError, match="scaling must be one Scaling for a limit"):
        TrainingProblem(4, activation="identity", scaling=[MeanFieldScaling()] * 2).limit()
    with pytest.raises(ValueError, match="activation must be linear"):
        TrainingProblem(4).limit(Exact())
    with pytest.raises(ValueError, match="activation must be linear"):
        TrainingProblem(4, activation="relu").limit(Span())
    with pytest.raises(TypeError, match="method must be a limit method"):
        TrainingProblem(4).limit("exact")


# -- one set of defaults, and the problem check ----------------------------------------------


def test_train_resnet_and_mean_ode_limit_share_their_defaults():
    assert DEFAULT_ACTIVATION == "tanh"
    problem = train_resnet(2, 4, 4, steps=1).problem
    assert problem.activation.spec == "tanh" and problem == TrainingProblem(4, steps=1)
    assert mean_ode_limit(4, steps=1, reference_depth=4, reference_width=8).problem == problem


def test_limit_error_refuses_a_run_and_a_limit_of_different_problems():
    """The issue's case: a tanh network against the linear limit now fails, naming it."""
    run = train_resnet(4, 8, 4, steps=2)
    linear = mean_ode_limit(4, activation="identity", steps=2, intervals=16)
    with pytest.raises(ValueError, match=r"activation: tanh vs linear:a=1"):
        limit_error(run, linear)
    problem = TrainingProblem(4, activation="identity", steps=2)
    good = problem.train(4, 8, seeds=2)
    assert limit_error(good, linear).shape == (3,)
    others = {
        "steps: 2 vs 3": problem.replace(steps=3),
        "lr: 0.5 vs 0.25": problem.replace(lr=0.25),
        "alpha: 1.0 vs 2.0": problem.replace(alpha=2.0),
        "embedding_seed: 0 vs 1": problem.replace(embedding_seed=1),
        "embedding_dim: 4 vs 6": problem.replace(embedding_dim=6),
        "data: ": problem.replace(data_seed=2),
    }
    for what, other in others.items():
        with pytest.raises(ValueError, match=what):
            limit_error(good, other.limit(Exact(16)))
    # a D -> infinity limit may have more coordinates; a hand-built limit is not checked
    joint = problem.replace(embedding_dim=6).limit(Span(infinite_dim=True, intervals=16))
    assert limit_error(good, joint).shape == (3,)
    bare = dataclasses.replace(problem.limit(Exact(16)), problem=None)
    assert isinstance(bare, LimitResult) and limit_error(good, bare).shape == (3,)
    antithetic = TrainingProblem(
        4, block=TwoLayerBlock("identity", antithetic=True), steps=2
    ).train(4, 8, seeds=2)
    assert limit_error(antithetic, linear).shape == (3,)  # same law of units, same limit


@pytest.mark.parametrize(
    "call",
    [
        lambda s, **k: train_resnet(2, 4, 3, steps=1, scaling=s, **k),
        lambda s, **k: build_resnet(2, 4, 3, input_dim=5, output_dim=5, scaling=s, **k),
        lambda s, **k: TrainingProblem(3, scaling=s, **k),
        lambda s, **k: mean_ode_limit(3, activation="identity", steps=1, scaling=s, **k),
        lambda s, **k: exact_linear_limit(3, steps=1, scaling=s, **k),
    ],
)
@pytest.mark.parametrize("given", [dict(alpha=1.0), dict(lr=0.5), dict(alpha=1.0, lr=0.5)])
def test_an_explicit_alpha_or_lr_with_a_scaling_is_refused_even_at_its_default(call, given):
    with pytest.raises(ValueError, match="give either scaling or alpha/lr"):
        call(MeanFieldScaling(), **given)


def test_an_explicit_activation_with_a_block_is_refused_even_at_its_default():
    with pytest.raises(ValueError, match="give either block or activation"):
        TrainingProblem(3, block=TwoLayerBlock("tanh"), activation="tanh")
    with pytest.raises(ValueError, match="give either block or activation"):
        train_resnet(2, 4, 3, block=TwoLayerBlock("tanh"), activation="tanh")


# -- records ---------------------------------------------------------------------------------


def test_unit_movements_are_recorded_only_when_asked_for():
    problem = TrainingProblem(5, steps=2)
    plain = problem.train(3, 6, seeds=2)
    moved = problem.train(3, 6, seeds=2, record_movement=True)
    assert plain.movement == {} and train_resnet(3, 6, 5, steps=2).movement == {}
    assert set(moved.movement) == {"u", "v", "preactivation"}
    assert moved.movement["u"].shape == (2, 3) and float(moved.movement["u"][:, -1].min()) > 0
    _same(plain, moved)  # recording changes nothing else


# -- immutability and validation -------------------------------------------------------------


def test_problem_is_immutable_comparable_and_replaceable():
    problem = TrainingProblem(8, activation="identity", alpha=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.steps = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Exact().intervals = 8
    assert problem == TrainingProblem(8, activation="linear", alpha=2.0)
    assert problem != TrainingProblem(8, activation="identity")
    assert problem.differences(problem.replace(steps=4)) == ["steps: 10 vs 4"]
    assert problem.replace(lr=0.1).alpha == 2.0 and problem.replace(lr=0.1).lr == 0.1
    assert dataclasses.replace(problem, steps=4) == problem.replace(steps=4)
    with pytest.raises(TypeError):
        hash(problem)
    assert pickle.loads(pickle.dumps(problem)) == problem
    assert "TrainingProblem(embedding_dim=8, block=2LP(linear:a=1)" in repr(problem)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(embedding_dim=2.5), "embedding_dim"),
        (dict(steps=-1), "steps"),
        (dict(data="abc"), "data"),
        (dict(activation="nope"), "activation"),
        (dict(block=3), "block"),
        (dict(scaling="mf"), "scaling"),
        (dict(alpha=-1.0), "alpha"),
        (dict(lr=float("nan")), "lr"),
        (dict(embedding_seed=-1), "embedding_seed"),
        (dict(data_seed=-1), "data_seed"),
        (dict(explosion_factor=0), "explosion_factor"),
        (dict(embeddings=(torch.ones(7, 5), torch.ones(7, 5))), "W_in"),
    ],
)
def test_bad_problem_names_the_parameter(kwargs, name):
    arguments = dict(embedding_dim=4)
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        TrainingProblem(arguments.pop("embedding_dim"), **arguments)


@pytest.mark.parametrize(
    "factory, name",
    [
        (lambda: Exact(intervals=2), "intervals"),
        (lambda: Exact(depth=0), "depth"),
        (lambda: Exact(solver="fast"), "solver"),
        (lambda: Exact(estimate_error="yes"), "estimate_error"),
        (lambda: Span(infinite_dim=1), "infinite_dim"),
        (lambda: Lazy(intervals=True), "intervals"),
        (lambda: Reference(depth=1), "depth"),
        (lambda: Reference(hidden_width=0), "hidden_width"),
        (lambda: Reference(seeds=1), "seeds"),
        (lambda: Reference(seed=-1), "seed"),
        (lambda: Reference(device="gpu"), "device"),
        (lambda: Particles(dtype="half"), "dtype"),
    ],
)
def test_bad_method_names_the_parameter(factory, name):
    with pytest.raises((ValueError, TypeError), match=name):
        factory()


def test_bad_train_arguments_name_the_parameter():
    problem = TrainingProblem(4, steps=1)
    for kwargs, name in (
        (dict(depth=0), "depth"),
        (dict(hidden_width=-1), "hidden_width"),
        (dict(seeds=0), "seeds"),
        (dict(record_movement="yes"), "record_movement"),
        (dict(on_divergence="crash"), "on_divergence"),
        (dict(device="gpu"), "device"),
    ):
        arguments = {"depth": 2, "hidden_width": 4, **kwargs}
        with pytest.raises(ValueError, match=name):
            problem.train(arguments.pop("depth"), arguments.pop("hidden_width"), **arguments)


def test_the_names_are_exported_lazily():
    for name in ("TrainingProblem", "Exact", "Span", "Lazy", "Reference", "Particles"):
        assert name in deeplimit.__all__ and getattr(deeplimit, name) is globals()[name]


def test_the_commands_share_the_defaults_and_refuse_a_mismatched_run(tmp_path):
    """``deeplimit train`` and ``deeplimit limit`` default to the same activation (tanh): a
    default run checked against a linear limit is refused before anything is computed."""
    from typer.testing import CliRunner

    from deeplimit.cli import app

    run = tmp_path / "run.nc"
    train_args = ["train", "-L", "2", "-M", "4", "-D", "4", "-K", "1", "--out", str(run)]
    assert CliRunner().invoke(app, train_args).exit_code == 0
    limit_args = ["limit", "-D", "4", "-K", "1", "-a", "identity", "--against", str(run)]
    result = CliRunner().invoke(app, [*limit_args, "--out", str(tmp_path / "l.nc")])
    assert result.exit_code == 2 and "activation: tanh vs linear:a=1" in result.output
    assert "--activation" in result.output and not (tmp_path / "l.nc").exists()
