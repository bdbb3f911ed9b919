"""A local server in a child process, so that its memory and CPU can be measured alone.

Run as ``python _server_proc.py '<json>'`` with ``{"limits": {...}, "db": ..., "nofile": n}``:
prints one JSON line ``{"port": ...}`` once listening, then answers each line read
on stdin (``stats``) with one JSON line, and exits on ``quit`` or end of input.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    options = json.loads(sys.argv[1])
    from sessions_client.testing import LocalServer, ServerLimits

    server = LocalServer(db=options.get("db", ":memory:"), limits=ServerLimits(**options["limits"]))
    server.create_session("victim")
    if options.get("nofile"):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (options["nofile"], hard))
    print(json.dumps({"port": server.port}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(
            json.dumps(
                {
                    "open": server.open_connections,
                    "refused": server.refused_connections,
                    "cpu": time.process_time(),
                }
            ),
            flush=True,
        )
    server.close()


if __name__ == "__main__":
    main()
