"""``deeplimit sample resnet|sde``: simulate and write a result file with provenance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .common import (
    OUT_KEPT_WHOLE,
    QuickHelpGroup,
    check_output_file,
    console,
    guarded,
    parse_dtype,
    parse_record,
    parse_vectors,
    progress_bar,
)

if TYPE_CHECKING:  # the library loads when a command runs, not for --help
    import torch
    import xarray as xr

sample_app = typer.Typer(
    help="Simulate random ResNets (Eq. 1) or their infinite-depth SDE and save the paths.\n\n"
    "**Example**: `deeplimit sample resnet --width 3 --depth 100 --activation relu --samples "
    "10000 --x 1,0.5 --out resnet.nc`; `deeplimit sample sde --width 1 --activation linear "
    "--steps 1000 --samples 10000 --y0 1 --out sde.nc`.",
    cls=QuickHelpGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _command(name: str, epilog: str) -> Any:
    def register(function: Any) -> Any:
        sample_app.command(name, epilog=epilog)(guarded(function, stopped=OUT_KEPT_WHOLE))
        return function

    return register


WIDTH = typer.Option(..., "--width", "-n", help="Width n of the network (>= 1).")
ACTIVATION = typer.Option(
    "relu",
    "--activation",
    "-a",
    help="relu, tanh, gelu, silu, linear:a=1, leaky:alpha=1,beta=0.5, softplus_m:m=10, "
    "ou:alpha=1,beta=1,sigma=1.",
)
SAMPLES = typer.Option(10_000, "--samples", "-s", help="Number of independent networks.")
Y0 = typer.Option(
    None, "--y0", help="Initial state Y_0 as comma-separated numbers; repeat for several inputs."
)
X = typer.Option(
    None,
    "--x",
    help="Input x (Y_0 = W_in x) as comma-separated numbers; repeat for several inputs.",
)
SEED = typer.Option(0, "--seed", help="Random seed (same seed, same numbers on the same device).")
DEVICE = typer.Option("cpu", "--device", help="cpu or cuda[:index].")
DTYPE = typer.Option("float64", "--dtype", help="float64 or float32.")
OUT = typer.Option(..., "--out", "-o", help="Result file to write (netCDF, .nc).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _dataset(
    paths: torch.Tensor, axis_name: str, axis_values: list[Any] | None, inputs: bool
) -> xr.Dataset:
    import xarray as xr

    dims = ["sample"]
    coords: dict[str, Any] = {}
    if axis_values is not None:
        dims.append(axis_name)
        coords[axis_name] = axis_values
    if inputs:
        dims.append("input")
    dims.append("coordinate")
    return xr.Dataset({"Y": (tuple(dims), paths.detach().cpu().numpy())}, coords=coords)


def _axis(record: Any, full: list[Any]) -> list[Any] | None:
    if record == "last" or isinstance(record, (int, float)):
        return None
    if record == "all":
        return full
    return list(record)


def _write(
    dataset: xr.Dataset, out: Path, config: dict[str, Any], seed: int, device: str, wall: float
) -> None:
    import numpy as np

    from ..provenance import provenance, provenance_line
    from ..results import save_result

    record = provenance(config, seed=seed, device=device, wall_time_s=wall)
    dataset.attrs["description"] = config["description"]
    save_result(dataset, out, record)
    y = dataset["Y"].values
    console.print(f"wrote {out}  Y{tuple(y.shape)} dims={tuple(dataset['Y'].dims)}")
    last = np.linalg.norm(y, axis=-1).reshape(y.shape[0], -1)[:, -1]
    console.print(f"|Y| (last recorded): mean {last.mean():.4g}, median {np.median(last):.4g}")
    console.print(f"[dim]{provenance_line(record)}[/dim]")


_DESCRIPTIONS = {
    "resnet": "random ResNet at initialization (Hayou Eq. 1)",
    "sde": "infinite-depth SDE (Hayou Eq. 4), Euler-Maruyama",
}


def _sample_and_write(
    kind: str,
    sizes: dict[str, int],
    activation: str,
    samples: int,
    y0: list[str] | None,
    x: list[str] | None,
    record: str,
    seed: int,
    device: str,
    dtype: str,
    out: Path,
    quiet: bool,
    method: str | None = None,
) -> None:
    """``sample resnet`` (``sizes``: width, depth) or ``sample sde`` (width, steps): check the
    options, simulate with a progress bar, write the paths with their provenance."""
    from ..activations import parse_activation
    from ..initialization import sample_resnet, sample_sde

    check_output_file("--out", out)
    dtype = parse_dtype(dtype)
    y0_value, x_value = parse_vectors("--y0", y0), parse_vectors("--x", x)
    record_value = parse_record(record)
    width, steps = sizes["width"], sizes.get("depth", sizes.get("steps"))
    if kind == "sde":  # times, not layers
        if isinstance(record_value, int) and not isinstance(record_value, bool):
            record_value = float(record_value)
        if isinstance(record_value, list):
            record_value = [float(v) for v in record_value]
    from ..provenance import git_commit

    git_commit()  # the commit of the code that computes the result, read at its start
    start = time.perf_counter()
    with progress_bar("sampling" if kind == "resnet" else "solving", not quiet) as callback:
        common = dict(samples=samples, y0=y0_value, x=x_value, record=record_value, seed=seed)
        common |= dict(device=device, dtype=dtype, progress=callback)
        if kind == "resnet":
            paths = sample_resnet(width, steps, activation, method=method, **common)
        else:
            paths = sample_sde(width, activation, steps=steps, **common)
    wall = time.perf_counter() - start
    several = (y0_value if y0_value is not None else x_value).ndim == 2
    grid = list(range(steps + 1)) if kind == "resnet" else [j / steps for j in range(steps + 1)]
    axis = _axis(record_value, grid)
    dataset = _dataset(paths, "layer" if kind == "resnet" else "time", axis, several)
    config = {
        "description": _DESCRIPTIONS[kind],
        "command": f"sample {kind}",
        **sizes,
        "activation": parse_activation(activation).spec,
        "samples": samples,
        "y0": None if y0_value is None else y0_value.tolist(),
        "x": None if x_value is None else x_value.tolist(),
        **({"method": method} if method is not None else {}),
        "record": record_value,
        "dtype": dtype,
    }
    _write(dataset, out, config, seed, device, wall)


@_command(
    name="resnet",
    epilog="**Example**: `deeplimit sample resnet --width 3 --depth 100 --activation relu "
    "--samples 10000 --x 1,0.5 --record 0,50,100 --out resnet.nc`",
)
def resnet_command(
    width: int = WIDTH,
    depth: int = typer.Option(..., "--depth", "-L", help="Depth L (>= 1)."),
    activation: str = ACTIVATION,
    samples: int = SAMPLES,
    y0: list[str] | None = Y0,
    x: list[str] | None = X,
    method: str = typer.Option(
        "law",
        "--method",
        help="law (exact in law, fast), weights (explicit W_l, reference) or fused (the law "
        "sampler compiled by torch.compile; opt-in, same law, other numbers).",
    ),
    record: str = typer.Option(
        "last", "--record", help="last, all, or comma-separated layers (e.g. 0,50,100)."
    ),
    seed: int = SEED,
    device: str = DEVICE,
    dtype: str = DTYPE,
    out: Path = OUT,
    quiet: bool = QUIET,
) -> None:
    """Sample random ResNets Y_l = Y_{l-1} + L^(-1/2) W_l phi(Y_{l-1}) (Hayou Eq. 1)."""
    _sample_and_write(
        "resnet", {"width": width, "depth": depth}, activation, samples, y0, x, record, seed,
        device, dtype, out, quiet, method=method,
    )  # fmt: skip


@_command(
    name="sde",
    epilog="**Example**: `deeplimit sample sde --width 1 --activation linear --steps 1000 "
    "--samples 10000 --y0 1 --record 0.5,1 --out sde.nc`",
)
def sde_command(
    width: int = WIDTH,
    steps: int = typer.Option(
        1000, "--steps", help="Euler-Maruyama steps on [0, 1] (dt = 1/steps)."
    ),
    activation: str = ACTIVATION,
    samples: int = SAMPLES,
    y0: list[str] | None = Y0,
    x: list[str] | None = X,
    record: str = typer.Option(
        "last",
        "--record",
        help="last, all, or comma-separated times on the grid j/steps (e.g. 0.5,1).",
    ),
    seed: int = SEED,
    device: str = DEVICE,
    dtype: str = DTYPE,
    out: Path = OUT,
    quiet: bool = QUIET,
) -> None:
    """Solve the infinite-depth SDE dX_t = n^(-1/2) |phi(X_t)| dB_t on [0, 1] (Hayou Eq. 4)."""
    _sample_and_write(
        "sde", {"width": width, "steps": steps}, activation, samples, y0, x, record, seed,
        device, dtype, out, quiet,
    )  # fmt: skip
