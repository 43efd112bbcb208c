"""lanchat client: a terminal chat UI and a plain line mode for pipes and bots.

Imports from the server package only `lanchat.wire` (the shared codec).
"""

from lanchat import __version__

__all__ = ["__version__"]
