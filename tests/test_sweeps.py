"""Sweep files: grids, zipped axes, generated axes, validation into typed specs, clear errors."""

import itertools
import math
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.executors import SlurmResources
from deeplimit.experiments import experiment_names, get_experiment
from deeplimit.experiments.base import SCALES
from deeplimit.store import point_key
from deeplimit.sweeps import SweepError, load_sweep, parse_sweep

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "sweeps"
TOY = "sweep_experiments:Toy"


def test_product_zip_and_seed_axes_expand_in_order():
    sweep = parse_sweep(
        {
            "experiment": TOY,
            "scale": "smoke",
            "seeds": 2,
            "base": {"sleep_s": 0.0},
            "grid": {"size": [3, 5], "scale": {"linspace": [1.0, 2.0, 3]}},
            "zip": [{"fail": [False]}],
        }
    )
    assert sweep.axes == ("size", "scale", "fail", "seed")
    assert len(sweep) == 2 * 3 * 1 * 2 and sweep.duplicates == 0
    first, last = sweep.points[0], sweep.points[-1]
    assert dict(first.params) == {"size": 3, "scale": 1.0, "fail": False, "seed": 0}
    assert dict(last.params) == {"size": 5, "scale": 2.0, "fail": False, "seed": 1}
    assert last.spec.size == 5 and last.spec.scale == 2.0 and last.spec.seed == 1
    assert len({p.key for p in sweep.points}) == len(sweep)
    assert [p.spec.scale for p in sweep.points[:6:2]] == [1.0, 1.5, 2.0]


def test_zipped_fields_vary_together():
    sweep = parse_sweep({"experiment": TOY, "zip": {"size": [2, 4, 8], "seed": [7, 8, 9]}})
    assert [(p.spec.size, p.spec.seed) for p in sweep.points] == [(2, 7), (4, 8), (8, 9)]
    several = parse_sweep(
        {"experiment": TOY, "zip": [{"size": [2, 4], "seed": [1, 2]}, {"scale": [1.0, 3.0]}]}
    )
    assert len(several) == 4


def test_generated_axes():
    sweep = parse_sweep({"experiment": TOY, "grid": {"size": {"range": [2, 11, 3]}}})
    assert [p.spec.size for p in sweep.points] == [2, 5, 8]
    sweep = parse_sweep({"experiment": TOY, "seeds": [4, 9]})
    assert [p.spec.seed for p in sweep.points] == [4, 9]
    # rounding a log grid repeats small values: kept once, in order
    sweep = parse_sweep(
        {"experiment": TOY, "grid": {"size": {"logspace": [1, 100, 20], "integer": True}}}
    )
    sizes = [p.spec.size for p in sweep.points]
    assert sizes[0] == 1 and sizes[-1] == 100 and 10 < len(sizes) < 20
    assert all(a < b for a, b in itertools.pairwise(sizes))
    sweep = parse_sweep({"experiment": TOY, "grid": {"scale": {"logspace": [0.1, 10.0, 3]}}})
    assert [p.spec.scale for p in sweep.points] == pytest.approx([0.1, 1.0, 10.0])


def test_points_that_validate_to_the_same_spec_are_dropped_once():
    sweep = parse_sweep({"experiment": TOY, "grid": {"scale": [1, 1.0, 2]}})
    assert len(sweep) == 2 and sweep.duplicates == 1


def test_sweep_of_a_paper_figure_matches_its_spec():
    sweep = load_sweep(EXAMPLES / "hayou-fig1.toml")
    experiment = get_experiment("hayou-fig1")
    assert [p.spec for p in sweep.points] == [experiment.full(seed=s) for s in range(4)]
    assert sweep.points[2].key == point_key("hayou-fig1", experiment.full(seed=2))


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


