"""deeplimit: deep residual networks in their large-depth limits."""

from ._version import __version__ as __version__
from .activations import Activation as Activation
from .activations import parse_activation as parse_activation
from .errors import NumericalBlowupError as NumericalBlowupError
from .initialization import sample_resnet as sample_resnet
from .initialization import sample_sde as sample_sde
