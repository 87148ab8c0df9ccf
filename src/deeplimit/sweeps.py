"""Sweep files: an experiment and a grid over its spec fields, expanded into validated points.

A sweep file is TOML::

    experiment = "hayou-fig1"        # a registered experiment, or "package.module:Class"
    scale = "fast"                   # the base spec: fast (default) | full | smoke
    device = "cpu"                   # cpu | cuda (or --device); not a grid axis
    seeds = 4                        # shorthand for a seed axis: 0, 1, 2, 3 (or a list)

    [base]                           # fixed fields, applied to every point
    level = 1e-3

    [grid]                           # product axes: every combination
    samples = {logspace = [1000, 100000, 5], integer = true}
    depths = [[5, 50], [5, 500]]     # a tuple-valued field: an axis is a list of tuples

    [zip]                            # zipped axes: same length, varied together
    x = [1.0, 2.0]                   # (several groups: [[zip]] tables)
    level = [1e-3, 1e-4]

    [slurm]                          # optional resources for --executor slurm
    partition = "debug"
    time = "00:10:00"
    array_parallelism = 4

Generated axes: ``{range = [start, stop]}`` or ``[start, stop, step]`` (integers, stop
excluded, like Python's ``range``), ``{linspace = [start, stop, num]}`` and
``{logspace = [start, stop, num]}`` (both ends included); ``integer = true`` rounds and drops
repeated values. Every point is validated into the experiment's typed spec before anything runs;
an error names the field, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from .experiments import Experiment, ExperimentSpec, get_experiment
from .experiments.base import SCALES
from .store import point_key

__all__ = [
    "Point",
    "Sweep",
    "SweepError",
    "explain_error",
    "load_sweep",
    "parse_sweep",
    "resolve_experiment",
    "spec_at",
]

_TOP_KEYS = (
    "experiment",
    "scale",
    "device",
    "seeds",
    "base",
    "grid",
    "zip",
    "slurm",
    "name",
    "description",
)
_GENERATORS = ("range", "linspace", "logspace")


class SweepError(ValueError):
    """A sweep file or sweep table that cannot be turned into valid points."""


@lru_cache(maxsize=64)
def resolve_experiment(ref: str) -> Experiment:
    """A registered experiment by name, or ``"package.module:Class"`` for one defined elsewhere
    (the module must be importable wherever the sweep's points run)."""
    if ":" not in ref:
        return get_experiment(ref)
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SweepError(f"experiment {ref!r}: cannot import {module_name!r} ({error})") from None
    found = getattr(module, attribute, None)
    if isinstance(found, type) and issubclass(found, Experiment):
        found = found()
    if not isinstance(found, Experiment):
        raise SweepError(f"experiment {ref!r}: {attribute!r} is not an Experiment of {module_name}")
    return found


@dataclass(frozen=True)
class Point:
    """One validated spec of a sweep, with its store key."""

    experiment: str  # how workers find the experiment: a name or "module:Class"
    name: str  # the experiment's name (the store folder)
    spec: ExperimentSpec
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)  # the values swept to get here

    @classmethod
    def of(
        cls, experiment: str, spec: ExperimentSpec, params: Mapping[str, Any] | None = None
    ) -> Point:
        name = resolve_experiment(experiment).name
        return cls(experiment, name, spec, point_key(name, spec), dict(params or {}))

    @property
    def spec_json(self) -> str:
        return self.spec.model_dump_json()

    def label(self) -> str:
        """``samples=2000, seed=3`` (the swept values), or the key for a single point."""
        return ", ".join(f"{k}={_show(v)}" for k, v in self.params.items()) or self.key


@dataclass(frozen=True)
class Sweep:
    """A sweep file, expanded: the experiment, its validated points, and run options."""

    experiment: str
    scale: str
    points: tuple[Point, ...]
    axes: tuple[str, ...]
    duplicates: int = 0
    device: str = "cpu"
    slurm: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    source: str = "<sweep>"

    def __len__(self) -> int:
        return len(self.points)


