"""Attack: slowloris before hello (issue 14, item 3, first half).

The hello timeout used to be a socket timeout per `recv`: a connection that
sent one byte of its hello a second (each byte inside the timeout) stayed open
for ever without joining. Now `--hello-timeout` is one deadline counted from
accept, so the drip is closed when it runs out; a member that did say hello
is never timed out, however quiet it is afterwards.
"""

from __future__ import annotations

import threading

from tests.helpers import Client, wait_until
from tests.support.attacks import drip

HELLO_TIMEOUT = 2.0
SLACK = 3.0  # a loaded CI machine may take a while to notice the deadline and close


def test_a_byte_a_second_drip_is_closed_at_the_hello_deadline(make_server) -> None:
    """Dripping a hello frame one byte a second no longer keeps a connection open past --hello-timeout."""
    server = make_server("--hello-timeout", str(HELLO_TIMEOUT))
    stop = threading.Event()
    result: list[float] = []
    dripper = threading.Thread(
        target=lambda: result.append(drip(("127.0.0.1", server.port), stop, interval=1.0, seconds=20))
    )
    dripper.start()
    try:
        # The connection is open (the drip has started) ...
        wait_until(lambda: server.tcp.live_connections() == 1)
        # ... and closed by the server within the deadline plus slack, long before the drip ends.
        wait_until(lambda: server.tcp.live_connections() == 0, timeout=HELLO_TIMEOUT + SLACK)
    finally:
        stop.set()
        dripper.join(25)
    assert not dripper.is_alive()
    [open_for] = result
    assert HELLO_TIMEOUT - 0.2 <= open_for <= HELLO_TIMEOUT + SLACK


def test_a_member_that_said_hello_is_never_timed_out(make_server) -> None:
    """After its hello a quiet member stays past the deadline; the deadline is for joining only."""
    server = make_server("--hello-timeout", "1")
    with Client(server.port) as quiet:
        quiet.join("quiet")
        # Quiet for longer than the deadline: wait on the server's own state with a bound, then check.
        stop = threading.Event()
        stop.wait(1.5)
        quiet.send({"type": "ping", "id": "still-there"})
        assert quiet.expect("pong")["id"] == "still-there"
        assert len(server.service.sessions) == 1
