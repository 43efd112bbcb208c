"""Attack: one socket floods discovery probes (issue 14, item 4).

All sources used to share one reply budget (100/s): about 900 probes a second
from one socket and no other source was answered. Now each source has its own
budget below a global cap, so a second source's probes are answered.
"""

from __future__ import annotations

import threading

from chatclient.discovery import probe
from chatsrv.discovery import REPLY_BURST
from lanchat.wire import decode_payload
from tests.helpers import UDPClient, wait_until
from tests.support.attacks import Counter, flood_discovery

LEGITIMATE_PROBES = 10


def test_a_second_source_is_answered_while_one_socket_floods(server) -> None:
    """While 127.0.0.1 sends about 900 probes a second, every probe from 127.0.0.2 gets its server_info."""
    assert server.udp is not None
    stop = threading.Event()
    sent = Counter()
    flooder = threading.Thread(
        target=flood_discovery,
        args=(("127.0.0.1", server.udp.port), stop),
        kwargs={"per_second": 900, "seconds": 20, "counter": sent},
    )
    flooder.start()
    student = UDPClient(server.udp.port, source="127.0.0.2")
    answered = 0
    try:
        # The flood is in full swing once it has sent more than the global burst.
        wait_until(lambda: sent.value > 2 * REPLY_BURST)
        for _ in range(LEGITIMATE_PROBES):
            student.send_raw(probe())
            datagram = student.recv_datagram(timeout=1.0)
            if datagram is not None and decode_payload(datagram)["type"] == "server_info":
                answered += 1
    finally:
        stop.set()
        flooder.join(5)
        student.close()
    assert not flooder.is_alive()
    assert answered == LEGITIMATE_PROBES
