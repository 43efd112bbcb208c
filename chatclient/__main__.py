"""`python -m chatclient`: the same as the `chatclient` command."""

import sys

from chatclient.cli import main

sys.exit(main())
