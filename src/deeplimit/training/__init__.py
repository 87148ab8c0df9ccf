"""Trained deep ResNets and their large-depth limits (Chizat, chizat.md).

``train_resnet`` trains batches of 2LP ResNets (§1.2) by full-batch gradient descent;
``mean_ode_limit`` computes their Neural Mean ODE limit (§2.4) after each step.
"""

from .data import TrainingData as TrainingData
from .data import resolve_data as resolve_data
from .data import synthetic_task as synthetic_task
from .embeddings import coupled_embeddings as coupled_embeddings
from .limit import LimitResult as LimitResult
from .limit import exact_linear_limit as exact_linear_limit
from .limit import limit_error as limit_error
from .limit import mean_ode_limit as mean_ode_limit
from .limit import reference_limit as reference_limit
from .limit import span_linear_limit as span_linear_limit
from .model import Block as Block
from .model import ResNet as ResNet
from .model import TwoLayerBlock as TwoLayerBlock
from .scaling import LazyScaling as LazyScaling
from .scaling import MeanFieldScaling as MeanFieldScaling
from .scaling import PowerLawScaling as PowerLawScaling
from .scaling import ResolvedScaling as ResolvedScaling
from .scaling import Scaling as Scaling
from .scaling import predicted_regime as predicted_regime
from .train import TrainingDivergedError as TrainingDivergedError
from .train import TrainingDivergenceWarning as TrainingDivergenceWarning
from .train import TrainingResult as TrainingResult
from .train import build_resnet as build_resnet
from .train import train as train
from .train import train_resnet as train_resnet

__all__ = [
    "Block",
    "LazyScaling",
    "LimitResult",
    "MeanFieldScaling",
    "PowerLawScaling",
    "ResNet",
    "ResolvedScaling",
    "Scaling",
    "TrainingData",
    "TrainingDivergedError",
    "TrainingDivergenceWarning",
    "TrainingResult",
    "TwoLayerBlock",
    "build_resnet",
    "coupled_embeddings",
    "exact_linear_limit",
    "limit_error",
    "mean_ode_limit",
    "predicted_regime",
    "reference_limit",
    "resolve_data",
    "span_linear_limit",
    "synthetic_task",
    "train",
    "train_resnet",
]
