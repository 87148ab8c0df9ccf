"""Random ResNets at initialization and their infinite-depth limits (Hayou, hayou.md)."""

from .network import sample_resnet as sample_resnet
from .sde import sample_sde as sample_sde

__all__ = ["sample_resnet", "sample_sde"]
