"""Run by ``test_pool_gevent.py`` in its own process: ``gevent.monkey.patch_all()`` must
come first, and must not touch the pytest process.

One ``Client`` against the server at ``$LOAD_URL`` (key ``$LOAD_KEY``): ``$LOAD_READERS``
greenlets each hold an open ``iter_out`` reader on session ``$LOAD_SESSION`` while
another greenlet makes ordinary calls (``append_out``, ``get_session``); every reader
must receive every appended record. The calls start once the file ``$LOAD_GATE``
exists (the parent creates it when the server has seen every reader's request).
Prints one JSON line with what happened.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

import gevent  # noqa: E402

from sessions_client import Client  # noqa: E402

RECORDS = 10


def main() -> None:
    url, key = os.environ["LOAD_URL"], os.environ["LOAD_KEY"]
    session_id = os.environ["LOAD_SESSION"]
    readers = int(os.environ["LOAD_READERS"])
    received: List[List[int]] = [[] for _ in range(readers)]
    errors: List[str] = []
    timings: List[float] = []

    with Client(key, url, timeout=(5, 10)) as client:

        def read(index: int) -> None:
            try:
                for record in client.session(session_id).iter_out(timeout_seconds=30):
                    received[index].append(record["seq"])
                    if len(received[index]) == RECORDS:
                        return
            except BaseException as exc:  # noqa: BLE001 - reported in the result
                errors.append(f"reader {index}: {exc!r}")

        def calls() -> None:
            session = client.session(session_id)
            for n in range(RECORDS):
                started = time.monotonic()
                session.append_out({"n": n})
                client.get_session(session_id)
                timings.append(time.monotonic() - started)

        greenlets = [gevent.spawn(read, i) for i in range(readers)]
        gate, waited = os.environ["LOAD_GATE"], 0.0
        while not os.path.exists(gate) and waited < 30:  # every reader is open
            gevent.sleep(0.02)
            waited += 0.02
        caller = gevent.spawn(calls)
        caller.join(timeout=30)
        gevent.joinall(greenlets, timeout=30)
        result: Dict[str, Any] = {
            "patched": monkey.is_module_patched("socket"),
            "gate_opened": os.path.exists(gate),
            "calls_done": caller.ready(),
            "calls_error": None if caller.exception is None else repr(caller.exception),
            "readers_done": sum(1 for g in greenlets if g.ready()),
            "received": received,
            "timings": timings,
            "errors": errors,
        }
        gevent.killall([g for g in greenlets if not g.ready()], timeout=5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
