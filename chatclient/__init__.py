"""lanchat client: one session (`session`) with two faces, the terminal chat UI (`ui`) and line mode (`lineui`).

Imports nothing from the server package; what client and server share comes from `lanchat`
(`wire`, `protocol`, `cliargs`, `netinfo`).
"""

from lanchat import __version__

__all__ = ["__version__"]
