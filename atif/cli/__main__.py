"""``python -m atif.cli``: the ``atif`` command, for when the console script is not on PATH."""

from atif.cli import main

main()
