"""Random ResNets at initialization and their infinite-depth limits (Hayou, hayou.md)."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    names={
        ".fused": ["Fused", "FusedCompileError"],
        ".network": ["sample_resnet"],
        ".random_resnet": ["MeanFieldLimit", "RandomResNet", "ResNetSDE"],
        ".sampling": ["Sampling", "Start"],
        ".sde": ["sample_sde"],
    },
)
