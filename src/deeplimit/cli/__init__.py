"""The ``deeplimit`` command line.

Every command prints bad input as one line (``error: ...``) and exits with status 2, and a
numerical blow-up or a diverged study as one line with status 3 (a diverged study is still
recorded and drawn with what stayed finite); a full result store is one line with status 1
(run again once space is freed). Ctrl-C (SIGINT) or SIGTERM stops any command with one line
``stopped by ...`` on stderr (what is kept: nothing half-written, or what resumes) and status
130 or 143. ``--help`` of every command shows an example.
"""

from __future__ import annotations

import typer

from .._version import __version__
from .common import OUT_KEPT_WHOLE, OneLineErrors, guarded
from .law import law_command
from .reproduce import EPILOG as REPRODUCE_EPILOG
from .reproduce import reproduce_command
from .sample import sample_app
from .sweep import SWEEP_RESUMES, plot_command, results_command, sweep_command
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
_RESUMES = (
    "run the same command again to resume: finished figures and the finished parts of a long "
    "study are kept"
)
app.command("reproduce", epilog=REPRODUCE_EPILOG)(guarded(reproduce_command, stopped=_RESUMES))
_TRAINING_FLAGS = {"hidden_width": "--width", "embedding_dim": "--dim"}
app.command("train")(guarded(train_command, _TRAINING_FLAGS, OUT_KEPT_WHOLE))
app.command("limit")(guarded(limit_command, _TRAINING_FLAGS, OUT_KEPT_WHOLE))
app.command("sweep")(guarded(sweep_command, stopped=SWEEP_RESUMES))
_EXPORT_WHOLE = "no partial --export file is left (it is written whole, or not at all)"
app.command("results")(guarded(results_command, stopped=_EXPORT_WHOLE))
_FIGURES_WHOLE = "no partial figure file is left (each is written whole, or not at all)"
app.command("plot")(guarded(plot_command, stopped=_FIGURES_WHOLE))


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
