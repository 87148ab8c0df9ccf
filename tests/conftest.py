import os

import pytest
import torch

# two cores shared by the pytest-xdist workers (`make test` runs two), not two threads each
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


# the longest modules (most of it waiting on SLURM, subprocesses, Chromium, the smoke fixtures)
# run first: `make test` hands whole modules to its two workers in collection order
# (--dist loadscope --no-loadscope-reorder), and a long module started last would end alone
FIRST = (
    "test_slurm.py",
    "test_experiments_hayou.py",
    "test_runner.py",
    "test_claims_foundation.py",
    "test_store.py",
    "test_docs.py",
    "test_examples.py",
    "test_experiments_chizat.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: order within
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cuda_device():
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def _restore_mpmath_precision():
    """Tests that raise mpmath's global precision must not leak it into other tests."""
    import mpmath

    dps = mpmath.mp.dps
    yield
    mpmath.mp.dps = dps


# ------------------------------------------------------------------ the figure test
# tests/test_figures.py checks the smoke-scale figure of every registered experiment with
# style.figure_defects. The suite draws and saves those figures anyway (reproduce at smoke
# scale in the experiment, runner, report, store tests): a figure an experiment drew
# (Experiment.plot) at its default smoke spec is checked right after plotting.save_figure has
# drawn its PNG (so the check adds no drawing of its own), and the defects are written to a
# folder that the session's workers share. The figure test reads them there, and draws the
# figure itself only for an experiment the suite did not save (a run of that file alone).


class FigureChecks:
    """The checks of the session's smoke-scale figures, one JSON file per experiment."""

    def __init__(self, folder):
        self.folder = folder
        self.checked = set()  # experiments checked by this process

    def path(self, name):
        return self.folder / f"{name}.json"

    def done(self, name):
        """Whether ``name``'s figure was checked already (here or by another worker)."""
        return name in self.checked or self.path(name).exists()

    def record(self, experiment, figure, caption):
        """Check ``figure`` (drawn and saved by plotting.save_figure) and write its defects."""
        import json

        from deeplimit.experiments.style import figure_defects

        try:
            defects = figure_defects(figure, title=experiment.title, caption=caption, draw=False)
        except Exception as error:  # a bug of the check fails the figure test, not the caller
            defects = [f"figure_defects raised {type(error).__name__}: {error}"]
        temporary = self.folder / f".{experiment.name}.{os.getpid()}.json"
        temporary.write_text(json.dumps({"experiment": experiment.name, "defects": defects}))
        os.replace(temporary, self.path(experiment.name))
        self.checked.add(experiment.name)

    def defects(self, name, tmp_path):
        """The defects of ``name``'s smoke-scale figure: as the suite saved it, or drawn now."""
        import json

        from deeplimit.experiments import get_experiment
        from deeplimit.experiments.plotting import save_figure

        if not self.path(name).exists():
            experiment = get_experiment(name)
            dataset = experiment.run(experiment.smoke())
            figure = experiment.plot(dataset)
            save_figure(figure, tmp_path / name)  # checked and recorded by the hook
            if not self.path(name).exists():  # the hook is off
                self.record(experiment, figure, dataset.attrs.get("caption"))
        return json.loads(self.path(name).read_text())["defects"]


@pytest.fixture(scope="session", autouse=True)
def figure_checks(tmp_path_factory):
    """Check every smoke-scale experiment figure that the session saves (see above)."""
    import weakref

    import deeplimit.reproduce
    from deeplimit.experiments import plotting
    from deeplimit.experiments.base import Experiment
    from deeplimit.experiments.registry import EXPERIMENTS

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    folder = base / "figure-checks"
    folder.mkdir(exist_ok=True)
    checks = FigureChecks(folder)
    drawn = weakref.WeakKeyDictionary()
    smoke_specs = {}
    plot, save = Experiment.plot, plotting.save_figure

    def plot_and_remember(self, dataset):
        figure = plot(self, dataset)
        if self.name not in EXPERIMENTS or checks.done(self.name):
            return figure
        if self.name not in smoke_specs:
            smoke_specs[self.name] = self.smoke().canonical_json()
        if self.spec_from_dataset(dataset).canonical_json() == smoke_specs[self.name]:
            drawn[figure] = (self, dataset.attrs.get("caption"))
        return figure

    def save_and_check(figure, stem):
        paths = save(figure, stem)
        source = drawn.pop(figure, None)
        if source is not None and not checks.done(source[0].name):
            checks.record(source[0], figure, source[1])
        return paths

    if os.environ.get("DEEPLIMIT_FIGURE_CHECKS") == "0":  # to time the suite without them
        yield checks
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Experiment, "plot", plot_and_remember)
        patch.setattr(plotting, "save_figure", save_and_check)
        patch.setattr(deeplimit.reproduce, "save_figure", save_and_check)
        yield checks


class _FigureTestLast:
    """tests/test_figures.py runs last: by then the suite has saved (and checked) the figures."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        items.sort(key=lambda item: item.path.name == "test_figures.py")


def pytest_configure(config):
    config.pluginmanager.register(_FigureTestLast(), "figure-test-last")