def load_sweep(path: Path | str, *, device: str | None = None) -> Sweep:
    """Read and expand a sweep file (TOML); ``device`` overrides the file's."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"sweep file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SweepError(f"sweep file {str(path)!r} cannot be read ({error})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"{path}: not valid TOML: {error}") from None
    return parse_sweep(table, source=str(path), device=device, default_name=path.stem)


def parse_sweep(
    table: Mapping[str, Any],
    *,
    source: str = "<sweep>",
    device: str | None = None,
    default_name: str = "",
) -> Sweep:
    """Expand a sweep table (the parsed TOML) into validated points."""
    unknown = [key for key in table if key not in _TOP_KEYS]
    if unknown:
        raise SweepError(
            f"{source}: unknown key {unknown[0]!r}{_suggest(unknown[0], _TOP_KEYS)}; allowed "
            f"keys: {', '.join(_TOP_KEYS)}"
        )
    ref = table.get("experiment")
    if not isinstance(ref, str) or not ref:
        raise SweepError(
            f"{source}: 'experiment' must name an experiment (e.g. experiment = \"hayou-fig1\"), "
            f"got {ref!r}"
        )
    try:
        experiment = resolve_experiment(ref)
    except ValueError as error:
        raise SweepError(f"{source}: {error}") from None
    scale = table.get("scale", "fast")
    if scale not in SCALES:
        raise SweepError(f"{source}: scale must be one of {', '.join(SCALES)}, got {scale!r}")
    device = device if device is not None else table.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise SweepError(
            f"{source}: device must be 'cpu' or 'cuda' (the executor picks the GPU of each "
            f"point), got {device!r}"
        )
    slurm = table.get("slurm", {})
    if not isinstance(slurm, dict):
        raise SweepError(f"{source}: [slurm] must be a table of resources, got {slurm!r}")

    fields = tuple(experiment.Spec.model_fields)
    base = _table(source, table, "base")
    for name in base:
        _check_field(source, "[base]", name, fields, experiment.name)
    axes = _axes(source, table, fields, experiment.name)
    placed: dict[str, str] = {name: "[base]" for name in base}
    for section, group in axes:
        for name in group:
            if name in placed:
                raise SweepError(
                    f"{source}: field {name!r} is set twice, in {placed[name]} and {section}"
                )
            placed[name] = section

    _check_grid_size(source, axes)
    combinations = _combinations(axes)
    points, invalid, first_error = _validate(experiment, ref, scale, device, base, combinations)
    if invalid:
        verb = "is" if invalid == 1 else "are"
        raise SweepError(
            f"{source}: {invalid} of {len(combinations)} points {verb} invalid; first: "
            f"{first_error}"
        )
    unique: dict[str, Point] = {}
    for point in points:
        unique.setdefault(point.key, point)
    return Sweep(
        experiment=ref,
        scale=scale,
        points=tuple(unique.values()),
        axes=tuple(name for _, group in axes for name in group),
        duplicates=len(points) - len(unique),
        device=device,
        slurm=dict(slurm),
        name=str(table.get("name") or default_name or experiment.name),
        source=source,
    )


# ----------------------------------------------------------------------------- axes


def _table(source: str, table: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, dict):
        raise SweepError(f"{source}: [{name}] must be a table of field = value, got {value!r}")
    return dict(value)


def _check_field(source: str, section: str, name: str, fields: Sequence[str], owner: str) -> None:
    if name == "device":
        raise SweepError(
            f"{source}: {section} device: the device is not a spec axis; set it with the "
            'top-level key device = "cuda" or with --device'
        )
    if name not in fields:
        allowed = ", ".join(f for f in fields if f != "device")
        raise SweepError(
            f"{source}: {section} unknown field {name!r} for {owner}{_suggest(name, fields)}; "
            f"fields: {allowed}"
        )


def _axes(
    source: str, table: Mapping[str, Any], fields: Sequence[str], owner: str
) -> list[tuple[str, dict[str, list[Any]]]]:
    """``[(section, {field: values})]``: each entry is one product axis (zip groups hold
    several fields varied together)."""
    axes: list[tuple[str, dict[str, list[Any]]]] = []
    for name, raw in _table(source, table, "grid").items():
        _check_field(source, "[grid]", name, fields, owner)
        axes.append(("[grid]", {name: _axis_values(source, f"[grid] {name}", raw)}))
    zipped = table.get("zip", [])
    groups = [zipped] if isinstance(zipped, dict) else zipped
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise SweepError(f"{source}: [zip] must be a table (or [[zip]] tables), got {zipped!r}")
    for number, group in enumerate(groups, 1):
        section = "[zip]" if len(groups) == 1 else f"[[zip]] #{number}"
        if not group:
            raise SweepError(f"{source}: {section} is empty: give at least one field")
        values = {}
        for name, raw in group.items():
            _check_field(source, section, name, fields, owner)
            values[name] = _axis_values(source, f"{section} {name}", raw)
        lengths = {name: len(v) for name, v in values.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
            raise SweepError(f"{source}: {section} fields must have the same length: {listed}")
        axes.append((section, values))
    if "seeds" in table:
        _check_field(source, "seeds", "seed", fields, owner)
        seeds = table["seeds"]
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise SweepError(
                    f"{source}: seeds must be >= 1 (seeds = 4: 0, 1, 2, 3), got {seeds}"
                )
            seeds = {"range": [0, seeds]}
        axes.append(("seeds", {"seed": _axis_values(source, "seeds", seeds)}))
    return axes


MAX_POINTS = 100_000
"""Points one sweep file may expand to (each is validated, hashed and stored on its own)."""


def _check_grid_size(source: str, axes: list[tuple[str, dict[str, list[Any]]]]) -> None:
    """Refuse a grid too large to expand, before expanding it."""
    lengths = [(", ".join(group), len(next(iter(group.values())))) for _, group in axes]
    total = math.prod(length for _, length in lengths)
    if total > MAX_POINTS:
        factors = " x ".join(f"{length} ({names})" for names, length in lengths)
        raise SweepError(
            f"{source}: the grid has {total} points ({factors}); a sweep file may have at "
            f"most {MAX_POINTS}: split it into several files"
        )


def _axis_values(source: str, where: str, raw: Any) -> list[Any]:
    if isinstance(raw, dict):
        values = _generated(source, where, raw)
    elif isinstance(raw, list):
        values = raw
    else:
        raise SweepError(
            f"{source}: {where}: an axis is a list of values or a table such as "
            f"{{range = [0, 4]}}, got {_show(raw)}; a fixed value goes in [base]"
        )
    if not values:
        raise SweepError(f"{source}: {where} has no values: the grid would be empty")
    return values


def _generated(source: str, where: str, raw: Mapping[str, Any]) -> list[Any]:
    kinds = [k for k in _GENERATORS if k in raw]
    extra = set(raw) - set(_GENERATORS) - {"integer"}
    if len(kinds) != 1 or extra:
        raise SweepError(
            f"{source}: {where}: a generated axis is one of {{range = [start, stop, step]}}, "
            f"{{linspace = [start, stop, num]}}, {{logspace = [start, stop, num]}} (with "
            f"optional integer = true), got {_show(dict(raw))}"
        )
    kind = kinds[0]
    args, integer = raw[kind], raw.get("integer", kind == "range")
    if not isinstance(integer, bool):
        raise SweepError(f"{source}: {where}: integer must be true or false, got {integer!r}")
    numbers = isinstance(args, list) and all(
        isinstance(a, int | float) and not isinstance(a, bool) for a in args
    )
    if kind == "range":
        if not numbers or len(args) not in (2, 3) or not all(isinstance(a, int) for a in args):
            raise SweepError(
                f"{source}: {where}: range takes [start, stop] or [start, stop, step] integers, "
                f"got {_show(args)}"
            )
        if len(args) == 3 and args[2] == 0:
            raise SweepError(f"{source}: {where}: the range step must not be 0")
        _check_axis_length(source, where, len(range(*args)))
        return list(range(*args))
    if not numbers or len(args) != 3 or not isinstance(args[2], int) or args[2] < 1:
        raise SweepError(
            f"{source}: {where}: {kind} takes [start, stop, num] with an integer num >= 1, "
            f"got {_show(args)}"
        )
    start, stop, num = args
    _check_axis_length(source, where, num)
    if kind == "logspace":
        if start <= 0 or stop <= 0:
            raise SweepError(
                f"{source}: {where}: logspace needs start > 0 and stop > 0, got {_show(args)}"
            )
        grid = np.geomspace(start, stop, num)
    else:
        grid = np.linspace(start, stop, num)
    if not integer:
        return [float(v) for v in grid]
    # rounding a log grid repeats small values (1, 1, 2, 2, 3, ...): keep each once
    return list(dict.fromkeys(int(v) for v in np.rint(grid)))


def _check_axis_length(source: str, where: str, count: int) -> None:
    if count > MAX_POINTS:
        raise SweepError(
            f"{source}: {where} has {count} values; a sweep file may have at most "
            f"{MAX_POINTS} points: split it into several files"
        )


def _combinations(axes: list[tuple[str, dict[str, list[Any]]]]) -> list[dict[str, Any]]:
    columns = []
    for _, group in axes:
        names = list(group)
        columns.append([dict(zip(names, row)) for row in zip(*group.values())])
    return [
        {k: v for part in combo for k, v in part.items()} for combo in itertools.product(*columns)
    ]


# ----------------------------------------------------------------------------- validation


def spec_at(experiment: Experiment, scale: str, overrides: Mapping[str, Any]) -> ExperimentSpec:
    """``experiment.spec_for(scale, **overrides)``, also when the spec has a field ``scale``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    fields = list(experiment.Spec.model_fields)
    unknown = [name for name in overrides if name not in fields]
    if unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r} for {experiment.name}{_suggest(unknown[0], fields)}; "
            f"fields: {', '.join(fields)}"
        )
    build = {"fast": experiment.fast, "full": experiment.full, "smoke": experiment.smoke}[scale]
    try:
        return build(**overrides)
    except ValidationError as error:
        raise ValueError(explain_error(error)) from None


