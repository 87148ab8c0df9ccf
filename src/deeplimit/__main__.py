"""``python -m deeplimit``: the command line."""

from ._entry import main

main()
