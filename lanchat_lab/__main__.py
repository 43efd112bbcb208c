"""`python -m lanchat_lab`: the same as the `chatlab` command."""

import sys

from lanchat_lab.cli import main

sys.exit(main())
