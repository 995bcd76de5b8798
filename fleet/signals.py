"""SIGTERM ends a run like Ctrl-C: raised as an exception where the run is, never swallowed."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class Terminated(BaseException):
    """SIGTERM arrived: finish like Ctrl-C, with a partial report.

    A BaseException, like KeyboardInterrupt: parsers and rules catch Exception, and a SIGTERM
    landing in one of them must still end the run, not be taken for that host's odd output.
    """


def _on_sigterm(signum, frame):  # noqa: ANN001 - signal handler signature
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread; the previous handler is restored after."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
