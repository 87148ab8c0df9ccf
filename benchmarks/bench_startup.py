"""Start-up time: ``import deeplimit`` and ``deeplimit [CMD] --help``, median of N fresh processes.

Each measurement is the wall time of a new interpreter (``python -c "import deeplimit"``, or the
CLI's entry point with ``--help``), so it includes Python's own start (~20 ms). Targets (issue 9):
``import deeplimit`` and every ``--help`` at most 0.5 s on a quiet 2-core machine. The machine's
load average is printed with the numbers: measure when it is quiet. The CPU time (user + system)
of each run is printed too: on a busy machine it stays close to what the wall time would be on a
quiet one. Usage:

    python benchmarks/bench_startup.py [--repeat 5] [--all]

``--all`` times ``--help`` of every command, not only the root, ``reproduce`` and ``train``.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(argv: list[str], repeat: int) -> tuple[float, float]:
    timed(argv)  # warm the file-system cache
    runs = [timed(argv) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


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
    print(f"{'':<{width}}  wall s  CPU s  (medians of {args.repeat})")
    for label, argv in cases.items():
        wall, cpu = medians(argv, args.repeat)
        print(f"{label:<{width}}  {wall:6.3f} {cpu:6.3f}")
    print(f"load average after:  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
