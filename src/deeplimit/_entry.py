"""The command line's entry point (``deeplimit`` and ``python -m deeplimit``).

Every command stops cleanly on Ctrl-C and SIGTERM once it runs (``cli.common.stop_signals``);
before that, the command line spends a few tenths of a second importing. A signal then stops
it the same way: one line on stderr, exit status 130 or 143, no traceback. A signal that the
process was started with ignored (a background job) stays ignored."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """How a stop names its signal: ``Ctrl-C (SIGINT)``, ``SIGTERM`` (here, before the
    command line's imports, and in ``cli.common.StopRequest`` after them)."""
    if signum == signal.SIGINT:
        return "Ctrl-C (SIGINT)"
    return signal.Signals(signum).name


def _stopped_while_starting(signum: int, frame: Any) -> None:
    sys.stderr.write(f"stopped by {signal_name(signum)} while starting; nothing was run\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def install() -> dict[int, Any]:
    """Stop on Ctrl-C or SIGTERM with one line until the command line has started; returns
    the handlers it replaced."""
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _stopped_while_starting)
    return previous


def main() -> None:
    previous = install()
    from .cli import entry

    for signum, handler in previous.items():
        if handler is not None:  # (None: a handler not set from Python, left as it is)
            signal.signal(signum, handler)
    entry()
