"""Layers only call down (docs/design.md): checked on the import statements of the source."""

import ast
from pathlib import Path

import deeplimit.experiments.base as base
from deeplimit.tasks import Task

SRC = Path(__file__).resolve().parents[1] / "src" / "deeplimit"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import of ``path``, relative ones made absolute."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_name = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base_name}.{node.module}" if node.module else base_name
            else:
                name = node.module or ""
            found.append((name, id(node) in top))
    return found


def test_the_runner_knows_nothing_of_experiments():
    for module in ("runner.py", "store.py", "executors.py", "tasks.py", "checkpoints.py"):
        names = [name for name, _ in _imports(SRC / module)]
        assert not [n for n in names if n.startswith("deeplimit.experiments")], module


def test_maths_packages_import_no_file_formats_or_upper_layers_at_module_level():
    heavy = ("xarray", "pandas", "matplotlib", "h5py", "netCDF4")
    upper = ("deeplimit.experiments", "deeplimit.runner", "deeplimit.store", "deeplimit.cli")
    for package in ("initialization", "training"):
        for path in sorted((SRC / package).glob("*.py")):
            for name, at_top in _imports(path):
                assert not name.startswith(upper), (path.name, name)
                if at_top:
                    assert not name.startswith(heavy), (path.name, name)


def test_an_experiment_is_a_task_the_runner_can_schedule():
    from deeplimit.experiments.registry import get_experiment

    experiment = get_experiment("hayou-fig1")
    assert isinstance(experiment, Task)
    assert isinstance(base.Experiment(), Task) or hasattr(base.Experiment, "divergence")
