"""What the runner needs of a unit of work, and nothing more (the layering of DESIGN.md).

The runner (:mod:`deeplimit.runner`) schedules *tasks*: it claims a point in the store, calls
``run``, asks the task for its statistics, claims and divergence, and writes what it gets. It
never looks inside. :class:`deeplimit.experiments.base.Experiment` is one implementation; a
sweep resolves a point's experiment reference to one (:func:`deeplimit.sweeps.resolve_experiment`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Progress", "Task"]

# progress(done, total): called as a unit of work advances
Progress = Callable[[int, int], None]


@runtime_checkable
class Task(Protocol):
    """A unit of work the runner can schedule, store and resume.

    ``name`` names its folder in the store; ``Spec`` validates a point's JSON spec (a pydantic
    model with ``seed`` and ``device``); ``run`` computes the result (an ``xarray.Dataset``,
    which the store writes); ``statistics``, ``claims`` and ``divergence`` read the result back:
    rows to save, objects with ``as_dict()``, and why the run diverged (``None`` when it did not).
    """

    name: str
    Spec: Any

    def run(self, spec: Any, progress: Progress | None = None) -> Any: ...

    def statistics(self, result: Any) -> list[dict[str, Any]]: ...

    def claims(self, result: Any) -> list[Any]: ...

    def divergence(self, result: Any) -> str | None: ...
