"""The ``deeplimit`` command line.

Every command prints bad input as one line (``error: ...``) and exits with status 2, and a
numerical blow-up or a diverged study as one line with status 3 (a diverged study is still
recorded and drawn with what stayed finite); a full result store is one line with status 1
(run again once space is freed). ``--help`` of every command shows an example.
"""

from __future__ import annotations

import typer

from .._version import __version__
from .common import OneLineErrors, guarded
from .law import law_command
from .reproduce import EPILOG as REPRODUCE_EPILOG
from .reproduce import reproduce_command
from .sample import sample_app
from .sweep import plot_command, results_command, sweep_command
from .train import limit_command, train_command

app = typer.Typer(
    name="deeplimit",
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(sample_app, name="sample")
app.command("law")(guarded(law_command))
app.command("reproduce", epilog=REPRODUCE_EPILOG)(guarded(reproduce_command))
_TRAINING_FLAGS = {"hidden_width": "--width", "embedding_dim": "--dim"}
app.command("train")(guarded(train_command, _TRAINING_FLAGS))
app.command("limit")(guarded(limit_command, _TRAINING_FLAGS))
app.command("sweep")(guarded(sweep_command))
app.command("results")(guarded(results_command))
app.command("plot")(guarded(plot_command))


def _version(value: bool) -> None:
    if value:
        print(f"deeplimit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Deep residual networks in their large-depth limits: simulate, check, reproduce.

    **Example**: `deeplimit reproduce hayou-fig1` (Hayou's Fig. 1 with its KS statistics, in
    under a minute); `deeplimit sample resnet --width 3 --depth 100 --activation relu --samples
    10000 --x 1,0.5 --out resnet.nc`; `deeplimit COMMAND --help` for each command's example.
    """


def entry() -> None:
    app()
