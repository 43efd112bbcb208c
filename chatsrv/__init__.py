"""lanchat server: a LAN chat over length-framed TCP and over UDP.

The package imports nothing outside the Python standard library (and the
shared `lanchat` package), so the server runs from a bare Python.
"""

from lanchat import __version__

__all__ = ["__version__"]
