"""One client call in a child process, so that its peak memory is its own.

``python _client_proc.py <url> <call>`` prints one JSON line: the error type (or
"ok"), the peak RSS in MiB and the peak after the imports.
"""

from __future__ import annotations

import json
import resource
import sys


def _peak_mib() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to this program alone, whereas
    Linux carries ``ru_maxrss`` over ``exec`` from the parent (pytest) process."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    url, call = sys.argv[1], sys.argv[2]
    from sessions_client import Client, RetryPolicy, Session

    fast = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.01, total_timeout=20)
    session = Session("s", token="tr_dev_local", api_url=url, read_retry=fast, append_retry=fast)
    client = Client(token="tr_dev_local", api_url=url, retry=fast)
    idle = _peak_mib()
    calls = {
        "drain": lambda: session.drain_out(),
        "append": lambda: session.append_in({"x": 1}),
        "get": lambda: client.get_session("s"),
    }
    try:
        calls[call]()
        outcome = "ok"
    except Exception as exc:  # noqa: BLE001 - the type is the result
        outcome = type(exc).__name__
    print(json.dumps({"outcome": outcome, "peak_mib": _peak_mib(), "idle_mib": idle}))


if __name__ == "__main__":
    main()
