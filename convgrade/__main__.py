"""`python -m convgrade ...`: the same as the `convgrade` command."""

import sys

from convgrade.cli import run

if __name__ == "__main__":
    sys.exit(run(prog="python -m convgrade"))
