"""Experiments: one module per figure or study (spec -> run -> dataset -> plot -> claims)."""

from .base import Claim as Claim
from .base import Experiment as Experiment
from .base import ExperimentSpec as ExperimentSpec
from .registry import experiment_names as experiment_names
from .registry import get_experiment as get_experiment
from .registry import suite_members as suite_members
from .registry import suite_names as suite_names
