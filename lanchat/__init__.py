"""What lanchat's server, client and lab share: the version, the protocol codec and conventions.

- `lanchat.wire`: the version 1 protocol codec (frames, payloads, `seq`), sans I/O;
- `lanchat.protocol`: constants both ends agree on (default port, nick/room/text limits);
- `lanchat.cliargs`: command-line conventions (one-line flag errors, argument types);
- `lanchat.netinfo`: this machine's interface and broadcast addresses.

Standard library only, and it imports none of the packages that build on it:
the server, the client and the lab.
"""

__version__ = "0.1.0"
