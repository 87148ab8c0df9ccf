"""deeplimit: deep residual networks in their large-depth limits.

Random ResNets at initialization and their infinite-depth SDE (Hayou): one description,
``RandomResNet(width, activation)``, with ``.sample``, ``.observe``, ``.collapse_probability``,
``.gradient_norms`` at a depth and ``.limit()``, the ``ResNetSDE`` with the same methods,
``.law`` (closed forms, ``deeplimit.laws``) and ``.meanfield()`` (infinite width); how to
simulate is one ``Sampling``, where to start one ``Start``. The functions ``sample_resnet``,
``sample_sde``, ``observe_resnet``, ``observe_sde``, ``collapse_probability``,
``gradient_norms`` and ``meanfield_variance`` (and friends) are shorthands.
Trained ResNets and their Neural Mean ODE (Chizat): ``TrainingProblem`` (``.train``,
``.limit``), shorthands ``train_resnet``, ``mean_ode_limit``.
Statistics: ``deeplimit.stats``.

Shapes follow one convention everywhere: samples (or seeds) first, then layers / times / steps,
then inputs, then width.

The names load on first use (``deeplimit._lazy``): ``import deeplimit`` does not import torch,
SciPy or xarray; ``deeplimit.sample_resnet`` does.
"""

from ._lazy import attach
from ._version import __version__ as __version__

__getattr__, __dir__, __all__ = attach(
    __name__,
    modules={"stats": ".stats", "laws": ".initialization.laws"},
    names={
        ".activations": ["Activation", "parse_activation"],
        ".errors": ["NumericalBlowupError", "NumericalError", "NumericalUnderflowError"],
        ".initialization.fused": ["Fused", "FusedCompileError"],
        ".initialization.gradients": ["gradient_norms"],
        ".initialization.meanfield": [
            "infinite_width_variance",
            "meanfield_covariance",
            "meanfield_log_growth",
            "meanfield_variance",
            "relu_correlation",
            "MeanFieldBlowupError",
        ],
        ".initialization.network": ["sample_resnet"],
        ".initialization.random_resnet": ["MeanFieldLimit", "RandomResNet", "ResNetSDE"],
        ".initialization.sampling": ["Sampling", "Start"],
        ".initialization.observables": [
            "Observations",
            "collapse_probability",
            "correlation_coefficients",
            "observe_resnet",
            "observe_sde",
        ],
        ".initialization.sde": ["sample_sde"],
        ".training": [
            "Exact",
            "Lazy",
            "LazyScaling",
            "LimitMethod",
            "LimitResult",
            "MeanFieldScaling",
            "Particles",
            "PowerLawScaling",
            "Reference",
            "Span",
            "TrainingProblem",
            "TrainingResult",
            "limit_error",
            "mean_ode_limit",
            "train_resnet",
        ],
    },
)
