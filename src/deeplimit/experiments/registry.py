"""The experiments deeplimit can reproduce, by name (``deeplimit reproduce NAME``)."""

from __future__ import annotations

from .base import Experiment
from .hayou_fig1 import HayouFig1
from .hayou_fig3 import HayouFig3

__all__ = ["experiment_names", "get_experiment"]

_EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment for experiment in (HayouFig1(), HayouFig3())
}


def experiment_names() -> list[str]:
    return list(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    if name not in _EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(experiment_names())}, got {name!r}")
    return _EXPERIMENTS[name]
