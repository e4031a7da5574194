import sys

from .cli import main

if __name__ == "__main__":  # not when a tool imports it (pytest's doctest collection)
    sys.exit(main())
