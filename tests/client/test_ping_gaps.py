"""A following reader holds one stream open through production-like ping gaps.

Production pings an idle stream every 5-15 s at random (PROTOCOL.md §3.2); here the
local server pings every 20 s, past that range, and the reader must neither stall out
nor reconnect. (About 21 s of wall time: the gap is the point of the test.)
"""

from __future__ import annotations

import threading

from sessions_client import Session
from sessions_client.testing import LocalServer


def test_a_stream_stays_open_through_pings_20_s_apart() -> None:
    with LocalServer(ping_interval=(20, 20)) as srv:
        srv.create_session("c")
        srv.append("c", "out", "a")
        with Session("c", srv.secret_key, srv.url) as session:
            # stall_timeout=30: what the reader's default must tolerate (issue 12)
            reader = session.iter_out(follow=True, stall_timeout=30, total_timeout=40)
            assert next(reader)["data"] == "a"
            late = threading.Timer(21, lambda: srv.append("c", "out", "b"))
            late.start()
            try:
                assert next(reader)["data"] == "b"
            finally:
                late.cancel()
                reader.close()
        assert srv.request_counts["read"] == 1  # one connection: no reconnect
