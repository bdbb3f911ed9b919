"""Suite-wide set-up."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a non-interactive shell (`cmd &`) inherits
    # SIGINT ignored (POSIX), and so would the processes it starts: the Ctrl-C tests would
    # hang or fail. Python's own handler is what an interactive run has.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
