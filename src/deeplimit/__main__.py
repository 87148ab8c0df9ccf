"""``python -m deeplimit``: the command line."""

from .cli import entry

entry()
