#!/usr/bin/env python3
"""Load benchmark for lanchat: the command behind ``python scripts/bench.py``.

The benchmark itself is the package scripts/lanchat_bench (its docstring
tells the layout and how to add a scenario); this file only starts it.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, Python puts scripts/ on the path already; loaded by file path it may not have.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from lanchat_bench.cli import main  # after the path above

if __name__ == "__main__":
    sys.exit(main())