@pytest.mark.parametrize("name", experiment_names())
@pytest.mark.parametrize("scale", SCALES)
def test_every_figure_study_is_expressible_as_a_sweep_file(name, scale):
    """Every field of every experiment's spec, at every scale, written out in a sweep file's
    [base] table, gives back the same spec (and so the same store folder)."""
    experiment = get_experiment(name)
    spec = experiment.spec_for(scale)
    fields = {k: v for k, v in spec.model_dump(mode="json").items() if k != "device"}
    lines = [f'experiment = "{name}"', "[base]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None]
    sweep = parse_sweep(tomllib.loads("\n".join(lines)))
    assert len(sweep) == 1
    assert sweep.points[0].spec == spec
    assert sweep.points[0].key == point_key(name, spec)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_sweep_files_are_valid(path):
    sweep = load_sweep(path)
    assert len(sweep) >= 1
    SlurmResources(**sweep.slurm)


def test_convergence_example_expands_its_log_grid():
    sweep = load_sweep(EXAMPLES / "hayou-fig1-convergence.toml")
    assert sorted({p.spec.samples for p in sweep.points}) == [2000, 6325, 20000]
    assert len(sweep) == 7 * 3 * 3
    assert {(p.spec.seed, p.spec.x) for p in sweep.points} == {(0, 1.0), (1, 0.5), (2, 2.0)}


BAD = [
    ('experiment = "hayou-fig1"\n[grid\nsamples = [1]', "not valid TOML"),
    ('experiment = "hayou-fig1"\ngrdi = {}', "unknown key 'grdi' (did you mean 'grid'?)"),
    ("scale = 'fast'", "'experiment' must name an experiment"),
    ('experiment = "hayou-fig99"', "experiment must be one of"),
    ('experiment = "nosuchmodule:Thing"', "cannot import 'nosuchmodule'"),
    (
        'experiment = "hayou-fig1"\n[grid]\nsample = [1000]',
        "[grid] unknown field 'sample' for hayou-fig1 (did you mean 'samples'?); fields: ",
    ),
    ('experiment = "hayou-fig1"\n[grid]\ndevice = ["cpu"]', "the device is not a spec axis"),
    ('experiment = "hayou-fig1"\n[grid]\nsamples = []', "[grid] samples has no values"),
    (
        'experiment = "hayou-fig1"\n[grid]\nseed = {range = [3, 3]}',
        "[grid] seed has no values: the grid would be empty",
    ),
    ('experiment = "hayou-fig1"\n[grid]\nseed = {range = [0]}', "range takes [start, stop]"),
    ('experiment = "hayou-fig1"\n[grid]\nseed = {range = [0, 4], step = 2}', "a generated axis"),
    (
        'experiment = "hayou-fig1"\n[grid]\nsamples = {logspace = [0, 100, 3]}',
        "logspace needs start > 0",
    ),
    ('experiment = "hayou-fig1"\n[grid]\nsamples = 2000', "a fixed value goes in [base]"),
    (
        'experiment = "hayou-fig1"\n[zip]\nsamples = [1000, 2000]\nx = [1.0]',
        "[zip] fields must have the same length: samples has 2, x has 1",
    ),
    (
        'experiment = "hayou-fig1"\nseeds = 2\n[grid]\nseed = [0, 1]',
        "field 'seed' is set twice, in [grid] and seeds",
    ),
    (
        'experiment = "hayou-fig1"\n[grid]\nsamples = [1000, 50, 20]',
        "2 of 3 points are invalid",
    ),
    (
        'experiment = "hayou-fig1"\n[grid]\nsamples = [1000, 50, 20]',
        "first: point 2 (samples=50): samples: samples must be an integer >= 100, got 50",
    ),
    (
        'experiment = "hayou-fig1"\n[grid]\ndepths = [5, 50]',
        "an axis over a tuple field is a list of tuples",
    ),
    ('experiment = "hayou-fig1"\n[grid]\nx = ["a"]', "x: Input should be a valid number"),
    ('experiment = "hayou-fig1"\nscale = "huge"', "scale must be one of fast, full, smoke"),
    ('experiment = "hayou-fig1"\nseeds = 0', "seeds must be >= 1"),
    ('experiment = "hayou-fig1"\ndevice = "tpu"', "device must be 'cpu' or 'cuda'"),
    ('experiment = "hayou-fig1"\ndevice = "cuda:1"', "the executor picks the GPU of each point"),
    ('experiment = "hayou-fig1"\nslurm = 3', "[slurm] must be a table"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_sweep_files_give_one_clear_message(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_sweep_file_on_the_command_line_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('experiment = "hayou-fig1"\n[grid]\nsamples = [50]')
    result = CliRunner().invoke(app, ["sweep", str(path), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "samples must be an integer >= 100, got 50" in lines[0]
    assert not (tmp_path / "s").exists()
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_slurm_resources_are_one_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "hayou-fig1"\nscale = "smoke"\n[slurm]\ntime = "soon"')
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--executor", "slurm", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2
    assert "[slurm] time: time must be minutes or HH:MM:SS" in result.output
    path.write_text('experiment = "hayou-fig1"\nscale = "smoke"\n[slurm]\npartitoin = "x"')
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--executor", "slurm", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "partitoin: unknown field" in result.output


@pytest.mark.parametrize(
    "value, minutes",
    [(30, 30), ("45", 45), ("10:30", 11), ("01:00:00", 60), ("1-00:00:00", 1440), ("2-3", 51 * 60)],
)
def test_slurm_time_limits(value, minutes):
    assert SlurmResources(time=value).minutes == minutes


def test_the_documented_sweep_file_is_valid():
    text = (EXAMPLES.parents[1] / "docs" / "sweeps.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    sweep = parse_sweep(tomllib.loads(block))
    assert len(sweep) == 24 and sweep.axes == ("samples", "x", "level", "seed")
    assert {p.spec.samples for p in sweep.points} == {2000, 6325, 20000}
    assert {(p.spec.x, p.spec.level) for p in sweep.points} == {(1.0, 1e-3), (0.5, 1e-4)}
    assert sweep.name == "fig1-seeds" and sweep.slurm["array_parallelism"] == 8


@pytest.mark.parametrize(
    "slurm, flags, word",
    [
        ('time = "half an hour"', ["--executor", "slurm"], "time"),
        ("array_parallelism = -1", ["--executor", "slurm"], "array_parallelism"),
        ("", ["--workers", "-1"], "--workers"),
    ],
)
def test_dry_run_checks_the_executor_options_too(tmp_path, slurm, flags, word):
    """A dry run that passes must not be followed by a real run that fails on its options."""
    path = tmp_path / "sweep.toml"
    path.write_text(f'experiment = "hayou-fig1"\nscale = "smoke"\n[slurm]\n{slurm}\n')
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--dry-run", "--store", str(tmp_path / "s"), *flags]
    )
    assert result.exit_code == 2 and word in result.output, result.output


def test_a_suite_named_as_a_sweep_experiment_is_explained():
    with pytest.raises(ValueError, match="'hayou' is a suite") as error:
        parse_sweep({"experiment": "hayou"})
    assert "or a suite" not in str(error.value)


def test_set_with_an_unknown_or_bad_field_is_explained(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["reproduce", "hayou-fig1", "--set", "sample=100", "-q"])
    assert result.exit_code == 2 and "did you mean 'samples'?" in result.output
    result = runner.invoke(app, ["reproduce", "hayou-fig1", "--set", "samples=abc", "-q"])
    assert result.exit_code == 2 and "samples:" in result.output and '"abc"' in result.output


def test_seed_axis_beside_a_seeds_field_gets_a_note(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "chizat-width"\nscale = "smoke"\nseeds = 2\n')
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--dry-run", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 0 and "goes in [base]" in result.output, result.output
