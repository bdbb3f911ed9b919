"""read_channel's cheap paths: the dedup window per record (v1) and per batch (v2)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from sessions_client import Session
from sessions_client.cursor import MemoryCursor

from .scripted import Conn, Request, streams, v1_event

SECRET = "tr_dev_readersSecret"
V2 = {"X-Stream-Version": "v2"}


def take(iterator: Any, n: int) -> List[Dict[str, Any]]:
    out = []
    for record in iterator:
        out.append(record)
        if len(out) == n:
            break
    return out


def test_v1_dedup_window_is_bounded_and_duplicates_still_move_the_cursor(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(False)
        events = [v1_event(i, i, f"id{i}") for i in range(6)]
        events += [v1_event(6, "dup", "id5"), v1_event(7, "old", "id0"), v1_event(8, "x", "id8")]
        conn.body(b"".join(events))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    cursor = MemoryCursor()
    session = Session("s", token=SECRET, api_url=srv.url)
    iterator = session.iter_out(dedup_window=2, cursor=cursor)
    records = take(iterator, 8)
    iterator.close()
    # id0 left the window (trimmed to the 2 most recent once it held 4+1), id5 had not.
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5, 7, 8]
    assert cursor.get() == 8


def _batch(items: List[Any]) -> bytes:
    records = [
        {"seq_num": seq, "body": json.dumps({"data": json.dumps(seq), "id": pid})}
        for seq, pid in items
    ]
    return f"event: batch\ndata: {json.dumps({'records': records})}\n\n".encode()


def test_v2_batches_mixing_fresh_repeated_and_trimmed_ids(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(_batch([(i, f"id{i}") for i in range(5)]))  # fresh: bulk path, then trimmed
        conn.body(_batch([(5, "id4"), (6, "id6"), (7, "id6"), (8, None)]))  # per-record path
        conn.body(_batch([(9, "id0"), (10, "id9")]))  # id0 was trimmed: fresh again
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    cursor = MemoryCursor()
    session = Session("s", token=SECRET, api_url=srv.url)
    iterator = session.iter_out(dedup_window=2, cursor=cursor)
    records = take(iterator, 8)
    iterator.close()
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 6, 8, 9]
    assert records[-1]["part_id"] == "id0"
