"""Closed-loop cohort benchmark: ``python bench/closed_loop.py --cohort 100 --seed 1``.

A thin wrapper around ``vasopilot bench closed-loop`` (see vasopilot/cohort.py).
"""

import sys

from vasopilot.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "closed-loop", *sys.argv[1:]]))
