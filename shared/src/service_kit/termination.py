"""Runs a step as soon as the process is asked to stop, before uvicorn drains.

uvicorn's graceful shutdown closes the listening socket, then waits for every
open connection to finish, and only then runs the lifespan's shutdown. An event
stream lasts as long as its upstream keeps it open, so it would hold a stopping
replica for the whole graceful timeout and then be cut. :func:`on_termination`
chains a step in front of the signal handlers uvicorn installed (it installs
them with ``signal.signal`` before the lifespan starts), so the step runs when
SIGTERM or SIGINT arrives and uvicorn's own handling goes on unchanged.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def on_termination(step: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT also schedule ``step`` on the running loop.

    Signals can only be handled on the main thread; elsewhere (an embedding test
    server) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(step)
        before = previous[sig]
        if callable(before):
            before(sig, frame)
        elif before == signal.SIG_DFL:
            # Nothing was handling it: do what the signal would have done.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig in SIGNALS:
            if signal.getsignal(sig) is handle:
                signal.signal(sig, previous[sig])
