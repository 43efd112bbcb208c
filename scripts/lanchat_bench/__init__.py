"""Load benchmark for lanchat (and, with --vs, miniircd and ncat --broker --chat).

Run it as ``python scripts/bench.py SCENARIO ... [options]`` (``--help``
explains every scenario and flag).

Every simulated client lives in this one process and is driven by one
``selectors`` (epoll) loop, so the generator stays cheap: it reads with large
``recv`` calls, walks frame headers without decoding them, and counts chat
messages by a marker that every benchmark text carries (``~M~``).  Only the
rare control payloads (``welcome``, ``left``, ``error`` ...) are JSON-decoded;
latency samples are taken with one regular-expression pass per ``recv``.
The benchmark only ever talks to 127.0.0.1, bounds every wait by a deadline,
and always stops the servers it started (by PID, in ``finally``).  It uses
the standard library only.

Modules, each importing only those listed before it (tests/unit/test_bench_layout.py checks this):

* ``procstat``   /proc statistics (CPU, RSS), the open-file limit, rounding.
* ``records``    typed result records -> the flat JSON row (``as_row``).
* ``conn``       one simulated client (``Conn``, its ``Outgoing`` and ``UdpSession``) and ``Tally``.
* ``codecs``     one codec per server: lanchat TCP/UDP, IRC, ncat chat lines.
* ``loop``       the event loop: non-blocking I/O, senders' pump, bounded waits.
* ``launchers``  the servers under test, started and stopped by PID.
* ``attacks``    the attackers of scenario abuse: raw sockets in threads, each from its own address.
* ``threadprobe`` latency's second probe: a receiver thread with a blocking socket per sampled member.
* ``scenarios/`` ``base`` (the ``Scenario`` descriptor and shared blocks), one
  module per scenario, and the registry in ``scenarios/__init__``.
* ``runner``     the order of rounds and one run against a fresh server.
* ``report``     median summary, lanchat / other ratios, text tables.
* ``cli``        arguments and ``main``.

Adding a scenario (say ``abuse``):

1. Write ``scenarios/abuse.py``: a function ``run_abuse(ctx: RunContext)``
   that calls ``ctx.launch()`` for a fresh server, drives clients through a
   ``Loop`` and returns a result dataclass (field order = JSON key order; see
   ``records`` for keys that are left out while unset), and
   ``SCENARIO = Scenario(name="abuse", help=..., key_metric=..., headline=...,
   columns=..., run=lambda ctx: run_abuse(ctx), sizes=(Size(...), ...))``.
2. Add ``abuse.SCENARIO`` to the tuple in ``scenarios/__init__.py``.

The command line (choices, --help, size flags), the runner (rounds, --vs) and
the report (table, median, ratios) take everything else from the descriptor.
"""
