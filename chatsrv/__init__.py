"""lanchat server: a LAN chat over length-framed TCP and over UDP.

The package imports nothing outside the Python standard library, so the
server runs from a bare Python.
"""

__version__ = "0.1.0"
