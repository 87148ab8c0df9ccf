"""``deeplimit train`` and ``deeplimit limit``: trained ResNets and their Mean ODE limit.

``train`` trains one configuration for several seeds (chizat.md §1.2) and writes every record
(outputs, ``h_L``, loss, unit movement, divergence) to a netCDF result with provenance; a run
whose loss becomes non-finite or explodes is stopped, its records are NaN from the next step,
the file is still written, and the command exits with status 3 naming the step. ``limit``
computes the Mean ODE limit (chizat.md §2.4) of the same configuration and, with
``--against RUN.nc``, the RMS error of a ``train`` result against it at every step.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import NumericalBlowupError
from ..training.defaults import (
    DEFAULT_ACTIVATION,
    DEFAULT_ALPHA,
    DEFAULT_DATA_SEED,
    DEFAULT_EXPLOSION_FACTOR,
    DEFAULT_LR,
    DEFAULT_STEPS,
)
from .common import check_output_file, console, parse_dtype

if TYPE_CHECKING:  # the library loads when a command runs, not for --help
    import torch
    import xarray as xr

    from ..training import LimitResult, TrainingProblem, TrainingResult

__all__ = ["TrainingBlowupError", "limit_command", "train_command"]


class TrainingBlowupError(NumericalBlowupError):
    """Some networks of a ``deeplimit train`` run diverged (exit status 3)."""

    def __init__(self, diverged: int, total: int, step: int, out: Path, worst: float) -> None:
        self.paths = diverged
        self.total = total
        self.first_layer = step
        FloatingPointError.__init__(
            self,
            f"{diverged} of {total} networks diverged (loss {worst:.3g}: non-finite or above the "
            f"explosion threshold), the first at GD step {step}; they were stopped there and "
            f"their later records are NaN in {out}; lower --lr or raise --alpha",
        )


DEPTH = typer.Option(..., "--depth", "-L", help="Depth L (number of residual blocks, >= 1).")
WIDTH = typer.Option(..., "--width", "-M", help="Hidden width M (units per block, >= 1).")
DIM = typer.Option(..., "--dim", "-D", help="Embedding dimension D (>= 1).")
ACTIVATION = typer.Option(
    DEFAULT_ACTIVATION,
    "--activation",
    "-a",
    help="sigma: tanh (the paper's), identity, relu, gelu, ...",
)
ALPHA = typer.Option(
    DEFAULT_ALPHA, "--alpha", help="Residual scale alpha/(LM); LR scales as 1/alpha^2."
)
LR = typer.Option(
    DEFAULT_LR,
    "--lr",
    help="eta in the raw learning rate eta L M D / alpha^2 (0.5 = authors' eta = 1).",
)
STEPS = typer.Option(
    DEFAULT_STEPS,
    "--steps",
    "-K",
    help="Full-batch gradient-descent steps K (>= 0; 0: the initialization).",
)
EMBEDDING_SEED = typer.Option(
    0, "--embedding-seed", help="Seed of the fixed maps W_in, W_out (coupled across D)."
)
DATA_SEED = typer.Option(
    DEFAULT_DATA_SEED,
    "--data-seed",
    help="Seed of the synthetic task (N=10, d_in=d_out=5, chizat.md §1.5).",
)
OUT = typer.Option(..., "--out", "-o", help="Result file to write (netCDF, .nc).")
BLOCK = typer.Option(
    "2lp",
    "--block",
    help="Residual block: 2lp (M units v sigma(<u,h>/D)) or attention (M causal attention heads "
    "per layer, on the synthetic sequence task).",
)
KEY_DIM = typer.Option(
    None, "--key-dim", help="attention: key-query dimension d_k of a head (default 4)."
)
TOKENS = typer.Option(
    None, "--tokens", help="attention: tokens T per sequence of the synthetic task (4)."
)


def _dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, parse_dtype(name))


def _training_dataset(result: Any, seeds: list[int]) -> xr.Dataset:
    import xarray as xr

    sample = ("sample", "token") if result.x.ndim == 3 else ("sample",)  # attention: sequences
    variables: dict[str, Any] = {
        "outputs": (("seed", "step", *sample, "output"), result.outputs.double().numpy()),
        "embeddings": (
            ("seed", "step", *sample, "coordinate"),
            result.embeddings.double().numpy(),
        ),
        "loss": (("seed", "step"), result.loss.double().numpy()),
        "diverged_at": (("seed",), result.diverged_at.numpy()),
        "x": ((*sample, "input"), result.x.numpy()),
        "y": ((*sample, "output"), result.y.numpy()),
        "w_in": (("coordinate", "input"), result.w_in.double().numpy()),
        "w_out": (("coordinate", "output"), result.w_out.double().numpy()),
    }
    for name, value in result.movement.items():
        variables[f"movement_{name}"] = (("seed", "step"), value.double().numpy())
    dataset = xr.Dataset(variables, coords={"seed": seeds, "step": list(range(result.steps + 1))})
    dataset["loss"].attrs["long_name"] = "R = mean over (N, T, d_out) of (f - y)^2"
    dataset["diverged_at"].attrs["long_name"] = "GD step at which the network diverged (-1: never)"
    return dataset


def train_command(
    depth: int = DEPTH,
    width: int = WIDTH,
    dim: int = DIM,
    activation: str = ACTIVATION,
    alpha: float = ALPHA,
    lr: float = LR,
    steps: int = STEPS,
    seeds: int = typer.Option(4, "--seeds", "-S", help="Number of independent networks."),
    seed: int = typer.Option(0, "--seed", help="Seed of the units U, V (network i uses index i)."),
    embedding_seed: int = EMBEDDING_SEED,
    data_seed: int = DATA_SEED,
    block: str = BLOCK,
    key_dim: int | None = KEY_DIM,
    tokens: int | None = TOKENS,
    antithetic: bool = typer.Option(
        False, "--antithetic", help="Units in pairs (u, v), (u, -v): zero branch at init."
    ),
    explosion_factor: float = typer.Option(
        DEFAULT_EXPLOSION_FACTOR,
        "--explosion-factor",
        help="A network diverges when its loss exceeds this times max(initial loss, mean y^2).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:index]."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    out: Path = OUT,
) -> None:
    """Train 2LP ResNets h_l = h_{l-1} + (alpha/(LM)) sum_j v_j sigma(<u_j, h_{l-1}>/D) by
    full-batch GD (chizat.md §1.2) and save outputs, h_L, loss and unit movement per step.

    A network whose loss becomes non-finite or explodes is stopped at that step (its later
    records are NaN); the file is still written and the command exits with status 3.

    `--block attention` trains M causal attention heads per layer instead (key-query dimension
    `--key-dim`), on the synthetic task with a token axis (N=10 sequences of `--tokens` tokens);
    the records then have a token axis.

    **Example**: `deeplimit train --depth 16 --width 256 --dim 32 --steps 10 --seeds 8
    --out run.nc`, then `deeplimit limit --dim 32 --activation tanh --steps 10
    --against run.nc --out limit.nc`; `deeplimit train -L 4 -M 16 -D 16 --block attention
    --key-dim 4 --out heads.nc`.
    """
    import torch

    from ..provenance import provenance, provenance_line
    from ..results import save_result
    from ..training import TrainingProblem

    check_output_file("--out", out)
    problem = TrainingProblem(
        dim,
        **_block_and_data(block, key_dim, tokens, activation, antithetic, data_seed),
        alpha=alpha,
        lr=lr,
        steps=steps,
        embedding_seed=embedding_seed,
        data_seed=data_seed,
        explosion_factor=explosion_factor,
    )
    from ..provenance import git_commit

    git_commit()  # the commit of the code that computes the result, read at its start
    start = time.perf_counter()
    result = problem.train(
        depth,
        width,
        seeds,
        seed=seed,
        device=device,
        dtype=_dtype(dtype),
        record_movement=True,
        on_divergence="ignore",
    )
    wall = time.perf_counter() - start
    data = problem.data
    seed_list = list(range(seeds))
    dataset = _training_dataset(result, seed_list)
    heads = problem.tokens is not None
    config = {
        "description": (
            "ResNets of causal attention heads trained by full-batch GD (training/attention.py)"
            if heads
            else "2LP ResNets trained by full-batch GD (chizat.md §1.2)"
        ),
        "command": "train",
        "depth": depth,
        "width": width,
        "dim": dim,
        "block": problem.block.spec,
        "activation": problem.block.activation.spec,
        "antithetic": antithetic,
        "alpha": alpha,
        "lr": lr,
        "raw_learning_rate": float(result.learning_rates["u"][0]),
        "residual_scale": float(result.residual_scale[0]),
        "steps": steps,
        "seeds": seeds,
        "embedding_seed": embedding_seed,
        "data": data.description,
        "data_seed": data_seed,
        "explosion_factor": explosion_factor,
        "dtype": dtype,
    }
    record = provenance(config, seed=seed, device=device, wall_time_s=wall)
    dataset.attrs["description"] = config["description"]
    save_result(dataset, out, record)
    loss = result.loss.double()
    console.print(
        f"wrote {out}  outputs{tuple(dataset['outputs'].shape)} "
        f"embeddings{tuple(dataset['embeddings'].shape)} dims={dataset['outputs'].dims}"
    )
    alive = ~result.diverged
    if bool(alive.any()):
        first_loss = float(loss[alive, 0].mean())
        last_loss = float(loss[alive, -1].mean())
        name = "preactivation" if "preactivation" in result.movement else "u"
        moved = float(result.movement[name][alive, -1].mean())
        console.print(
            f"loss (mean over {int(alive.sum())} networks): step 0 {first_loss:.4g} -> step "
            f"{steps} {last_loss:.4g}; {name.replace('pre', 'pre-')} movement {moved:.4g}"
        )
    console.print(f"[dim]{provenance_line(record)}[/dim]")
    if bool(result.diverged.any()):
        first = int(result.diverged_at[result.diverged].min())
        at_step = loss[result.diverged, first]
        worst = float(at_step.abs().max()) if bool(torch.isfinite(at_step).any()) else math.inf
        raise TrainingBlowupError(int(result.diverged.sum()), seeds, first, out, worst)


def _block_and_data(
    block: str,
    key_dim: int | None,
    tokens: int | None,
    activation: str,
    antithetic: bool,
    data_seed: int,
) -> dict[str, Any]:
    """``block`` and ``data`` of the ``TrainingProblem`` of ``deeplimit train``."""
    from ..training import AttentionBlock, TwoLayerBlock, synthetic_sequence_task
    from ..training.attention import DEFAULT_KEY_DIM

    if block not in ("2lp", "attention"):
        raise ValueError(f"--block must be 2lp or attention, got {block!r}")
    if block == "2lp":
        for flag, value in (("--key-dim", key_dim), ("--tokens", tokens)):
            if value is not None:
                raise ValueError(f"{flag} applies to --block attention only, got --block 2lp")
        return {"block": TwoLayerBlock(activation, antithetic=antithetic)}
    data = synthetic_sequence_task(data_seed, tokens=4 if tokens is None else tokens)
    heads = AttentionBlock(
        data.tokens,
        DEFAULT_KEY_DIM if key_dim is None else key_dim,
        activation,
        antithetic=antithetic,
    )
    return {"block": heads, "data": data}


def _limit_dataset(limit: LimitResult) -> xr.Dataset:
    import xarray as xr

    steps = list(range(limit.steps + 1))
    dataset = xr.Dataset(
        {
            "outputs": (("step", "sample", "output"), limit.outputs.double().numpy()),
            "embeddings": (("step", "sample", "coordinate"), limit.embeddings.double().numpy()),
            "loss": (("step",), limit.loss.double().numpy()),
            "w_in": (("coordinate", "input"), limit.w_in.double().numpy()),
            "w_out": (("coordinate", "output"), limit.w_out.double().numpy()),
        },
        coords={"step": steps},
    )
    dataset.attrs["method"] = limit.method
    dataset.attrs["description"] = limit.description
    dataset.attrs["error_budget"] = json.dumps(limit.error_budget)
    return dataset


FLAGS = {
    "embedding_dim": "--dim",
    "data": "--data-seed",
    "activation": "--activation",
    "block": "--activation",
    "alpha": "--alpha",
    "lr": "--lr",
    "steps": "--steps",
    "embedding_seed": "--embedding-seed",
    "embeddings": "--embedding-seed",
}


def _trained_run(path: Path, problem: TrainingProblem, infinite_dim: bool) -> TrainingResult:
    """The `train` result in ``path`` as a ``TrainingResult`` carrying the problem it was
    trained on (read back from the file: data, maps, steps, D and the recorded activation,
    alpha, lr), after checking that it is the limit's ``problem``: a mismatch would give
    meaningless errors."""
    import torch

    from ..results import load_result
    from ..training import TrainingProblem, TrainingResult, TwoLayerBlock

    try:
        run, record = load_result(path)
    except ValueError as error:
        raise ValueError(f"--against: {error}") from None
    if "embeddings" not in run or "seed" not in run.dims:
        raise ValueError(f"--against must be a result file of `deeplimit train`, got {str(path)!r}")
    if "token" in run.dims:
        raise ValueError(
            f"--against holds attention heads ({record.get('config', {}).get('block')}): "
            "`deeplimit limit` computes limits of the 2LP block; for heads use "
            "TrainingProblem(..., block='attention').limit() (reference networks) in Python"
        )
    trained = record.get("config", {})

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(run[name].values.astype("float64"))

    x, y, w_in, w_out = tensor("x"), tensor("y"), tensor("w_in"), tensor("w_out")
    run_problem = TrainingProblem(
        int(run.sizes["coordinate"]),
        data=(x, y),
        block=TwoLayerBlock(
            trained.get("activation", problem.activation),
            antithetic=bool(trained.get("antithetic", False)),
        ),
        alpha=trained.get("alpha", problem.alpha),
        lr=trained.get("lr", problem.lr),
        steps=int(run.sizes["step"]) - 1,
        embeddings=(w_in, w_out),
    )
    mismatch = run_problem.differences(problem, for_limit=True)
    if infinite_dim and run_problem.embedding_dim <= problem.embedding_dim:
        mismatch = [item for item in mismatch if not item.startswith("embedding_dim:")]
    if mismatch:
        flags = sorted(
            {FLAGS.get(item.split(":")[0], "--" + item.split(":")[0]) for item in mismatch}
        )
        raise ValueError(
            f"--against was trained otherwise than this limit ({'; '.join(mismatch)}; the run's "
            f"value first): use the same {', '.join(flags)}"
        )
    return TrainingResult(
        outputs=tensor("outputs"),
        embeddings=tensor("embeddings"),
        loss=tensor("loss"),
        diverged_at=torch.from_numpy(run["diverged_at"].values.astype("int64")),
        w_in=w_in,
        w_out=w_out,
        movement={},
        states=None,
        x=x,
        y=y,
        depth=int(trained.get("depth", 0)),
        hidden_width=int(trained.get("width", 0)),
        embedding_dim=run_problem.embedding_dim,
        block=run_problem.block.spec,
        residual_scale=torch.empty(0),
        learning_rates={},
        explosion_factor=float(trained.get("explosion_factor", DEFAULT_EXPLOSION_FACTOR)),
        problem=run_problem,
    )


def _errors_against(run: TrainingResult, limit: LimitResult) -> list[dict[str, Any]]:
    """RMS errors of the networks of ``run`` that did not diverge against ``limit``, per step."""
    from ..training import limit_error

    embedding = limit_error(run, limit, diverged="exclude").tolist()
    output = limit_error(run, limit, quantity="outputs", diverged="exclude").tolist()
    networks = int((~run.diverged).sum())
    return [
        {"step": k, "embedding_error": e, "output_error": o, "networks": networks}
        for k, (e, o) in enumerate(zip(embedding, output, strict=True))
    ]


def limit_command(
    dim: int = DIM,
    activation: str = typer.Option(
        DEFAULT_ACTIVATION,
        "--activation",
        "-a",
        help="sigma: identity/linear (exact limit) or tanh, relu, ... (reference networks: an "
        "estimate with its error budget).",
    ),
    alpha: float = ALPHA,
    lr: float = LR,
    steps: int = STEPS,
    method: str = typer.Option(
        "auto",
        "--method",
        help="auto (exact for linear sigma, else reference), exact, span (linear, any D, "
        "with --infinite-dim / --lazy), reference, particles.",
    ),
    infinite_dim: bool = typer.Option(
        False, "--infinite-dim", help="span only: the D -> infinity (joint) limit."
    ),
    lazy: bool = typer.Option(
        False, "--lazy", help="span only: the lazy ODE (alpha -> infinity at fixed --lr)."
    ),
    depth: int | None = typer.Option(
        None,
        "--depth",
        "-L",
        help="exact/span: the depth-L limit (M -> infinity at fixed L) instead of the ODE.",
    ),
    intervals: int = typer.Option(128, "--intervals", help="RK4 depth intervals (exact, span)."),
    reference_depth: int = typer.Option(64, "--reference-depth", help="reference: its depth."),
    reference_width: int = typer.Option(1024, "--reference-width", help="reference: its width."),
    reference_seeds: int = typer.Option(8, "--reference-seeds", help="reference: networks."),
    embedding_seed: int = EMBEDDING_SEED,
    data_seed: int = DATA_SEED,
    against: Path | None = typer.Option(
        None, "--against", help="A `deeplimit train` result: print its error to the limit."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:index] (reference)."),
    out: Path = OUT,
) -> None:
    """Compute the Neural Mean ODE limit (L -> infinity, chizat.md §2) of `deeplimit train`'s
    model after each GD step, and optionally the error of a trained run against it.

    **Example**: `deeplimit train -L 32 -M 128 -D 16 -a identity -K 6 --out run.nc` then
    `deeplimit limit -D 16 -a identity -K 6 --against run.nc --out limit.nc` (exact limit and
    the run's error at every step); `--method span --infinite-dim` gives the D -> infinity
    limit, `--method span --lazy` the lazy ODE.
    """
    from ..provenance import provenance, provenance_line
    from ..results import save_result
    from ..training import TrainingProblem, method_from_name

    problem = TrainingProblem(
        dim,
        activation=activation,
        alpha=alpha,
        lr=lr,
        steps=steps,
        embedding_seed=embedding_seed,
        data_seed=data_seed,
    )
    if method != "span" and (infinite_dim or lazy):
        raise ValueError("--infinite-dim and --lazy need --method span")
    strategy = method_from_name(
        method,
        problem,
        intervals=intervals,
        depth=depth,
        infinite_dim=infinite_dim,
        lazy=lazy,
        reference_depth=reference_depth,
        reference_width=reference_width,
        reference_seeds=reference_seeds,
        device=device,
    )
    check_output_file("--out", out)
    if against is not None and not against.is_file():
        reason = "is a folder" if against.is_dir() else "does not exist"
        raise ValueError(
            f"--against must be a result file of `deeplimit train`: {str(against)!r} {reason}"
        )
    data = problem.data
    # the run is read and checked before the limit is computed
    run = _trained_run(against, problem, infinite_dim) if against is not None else None
    from ..provenance import git_commit

    git_commit()  # the commit of the code that computes the result, read at its start
    start = time.perf_counter()
    limit = problem.limit(strategy)
    wall = time.perf_counter() - start
    dataset = _limit_dataset(limit)
    rows = _errors_against(run, limit) if run is not None else []
    if rows:
        dataset["embedding_error"] = (("step",), [r["embedding_error"] for r in rows])
        dataset["output_error"] = (("step",), [r["output_error"] for r in rows])
    estimate = limit.method in ("reference", "particles")
    config = {
        "description": (
            "estimate of the Neural Mean ODE limit by reference networks (chizat.md §2.4(1))"
            if estimate
            else "Neural Mean ODE limit (chizat.md §2.4)"
        ),
        "command": "limit",
        "dim": dim,
        "activation": activation,
        "alpha": alpha,
        "lr": lr,
        "steps": steps,
        "method": limit.method,
        "strategy": repr(limit.strategy),
        "infinite_dim": infinite_dim,
        "lazy": lazy,
        "depth": depth,
        "embedding_seed": embedding_seed,
        "data": data.description,
        "against": None if against is None else str(against),
    }
    record = provenance(config, seed=embedding_seed, device=device, wall_time_s=wall)
    save_result(dataset, out, record)
    console.print(f"wrote {out}  ({limit.method}: {limit.description})")
    budget = ", ".join(f"{k} {v:.2g}" for k, v in limit.error_budget.items())
    console.print(
        f"limit loss: step 0 {float(limit.loss[0]):.4g} -> step {limit.steps} "
        f"{float(limit.loss[-1]):.4g}; error budget: {budget}"
    )
    for row in rows:
        console.print(
            f"step {row['step']:>3}: embedding error {row['embedding_error']:.4g}, output error "
            f"{row['output_error']:.4g} ({row['networks']} networks)",
            highlight=False,
        )
    console.print(f"[dim]{provenance_line(record)}[/dim]")
