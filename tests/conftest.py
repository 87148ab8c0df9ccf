import os

import pytest
import torch

# two cores shared by the pytest-xdist workers (`make test` runs two), not two threads each
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


# the longest modules (most of it waiting on SLURM, subprocesses, Chromium, the smoke fixtures)
# run first: `make test` hands whole modules to its two workers in collection order
# (--dist loadscope --no-loadscope-reorder), and a long module started last would end alone
FIRST = (
    "test_slurm.py",
    "test_experiments_hayou.py",
    "test_runner.py",
    "test_claims_foundation.py",
    "test_store.py",
    "test_docs.py",
    "test_examples.py",
    "test_experiments_chizat.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: order within
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cuda_device():
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def _restore_mpmath_precision():
    """Tests that raise mpmath's global precision must not leak it into other tests."""
    import mpmath

    dps = mpmath.mp.dps
    yield
    mpmath.mp.dps = dps
