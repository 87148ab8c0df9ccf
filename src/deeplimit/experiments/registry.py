"""The experiments deeplimit can reproduce, by name, and the suites that group them.

Every module of ``deeplimit.experiments`` that defines ``Experiment`` subclasses with a
``name`` is found automatically; a subclass's ``suite`` (``"hayou"``, ``"chizat"``) and
``order`` place it in a report. ``deeplimit reproduce NAME`` accepts an experiment or a suite.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import lru_cache

from .base import Experiment

__all__ = ["experiment_names", "get_experiment", "suite_members", "suite_names"]

_SKIP = {"base", "registry", "plotting"}


@lru_cache(maxsize=1)
def _experiments() -> dict[str, Experiment]:
    package = importlib.import_module(__package__)
    found: dict[str, Experiment] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name in _SKIP or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Experiment)
                and cls.__module__ == module.__name__
                and getattr(cls, "name", None)
            ):
                if cls.name in found:
                    raise RuntimeError(f"two experiments are named {cls.name!r}")
                found[cls.name] = cls()
    return dict(sorted(found.items(), key=lambda item: (item[1].suite, item[1].order, item[0])))


def experiment_names() -> list[str]:
    return list(_experiments())


def suite_names() -> list[str]:
    return sorted({e.suite for e in _experiments().values() if e.suite})


def suite_members(suite: str) -> list[Experiment]:
    """The experiments of ``suite`` in report order."""
    members = [e for e in _experiments().values() if e.suite == suite]
    if not members:
        raise ValueError(f"suite must be one of {', '.join(suite_names())}, got {suite!r}")
    return members


def get_experiment(name: str) -> Experiment:
    experiments = _experiments()
    if name in suite_names():
        raise ValueError(
            f"{name!r} is a suite (a group of experiments: `deeplimit reproduce {name}` runs them "
            f"all), not one experiment; experiment must be one of {', '.join(experiments)}"
        )
    if name not in experiments:
        raise ValueError(
            f"experiment must be one of {', '.join(experiments)} (`deeplimit reproduce` also "
            f"takes a suite: {', '.join(suite_names())}), got {name!r}"
        )
    return experiments[name]
