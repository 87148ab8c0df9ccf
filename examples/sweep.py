"""A sweep from Python: a grid of points of one experiment, computed into a result store.

The same as ``deeplimit sweep examples/sweeps/hayou-fig1-smoke.toml --store STORE``: expand
the sweep file into points, compute the ones the store lacks (here with two local worker
processes; ``SlurmExecutor`` for a cluster, see docs/sweeps.md), then read the results back
as a table and as datasets. Run it twice: the second run computes nothing.
``python examples/sweep.py [STORE]``.
"""

import sys
from pathlib import Path

from deeplimit.executors import LocalExecutor
from deeplimit.runner import run_sweep
from deeplimit.store import ResultStore
from deeplimit.sweeps import load_sweep


def main(store_path: str) -> None:
    here = Path(__file__).parent
    store = ResultStore(store_path)

    sweep = load_sweep(here / "sweeps" / "hayou-fig1-smoke.toml")
    print(f"{sweep.name}: {len(sweep)} points of {sweep.experiment} over {', '.join(sweep.axes)}")
    result = run_sweep(sweep.points, store, LocalExecutor(workers=2))
    print(
        f"{result.done} of {result.total} done: {len(result.computed)} computed, "
        f"{len(result.skipped)} already stored, {len(result.failed)} failed"
    )

    table = store.frame(sweep.experiment)
    print(table[["key", "status", "seed", "samples", "wall_time_s"]].to_string(index=False))
    for key in table["key"]:
        dataset = store.load(sweep.experiment, key)
        print(key, dict(dataset.sizes))


if __name__ == "__main__":  # the local workers re-import this file: run only as a script
    main(sys.argv[1] if len(sys.argv) > 1 else "store")
