"""`python -m chatsrv`: the same as the `chatsrv` command."""

import sys

from chatsrv.app import main

sys.exit(main())