def _validate(
    experiment: Experiment,
    ref: str,
    scale: str,
    device: str,
    base: Mapping[str, Any],
    combinations: list[dict[str, Any]],
) -> tuple[list[Point], int, str]:
    """Validate every combination; ``(points, number invalid, first error)``.

    A CUDA device is only checked for being available where the points run (a SLURM login
    node has no GPU): a spec checks its device's form only."""
    points, invalid, first = [], 0, ""
    for number, params in enumerate(combinations, 1):
        overrides = {**base, **params, "device": device}
        try:
            spec = spec_at(experiment, scale, overrides)
        except (ValidationError, ValueError) as error:
            invalid += 1
            if not first:
                label = ", ".join(f"{k}={_show(v)}" for k, v in params.items())
                where = f"point {number}" + (f" ({label})" if label else "")
                first = f"{where}: {explain_error(error)}"
            continue
        points.append(Point(ref, experiment.name, spec, point_key(experiment.name, spec), params))
    return points, invalid, first


def explain_error(error: Exception) -> str:
    """A pydantic ValidationError (or a ValueError) as one line naming field, value and rule."""
    if not isinstance(error, ValidationError):
        return " ".join(str(error).split())
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "value"
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        elif where.split(".")[0] not in message:
            message = f"{message}, got {_show(item.get('input'))}"
        if item.get("type") in ("tuple_type", "list_type"):
            message += (
                " (an axis over a tuple field is a list of tuples, e.g. depths = [[5, 50], "
                "[5, 500]])"
            )
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
