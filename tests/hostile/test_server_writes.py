"""A client that opens a stream and never reads it is dropped after the write timeout,
instead of holding a thread and its buffers for ever."""

from __future__ import annotations

import socket
import time

from sessions_client.testing import LocalServer, ServerLimits

WRITE_TIMEOUT = 1.0


def test_a_stream_reader_that_never_reads_is_dropped() -> None:
    limits = ServerLimits(write_timeout=WRITE_TIMEOUT)
    with LocalServer(limits=limits) as server:
        server.create_session("w")
        for i in range(60):
            server.append("w", "out", "x" * 100_000, part_id=f"p{i}")
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.sendall(
                b"GET /realtime/v1/sessions/w/out HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer tr_dev_local\r\nTimeout-Seconds: 60\r\n\r\n"
            )
            started = time.monotonic()
            deadline = started + WRITE_TIMEOUT + 5
            while server.open_connections == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            while server.open_connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.open_connections == 0
            assert time.monotonic() - started < WRITE_TIMEOUT + 5
        finally:
            sock.close()
