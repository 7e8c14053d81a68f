"""Graceful stop on Ctrl-C and SIGTERM: an event to poll, not an exception raised anywhere."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl-C) and SIGTERM set while the block runs; the previous handlers are
    restored after it. Main thread only (Python's rule for signal handlers).

    Why not KeyboardInterrupt: raised while confluent-kafka ran a delivery report inside ``poll``, it
    surfaced as ``SystemError: ... returned NULL without setting an exception`` and the producer died
    without flushing (seen when a benchmark stopped ``eventlake produce`` with SIGINT)."""
    event = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
