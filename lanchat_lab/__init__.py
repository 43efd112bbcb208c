"""lanchat's TCP-vs-UDP lab (`chatlab`): the same chat workload over both transports, measured.

A separate package on top of the server (`chatsrv`) and sharing its codec
(`lanchat.wire`): the server stays standard-library only, while the lab may
use optional extras (matplotlib for `--plot`, imported only when drawing).
chatsrv and chatclient never import this package.
"""

from lanchat import __version__

__all__ = ["__version__"]
