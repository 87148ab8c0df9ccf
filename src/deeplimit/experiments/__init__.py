"""Experiments: one module per figure or study (spec -> run -> dataset -> plot -> claims)."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    names={
        ".base": ["Claim", "Experiment", "ExperimentSpec"],
        ".registry": ["experiment_names", "get_experiment", "suite_members", "suite_names"],
    },
)
