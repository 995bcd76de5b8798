"""The one place that knows about threads: a bounded worker pool with per-job deadlines.

Jobs get a `Deadline` when they start. A job is expected to respect it, but the pool does not
trust it to: a job still running a grace period after its deadline is abandoned (its
`Deadline` is cancelled, which runs the closers the job registered, e.g. closing its socket),
its item is reported through `on_overrun`, and a fresh worker takes its place, so one hung
host never stalls the run or shrinks the pool. Workers are daemon threads, so a job stuck in
a call that cannot be interrupted (a DNS lookup) cannot keep the process alive either.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: How long past its deadline a job may run before the pool gives up on it.
DEFAULT_GRACE_S = 1.0


class Deadline:
    """A job's time budget, and the hooks to stop it when the budget is blown."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self._closers: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self.cancelled = False

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.expires_at

    def on_cancel(self, closer: Callable[[], object]) -> None:
        """Register something that unblocks the job (closing a socket); runs at once if already cancelled."""
        with self._lock:
            if not self.cancelled:
                self._closers.append(closer)
                return
        _quietly(closer)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            closers, self._closers = self._closers, []
        for closer in closers:
            _quietly(closer)


def _quietly(closer: Callable[[], object]) -> None:
    try:
        closer()
    except Exception:  # noqa: BLE001 - a closer failing must not take the pool down with it
        pass


@dataclass
class _Running(Generic[T]):
    item: T
    deadline: Deadline


def run_pool(
    items: Sequence[T],
    job: Callable[[T, Deadline], R],
    *,
    forks: int,
    deadline_s: float,
    on_overrun: Callable[[T, Deadline], R],
    on_error: Callable[[T, BaseException], R],
    grace_s: float = DEFAULT_GRACE_S,
) -> Iterator[tuple[T, R]]:
    """Run `job` over `items` with at most `forks` at once; yield (item, result) as each finishes.

    Closing the iterator early (an exception or Ctrl-C in the consumer) stops new jobs from
    starting and cancels the running ones, so their connections are closed promptly.
    """
    todo: queue.SimpleQueue[T] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    done: queue.SimpleQueue[tuple[int, R]] = queue.SimpleQueue()
    running: dict[int, _Running[T]] = {}
    lock = threading.Lock()
    stopping = threading.Event()
    ids = iter(range(1 << 62))

    def worker() -> None:
        while not stopping.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            deadline = Deadline(deadline_s)
            with lock:
                key = next(ids)
                running[key] = _Running(item, deadline)
            try:
                result = job(item, deadline)
            except BaseException as exc:  # noqa: BLE001 - every host must end with a result
                result = on_error(item, exc)
            done.put((key, result))
            if deadline.cancelled:
                return  # abandoned as overrun: a replacement worker already took this slot

    def start_worker() -> None:
        threading.Thread(target=worker, name="fleet-worker", daemon=True).start()

    for _ in range(max(1, min(forks, len(items)))):
        start_worker()

    remaining = len(items)
    try:
        while remaining:
            # Sleep until a result lands or the earliest running job would overrun, rather than
            # polling: a job that starts meanwhile cannot overrun before `deadline_s + grace_s`.
            with lock:
                first = min((e.deadline.expires_at for e in running.values()), default=None)
            horizon = deadline_s + grace_s if first is None else first + grace_s - time.monotonic()
            try:
                key, result = done.get(timeout=min(max(horizon, 0.0) + 0.001, 1.0))
            except queue.Empty:
                pass
            else:
                with lock:
                    entry = running.pop(key, None)
                if entry is not None:  # None: already reported as overrun
                    remaining -= 1
                    yield entry.item, result
                continue
            now = time.monotonic()
            with lock:
                overrun = [(k, e) for k, e in running.items() if now > e.deadline.expires_at + grace_s]
                for key, _ in overrun:
                    del running[key]
            for _, entry in overrun:
                entry.deadline.cancel()
                remaining -= 1
                start_worker()
                yield entry.item, on_overrun(entry.item, entry.deadline)
    finally:
        stopping.set()
        with lock:
            abandoned = list(running.values())
            running.clear()
        for entry in abandoned:
            entry.deadline.cancel()
