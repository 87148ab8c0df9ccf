"""deeplimit: deep residual networks in their large-depth limits.

Random ResNets at initialization and their infinite-depth SDE (Hayou): ``sample_resnet``,
``sample_sde``, the observables (``observe_resnet``, ``collapse_probability``,
``gradient_norms``), the closed-form laws (``deeplimit.laws``) and the mean-field limits
(``meanfield_variance`` and friends). Trained ResNets and their Neural Mean ODE (Chizat):
``train_resnet``, ``mean_ode_limit``. Statistics: ``deeplimit.stats``.

Shapes follow one convention everywhere: samples (or seeds) first, then layers / times / steps,
then inputs, then width.
"""

from . import stats as stats
from ._version import __version__ as __version__
from .activations import Activation as Activation
from .activations import parse_activation as parse_activation
from .errors import NumericalBlowupError as NumericalBlowupError
from .initialization import laws as laws
from .initialization.gradients import gradient_norms as gradient_norms
from .initialization.meanfield import MeanFieldBlowupError as MeanFieldBlowupError
from .initialization.meanfield import infinite_width_variance as infinite_width_variance
from .initialization.meanfield import meanfield_covariance as meanfield_covariance
from .initialization.meanfield import meanfield_log_growth as meanfield_log_growth
from .initialization.meanfield import meanfield_variance as meanfield_variance
from .initialization.meanfield import relu_correlation as relu_correlation
from .initialization.network import sample_resnet as sample_resnet
from .initialization.observables import Observations as Observations
from .initialization.observables import collapse_probability as collapse_probability
from .initialization.observables import correlation_coefficients as correlation_coefficients
from .initialization.observables import observe_resnet as observe_resnet
from .initialization.observables import observe_sde as observe_sde
from .initialization.sde import sample_sde as sample_sde
from .training import LazyScaling as LazyScaling
from .training import LimitResult as LimitResult
from .training import MeanFieldScaling as MeanFieldScaling
from .training import PowerLawScaling as PowerLawScaling
from .training import TrainingResult as TrainingResult
from .training import limit_error as limit_error
from .training import mean_ode_limit as mean_ode_limit
from .training import train_resnet as train_resnet
