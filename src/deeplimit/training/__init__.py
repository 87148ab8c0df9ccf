"""Trained deep ResNets and their large-depth limits (Chizat, chizat.md).

``TrainingProblem`` describes a problem once: ``problem.train(depth, hidden_width, seeds)``
gives the finite networks and ``problem.limit(method)`` their limit (``Exact``, ``Span``,
``Lazy``, ``Reference``, ``Particles``; none: the exact and fastest that applies). The
functions are shorthands for it:
``train_resnet`` trains batches of 2LP ResNets (§1.2) by full-batch gradient descent;
``mean_ode_limit`` computes their Neural Mean ODE limit (§2.4) after each step. The names load
on first use (``deeplimit._lazy``).
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    names={
        ".attention": ["AttentionBlock", "SequenceData", "synthetic_sequence_task"],
        ".authors": [
            "ScaledTwoLayerBlock",
            "SpanKernels",
            "authors_embedding_rates",
            "authors_embeddings",
            "authors_linear_task",
            "authors_lr",
            "authors_mean",
            "layer_error",
            "rms_error",
            "scaled_embeddings",
            "span_kernels",
            "train_with_adjoint",
        ],
        ".data": ["TrainingData", "resolve_data", "synthetic_task"],
        ".embeddings": ["coupled_embeddings"],
        ".limit": [
            "LimitResult",
            "exact_linear_limit",
            "limit_error",
            "mean_ode_limit",
            "reference_limit",
            "span_linear_limit",
        ],
        ".model": ["Block", "ResNet", "TwoLayerBlock"],
        ".parametrizations": [
            "CompleteP",
            "CriticalScaling",
            "DepthMuP",
            "Parametrization",
            "StandardParametrization",
            "WidthMuP",
            "parametrization",
        ],
        ".problem": [
            "Exact",
            "Lazy",
            "LimitMethod",
            "Particles",
            "Reference",
            "Span",
            "TrainingProblem",
            "method_from_name",
        ],
        ".scaling": [
            "LazyScaling",
            "MeanFieldScaling",
            "PowerLawScaling",
            "ResolvedScaling",
            "Scaling",
            "predicted_regime",
        ],
        ".train": [
            "TrainingDivergedError",
            "TrainingDivergenceWarning",
            "TrainingResult",
            "build_resnet",
            "train",
            "train_resnet",
        ],
    },
)
