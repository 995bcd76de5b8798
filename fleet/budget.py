"""A time budget that really interrupts: work on one host's output that runs past it is stopped.

Interpretation (split, redact, parse, rules) runs in the controller on text a host chose. Its
patterns are linear and its inputs capped, but a budget is the guarantee: past it the work is
interrupted with `OverBudget`, the host is `inconclusive` saying so, and the run goes on.

On the main thread the interrupt is SIGALRM: CPython runs signal handlers between bytecodes
and also from inside a long `re` match (the matcher polls for signals), so a pure-Python loop
and a backtracking regex both stop. Elsewhere it is an asynchronous exception set on the
thread, which stops Python code at its next bytecode. Neither stops one long C call (RE2,
`str.split`); every such call fleet makes is linear in input it has already capped.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class OverBudget(BaseException):
    """The budget ran out. A BaseException, so that no parser's or rule's `except Exception` swallows it."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Run the body for at most `seconds` of wall time, else raise OverBudget inside it.

    The caller catches OverBudget outside the `with`: it may also surface as the body ends.
    """
    if threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            yield
    else:
        with _async_exception(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    armed = True

    def expire(signum, frame):  # noqa: ANN001 - signal handler signature
        if armed:
            raise OverBudget()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    """Deliver `exc` to the thread at its next bytecode; None takes back one not yet delivered."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


@contextmanager
def _async_exception(seconds: float) -> Iterator[None]:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def expire() -> None:
        with lock:
            if state["running"]:
                state["fired"] = True
                _set_async_exc(thread_id, OverBudget)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["running"] = False
            if state["fired"]:
                # Fired as the body ended: take back an exception not yet delivered.
                _set_async_exc(thread_id, None)
