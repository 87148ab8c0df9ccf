"""The one set of defaults of the training half (chizat.md §1.2, §1.5), in one place.

``TrainingProblem``, the function shorthands (``train_resnet``, ``build_resnet``,
``mean_ode_limit``, ``reference_limit``) and the ``deeplimit train`` / ``deeplimit limit``
commands all read their defaults from here, so a finite network and its limit built with the
defaults describe the same problem. This module imports nothing heavy (the CLI reads it to print
``--help``).

Arguments whose mere presence matters (``alpha``/``lr`` next to ``scaling``, ``activation``
next to ``block``) default to ``None`` in the functions, so that any value a caller passes, even
one equal to the default, is seen as given.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_ACTIVATION",
    "DEFAULT_ALPHA",
    "DEFAULT_DATA_SEED",
    "DEFAULT_EXPLOSION_FACTOR",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
]

DEFAULT_ACTIVATION = "tanh"
"""sigma of the 2LP block: tanh, the activation of the paper's experiments (chizat.md §1.5)."""

DEFAULT_ALPHA = 1.0
"""Residual scale ``alpha/(LM)``: the critical scale of the 2LP (chizat.md §1.3)."""

DEFAULT_LR = 0.5
"""``eta`` in the raw learning rate ``eta L M D / alpha^2`` (the authors' Julia ``eta = 1``)."""

DEFAULT_STEPS = 10
"""Full-batch gradient-descent steps ``K``."""

DEFAULT_DATA_SEED = 1
"""Seed of the default synthetic task (the authors seed Julia with 1; the numbers differ)."""

DEFAULT_EXPLOSION_FACTOR = 1e6
"""A run diverges when its loss exceeds this times ``max(R_0, mean(y^2))``."""
