"""Fast start: ``import deeplimit`` and ``deeplimit [CMD] --help`` load none of the heavy
libraries (names load on first use), the lazy names are the real objects, and the static
experiment registry that ``reproduce --help`` reads matches the experiment classes."""

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import deeplimit
import deeplimit.experiments
import deeplimit.initialization
import deeplimit.training
from deeplimit.experiments.base import Experiment
from deeplimit.experiments.registry import EXPERIMENTS, experiment_names, suite_names

HEAVY = ("torch", "scipy", "xarray", "matplotlib", "pandas", "pyarrow", "h5py")
COMMANDS = [
    [],
    ["sample"],
    ["sample", "resnet"],
    ["sample", "sde"],
    ["law"],
    ["reproduce"],
    ["train"],
    ["limit"],
    ["sweep"],
    ["results"],
    ["plot"],
]


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = f"sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))"


def test_import_deeplimit_loads_no_heavy_library():
    loaded = run_python(f"import json, sys\nimport deeplimit\nprint(json.dumps({LOADED}))")
    assert loaded == []


def test_help_of_every_command_loads_no_heavy_library():
    code = f"""
import contextlib, io, json, sys
from deeplimit.cli import app
texts = []
for args in {COMMANDS!r}:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            app([*args, "--help"], prog_name="deeplimit")
        except SystemExit as stop:
            assert stop.code == 0, (args, stop.code)
    texts.append(out.getvalue())
print(json.dumps({{"loaded": {LOADED}, "texts": texts}}))
"""
    result = run_python(code)
    assert result["loaded"] == []
    root, reproduce = result["texts"][0], result["texts"][COMMANDS.index(["reproduce"])]
    for command in ("sample", "law", "reproduce", "train", "limit", "sweep", "results", "plot"):
        assert command in root
    # reproduce --help lists the suites, and the experiments with their titles from the registry
    flat = " ".join(reproduce.split())
    for name in suite_names():
        assert name in flat
    for name, entry in EXPERIMENTS.items():
        assert f"{name}: {entry.title}" in flat


def test_first_use_loads_the_library():
    code = f"""import json, sys
import deeplimit
before = {LOADED}
law = deeplimit.laws.gbm_law(a=1.0, y0=1.0)
print(json.dumps({{"before": before, "after": {LOADED}, "median": float(law.median())}}))
"""
    result = run_python(code)
    assert result["before"] == []
    assert {"torch", "scipy"} <= set(result["after"])
    assert result["median"] == pytest.approx(float(deeplimit.laws.gbm_law(a=1.0, y0=1.0).median()))


@pytest.mark.parametrize(
    "package", [deeplimit, deeplimit.initialization, deeplimit.training, deeplimit.experiments]
)
def test_every_public_name_resolves_and_is_listed(package):
    assert package.__all__, package.__name__
    listing = dir(package)
    for name in package.__all__:
        assert name in listing
        value = getattr(package, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__.endswith(f".{name}")
        else:  # the object of the module that defines it, not a copy
            module = sys.modules[value.__module__]
            assert getattr(module, value.__name__) is value
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


def test_explicit_public_names():
    for name in [
        "sample_resnet",
        "sample_sde",
        "observe_resnet",
        "observe_sde",
        "collapse_probability",
        "gradient_norms",
        "meanfield_variance",
        "train_resnet",
        "mean_ode_limit",
        "limit_error",
        "laws",
        "stats",
        "Activation",
        "NumericalBlowupError",
    ]:
        assert name in deeplimit.__all__
    assert deeplimit.stats.ks_test is importlib.import_module("deeplimit.stats").ks_test
    assert deeplimit.laws is importlib.import_module("deeplimit.initialization.laws")


def test_a_submodule_import_does_not_hide_the_function_of_the_same_name():
    # deeplimit.training exports the function train; its module training/train.py is imported
    # (by training/limit.py) after the package: the name must stay the function
    code = """import json, types
import deeplimit.training.limit
import deeplimit.training as training
from deeplimit.training import train
print(json.dumps([callable(train), isinstance(train, types.ModuleType),
                  training.train is train, training.train.__module__]))
"""
    assert run_python(code) == [True, False, True, "deeplimit.training.train"]


def test_the_static_registry_matches_the_experiment_classes():
    package = deeplimit.experiments
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Experiment)
                and cls.__module__ == module.__name__
                and getattr(cls, "name", None)
            ):
                assert cls.name not in found, f"two experiments are named {cls.name!r}"
                found[cls.name] = (info.name, cls.suite, cls.title, cls.order)
    # every experiment class is registered, in its module, with its suite and title
    assert {name: entry[:3] for name, entry in found.items()} == {
        name: tuple(entry) for name, entry in EXPERIMENTS.items()
    }
    # the table is in report order: suite, then the class's order
    report_order = sorted(found, key=lambda name: (found[name][1], found[name][3], name))
    assert experiment_names() == report_order
    assert suite_names() == ["beyond", "chizat", "hayou"]
