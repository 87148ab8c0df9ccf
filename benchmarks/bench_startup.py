"""Start-up time: ``import deeplimit`` and ``deeplimit [CMD] --help``, median of N fresh processes.

Each measurement is the wall time of a new interpreter (``python -c "import deeplimit"``, or the
CLI's entry point with ``--help``), so it includes Python's own start (~20 ms). Targets (issue 9):
``import deeplimit`` and every ``--help`` at most 0.5 s on a quiet 2-core machine. The machine's
load average is printed with the numbers: measure when it is quiet. Usage:

    python benchmarks/bench_startup.py [--repeat 5] [--all]

``--all`` times ``--help`` of every command, not only the root, ``reproduce`` and ``train``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CLI = "from deeplimit.cli import entry; entry()"
COMMANDS = ["reproduce", "train"]
ALL_COMMANDS = [
    "sample",
    "sample resnet",
    "sample sde",
    "law",
    "reproduce",
    "train",
    "limit",
    "sweep",
    "results",
    "plot",
]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median(argv: list[str], repeat: int) -> float:
    wall(argv)  # warm the file-system cache
    return statistics.median(wall(argv) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="--help of every command")
    args = parser.parse_args()
    python = sys.executable
    cases = {
        "python -c pass": [python, "-c", "pass"],
        "import deeplimit": [python, "-c", "import deeplimit"],
        "deeplimit --help": [python, "-c", CLI, "--help"],
    }
    for command in ALL_COMMANDS if args.all else COMMANDS:
        cases[f"deeplimit {command} --help"] = [python, "-c", CLI, *command.split(), "--help"]
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    width = max(map(len, cases))
    for label, argv in cases.items():
        print(f"{label:<{width}}  {median(argv, args.repeat):6.3f} s (median of {args.repeat})")
    print(f"load average after:  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
