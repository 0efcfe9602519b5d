#!/usr/bin/env python3
"""ConvGrade command line from a checkout: `python grade.py ...` is `convgrade ...` (see convgrade/cli.py).

    python grade.py --exercise conv_step_by_step submissions/ --json results.json   # grade a batch
    python grade.py merge grades.sqlite shard-*.sqlite                              # join gradebooks
    python grade.py check my_notebook.ipynb                                         # student self-check
"""

from __future__ import annotations

import sys

from convgrade import cli

PROG = "grade.py"


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, PROG)


def run(argv: list[str] | None = None) -> int:
    return cli.run(argv, PROG)


if __name__ == "__main__":
    sys.exit(run())
