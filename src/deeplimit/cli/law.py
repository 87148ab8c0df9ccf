"""``deeplimit law NAME``: quantiles and moments of the closed-form infinite-depth laws."""

from __future__ import annotations

import math
from typing import Any

import typer

from .common import console, parse_vector, rows_table

# law name -> (its factory in deeplimit.laws, options it takes, what the law describes)
LAWS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gbm": ("gbm_law", ("a", "y0"), "X_1 given X_0 = y0; width 1, phi(x) = a x (Prop. 2)"),
    "relu-width1": (
        "relu_width1_law",
        ("y0", "x"),
        "X_1 for width 1, ReLU: GBM/constant mixture (Prop. 3)",
    ),
    "ou": (
        "ou_law",
        ("alpha", "beta", "sigma", "y0"),
        "X_1 given X_0 = y0; width 1, OU activation (Prop. 4)",
    ),
    "identity-log-norm": (
        "identity_log_norm_law",
        ("width",),
        "log(|X_1|/|X_0|) for phi = identity, any width (Prop. 9)",
    ),
    "identity-norm": (
        "identity_norm_law",
        ("width", "norm0"),
        "|X_1| given |X_0| = norm0 for phi = identity (Prop. 9)",
    ),
    "depth-then-width": (
        "depth_then_width_law",
        ("q0", "t"),
        "one coordinate of X_t as n -> oo after L -> oo, ReLU (Thm 2)",
    ),
}


def law_command(
    name: str = typer.Argument(..., help=f"One of: {', '.join(LAWS)}."),
    a: float | None = typer.Option(None, "--a", help="gbm: slope a of phi(x) = a x."),
    y0: float | None = typer.Option(None, "--y0", help="gbm, relu-width1, ou: fixed start X_0."),
    x: str | None = typer.Option(
        None, "--x", help="relu-width1: input x (comma-separated); X_0 = W_in x."
    ),
    alpha: float | None = typer.Option(None, "--alpha", help="ou: alpha (> 0)."),
    beta: float | None = typer.Option(None, "--beta", help="ou: beta (> 0)."),
    sigma: float | None = typer.Option(None, "--sigma", help="ou: sigma (> 0)."),
    width: int | None = typer.Option(None, "--width", help="identity-*: width n."),
    norm0: float | None = typer.Option(None, "--norm0", help="identity-norm: |X_0|."),
    q0: float | None = typer.Option(None, "--q0", help="depth-then-width: q0 = |x|^2/d."),
    t: float | None = typer.Option(None, "--t", help="depth-then-width: time t in [0, 1]."),
    depth: list[int] | None = typer.Option(
        None,
        "--depth",
        help="relu-width1: also print the exact finite-depth collapse probability at these depths.",
    ),
    quantiles: str = typer.Option(
        "0.01,0.05,0.25,0.5,0.75,0.95,0.99", "--quantiles", help="Probabilities."
    ),
) -> None:
    """Print quantiles, median, mean and variance of a closed-form law of the SDE limit.

    **Example**: `deeplimit law relu-width1 --x 1 --depth 5 --depth 50`
    """
    if name not in LAWS:
        raise ValueError(f"law must be one of {', '.join(LAWS)}, got {name!r}")
    factory, accepted, meaning = LAWS[name]
    given = {
        "a": a,
        "y0": y0,
        "x": parse_vector("--x", x) if x is not None else None,
        "alpha": alpha,
        "beta": beta,
        "sigma": sigma,
        "width": width,
        "norm0": norm0,
        "q0": q0,
        "t": t,
    }
    unused = [
        f"--{key}" for key, value in given.items() if value is not None and key not in accepted
    ]
    if unused:
        raise ValueError(
            f"law {name!r} takes {', '.join('--' + k for k in accepted)}; "
            f"{', '.join(unused)} does not apply"
        )
    if depth and name != "relu-width1":
        raise ValueError(f"--depth applies to relu-width1 only, not to {name!r}")
    bad = [d for d in depth or [] if d < 1]
    if bad:  # checked before anything is printed
        raise ValueError(f"--depth must be integers >= 1, got {bad[0]}")
    from ..initialization import laws

    law = getattr(laws, factory)(
        **{key: value for key, value in given.items() if key in accepted and value is not None}
    )
    probabilities = parse_vector("--quantiles", quantiles)
    outside = [p for p in probabilities if not 0.0 <= p <= 1.0]
    if outside:
        raise ValueError(f"--quantiles must be probabilities in [0, 1], got {outside[0]:g}")
    values = law.ppf(probabilities)
    console.print(f"[bold]{name}[/bold]: {meaning}")
    console.print(law.describe())
    rows = [{"probability": p, "quantile": float(v)} for p, v in zip(probabilities, values)]
    console.print(rows_table("quantiles", rows))
    summary = [
        {"median": float(law.median()), "mean": _moment(law.mean), "variance": _moment(law.var)}
    ]
    console.print(rows_table("moments", summary))
    if depth:
        probability = laws.relu_width1_collapse_probability(depth)
        rows = [
            {"depth L": int(d), "P(collapse by L | Y_0 > 0)": float(p), "P(Y_L <= 0)": float(q)}
            for d, p, q in zip(
                depth,
                [probability] if len(depth) == 1 else probability,
                [laws.relu_width1_nonpositive_probability(d) for d in depth],
            )
        ]
        console.print(rows_table("finite-depth collapse (exact)", rows))


def _moment(method: Any) -> float | str:
    value = float(method())
    return "infinite" if math.isinf(value) else value
