"""Lazy public names in the scientific-Python style (SPEC 1, module-level ``__getattr__``).

A package lists what it exports and the module each name lives in; the module is imported on
first use, so ``import deeplimit`` costs milliseconds and torch, SciPy and xarray load when a
name that needs them is first touched. In a package's ``__init__``::

    __getattr__, __dir__, __all__ = attach(
        __name__,
        modules={"stats": ".stats"},  # public name -> a module exported as such
        names={".activations": ["Activation", "parse_activation"]},  # module -> its names
    )
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["attach"]


class _Package(ModuleType):
    """A package whose exported name shadows a submodule of the same name (``training.train``
    the function, ``training/train.py`` the module): importing that submodule must not rebind
    the name to the module, as an eager ``from .train import train`` would not."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, ModuleType)
            and name in self.__dict__.get("_shadowed", ())
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def attach(
    package: str, modules: dict[str, str] | None = None, names: dict[str, list[str]] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the package ``package`` (its ``__name__``)."""
    where = {name: (module, False) for name, module in (modules or {}).items()}
    for module, exported in (names or {}).items():
        where.update({name: (module, True) for name in exported})
    shadowed = {name for name, (module, attr) in where.items() if attr and module == f".{name}"}
    namespace = sys.modules[package]
    if shadowed:
        namespace.__class__ = _Package
        namespace._shadowed = frozenset(shadowed)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, attr = where[name]
        module = importlib.import_module(module_name, package)
        value = getattr(module, name) if attr else module
        setattr(namespace, name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(namespace)) | set(where))

    return __getattr__, __dir__, sorted(where)
