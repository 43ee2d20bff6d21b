"""``python -m dlc_teach``: the command line (see :mod:`dlc_teach.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
