"""Real data that ships with installed packages, as full-batch regression tasks.

* ``digits_task``: scikit-learn's handwritten digits (``sklearn.datasets.load_digits``: 1797
  images of 8 x 8 pixels, 10 classes, bundled with scikit-learn, no download). Inputs are the 64
  pixels standardized with the training split's mean and standard deviation (so ``W_in x`` has
  entries of order one); targets are the centred one-hot classes scaled to unit mean square,
  ``(onehot - 1/10) / 0.3`` — the zero predictor has risk 1.
* ``text_task``: a character-level next-token task on the pydoc topics text that ships with
  Python itself (``pydoc_data.topics``): sequences of ``T`` characters of a small alphabet,
  inputs the one-hot current character plus two positional features, targets the centred
  one-hot next character scaled to unit mean square.

Splits are disjoint and drawn by a seeded permutation (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import check_int
from .data import TrainingData

__all__ = ["digits_task", "text_task"]

DIGITS_SAMPLES = 1797


def _one_hot_targets(labels: np.ndarray, classes: int) -> np.ndarray:
    target = np.full((labels.size, classes), -1.0 / classes)
    target[np.arange(labels.size), labels] += 1.0
    return target / math.sqrt((classes - 1) / classes**2)


def digits_task(
    train: int = 512, test: int = 512, *, seed: int = 0
) -> tuple[TrainingData, TrainingData]:
    """``(train, test)`` splits of scikit-learn's digits (module docstring)."""
    train = check_int("train", train, minimum=1)
    test = check_int("test", test, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if train + test > DIGITS_SAMPLES:
        raise ValueError(
            f"train + test must be at most {DIGITS_SAMPLES} (the digits data set), got "
            f"{train} + {test}"
        )
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the digits task needs scikit-learn: pip install scikit-learn") from error
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(DIGITS_SAMPLES)
    x = digits.data.astype(np.float64)
    labels = digits.target.astype(np.int64)
    first, second = order[:train], order[train : train + test]
    mean = x[first].mean(0)
    std = np.maximum(x[first].std(0), 1.0)  # constant pixels stay zero, not inflated
    y = _one_hot_targets(labels, 10)
    splits = []
    for name, rows in (("train", first), ("test", second)):
        splits.append(
            TrainingData(
                torch.from_numpy((x[rows] - mean) / std),
                torch.from_numpy(y[rows]),
                description=f"sklearn digits ({name} split: {rows.size} of {DIGITS_SAMPLES}, "
                f"seed {seed}), 64 standardized pixels, centred one-hot targets",
            )
        )
    return splits[0], splits[1]


def _topics_text() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def text_task(
    train: int = 128,
    test: int = 128,
    *,
    tokens: int = 16,
    alphabet: int = 24,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    """Character-level next-token prediction on Python's pydoc topics text.

    The text is lower-cased; the ``alphabet - 1`` most frequent characters keep their own
    symbol and every other character maps to one "other" symbol. Sequences are ``tokens + 1``
    consecutive characters starting at random offsets (train and test from disjoint halves of
    the text); ``X`` (N, T, alphabet + 2): one-hot current character and the position
    features ``(t/T - 1/2, cos(pi t / T))``, ``Y`` (N, T, alphabet): the centred one-hot next
    character scaled to unit mean square. Returns ``((X_train, Y_train), (X_test, Y_test),
    description)``.
    """
    train = check_int("train", train, minimum=1)
    test = check_int("test", test, minimum=1)
    tokens = check_int("tokens", tokens, minimum=1)
    alphabet = check_int("alphabet", alphabet, minimum=2, maximum=256)
    seed = check_int("seed", seed, minimum=0)
    text = _topics_text().lower()
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    characters, counts = np.unique(points, return_counts=True)
    keep = characters[np.argsort(-counts, kind="stable")[: alphabet - 1]]
    lookup = {int(c): i for i, c in enumerate(keep)}
    codes = np.array([lookup.get(ord(ch), alphabet - 1) for ch in text], dtype=np.int64)
    half = codes.size // 2
    rng = np.random.default_rng(seed)
    position = np.arange(tokens) / tokens
    features = np.stack([position - 0.5, np.cos(np.pi * position)], axis=1)

    def sample(part: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        if part.size <= tokens + 1:
            raise ValueError(f"tokens={tokens} is longer than the text")
        starts = rng.integers(0, part.size - tokens - 1, size=count)
        windows = part[starts[:, None] + np.arange(tokens + 1)]
        x = np.zeros((count, tokens, alphabet + 2))
        x[np.arange(count)[:, None], np.arange(tokens), windows[:, :-1]] = 1.0
        x[:, :, alphabet:] = features
        y = _one_hot_targets(windows[:, 1:].reshape(-1), alphabet).reshape(count, tokens, -1)
        return x, y

    description = (
        f"pydoc topics text (Python {'.'.join(map(str, __import__('sys').version_info[:2]))}), "
        f"{codes.size} characters, alphabet {alphabet}, T={tokens}, seed {seed}"
    )
    return sample(codes[:half], train), sample(codes[half:], test), description
