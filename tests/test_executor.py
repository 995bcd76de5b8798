"""The worker pool: bounded, streaming, and never stalled by a job that ignores its deadline."""

from __future__ import annotations

import threading
import time

from fleet.executor import Deadline, run_pool


def test_results_stream_as_jobs_finish_and_concurrency_is_bounded():
    live, peak, lock = [0], [0], threading.Lock()

    def job(n: int, deadline: Deadline) -> int:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.02 * (n % 3))
        with lock:
            live[0] -= 1
        return n * n

    results = dict(run_pool(list(range(40)), job, forks=5, deadline_s=5, on_overrun=lambda i, d: -1,
                            on_error=lambda i, e: -2))
    assert results == {n: n * n for n in range(40)}
    assert peak[0] == 5


def test_a_job_ignoring_its_deadline_is_abandoned_and_its_closers_run():
    closed = threading.Event()
    release = threading.Event()

    def job(n: int, deadline: Deadline) -> str:
        if n == 0:
            deadline.on_cancel(closed.set)
            release.wait(30)  # a stuck call that honours nothing
            return "late"
        return "ok"

    results = dict(run_pool([0, 1, 2, 3], job, forks=2, deadline_s=0.3, grace_s=0.2,
                            on_overrun=lambda i, d: "overrun", on_error=lambda i, e: "error"))
    release.set()
    assert results == {0: "overrun", 1: "ok", 2: "ok", 3: "ok"}
    assert closed.is_set()


def test_a_job_that_raises_gets_a_result():
    def job(n: int, deadline: Deadline) -> str:
        raise RuntimeError("boom")

    assert dict(run_pool([1], job, forks=1, deadline_s=1, on_overrun=lambda i, d: "o",
                         on_error=lambda i, e: f"error: {e}")) == {1: "error: boom"}


def test_closing_early_cancels_running_jobs():
    cancelled = threading.Event()

    def job(n: int, deadline: Deadline) -> int:
        if n == 0:
            return 0
        deadline.on_cancel(cancelled.set)
        cancelled.wait(10)
        return n

    pool = run_pool([0, 1], job, forks=2, deadline_s=30, on_overrun=lambda i, d: -1, on_error=lambda i, e: -2)
    assert next(pool) == (0, 0)
    pool.close()
    assert cancelled.wait(2)
