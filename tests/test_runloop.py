"""The run loop (fleet/runloop.py) on real local hosts: observers see every host start and land,
the report keeps the inventory's order, and a SIGTERM mid-run ends it with the rest named."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from fleet import runloop
from fleet.diagnose import RunOptions, prepare
from fleet.models import Connection, ExitCode, Host
from fleet.report import document
from fleet.report.model import HostEntry, Report
from fleet.runbook import load_runbook

COMMAND = Path(__file__).resolve().parent / "fixtures" / "runbooks" / "command.yml"


class Recorder:
    """An observer that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def start(self, report: Report, hosts) -> None:
        self.calls.append(("start", tuple(hosts)))

    def host_started(self, name: str) -> None:
        with self.lock:
            self.calls.append(("host_started", name))

    def host_done(self, entry: HostEntry) -> None:
        self.calls.append(("host_done", entry.name))

    def finish(self, report: Report) -> None:
        self.calls.append(("finish", report))


def local(name: str, cmd: str) -> Host:
    return Host(name, "localhost", connection=Connection.LOCAL, vars={"cmd": cmd})


def run(hosts: list[Host], observers=()) -> runloop.Outcome:
    book = load_runbook(str(COMMAND))
    options = RunOptions(timeout_s=30, forks=4)
    prepared = prepare(hosts, book, options)
    described = runloop.describe(prepared, book, options, "inv.yml", None, "2026-11-30T09:00:00+00:00", {})
    return runloop.run(prepared, book, options, described, observers)


def test_observers_see_each_host_start_and_land_and_the_report_keeps_inventory_order():
    # The first host finishes last: entries land out of order, the report puts them back.
    hosts = [local("slow", "sleep 1; echo a"), local("fails", "exit 3"), local("quick", "echo b")]
    recorder = Recorder()
    outcome = run(hosts, [recorder])
    assert outcome.interrupted is None
    report = outcome.report
    assert [h.name for h in report.hosts] == ["slow", "fails", "quick"]
    assert {h.name: (h.verdict, h.problem, h.reached) for h in report.hosts} == {
        "slow": ("ran", False, True), "fails": ("failed", True, True), "quick": ("ran", False, True)}
    assert report.retry_hosts() == ["fails"] and not report.partial and report.not_diagnosed == ()
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds[0] == "start" and kinds[-1] == "finish" and recorder.calls[-1][1] == report
    assert recorder.calls[0][1] == ("slow", "fails", "quick")
    done = [name for kind, name in recorder.calls if kind == "host_done"]
    assert sorted(done) == ["fails", "quick", "slow"] and done[-1] == "slow"
    for name in done:  # a host lands after it started
        assert recorder.calls.index(("host_started", name)) < recorder.calls.index(("host_done", name))
    # The document the files are written from says the same as the typed report.
    doc = document.to_json(report)
    assert doc["summary"]["problems"] == 1 and [h["name"] for h in doc["hosts"]] == ["slow", "fails", "quick"]
    assert document.hosts_of(doc) == list(report.hosts)


def test_sigterm_ends_the_run_with_the_hosts_never_diagnosed_named():
    hosts = [local("first", "echo a"), *(local(f"later{i}", "sleep 3") for i in range(3))]

    class TerminateAfterFirst(Recorder):
        def host_done(self, entry: HostEntry) -> None:
            super().host_done(entry)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    outcome = run(hosts, [TerminateAfterFirst()])
    assert signal.getsignal(signal.SIGTERM) == previous  # the loop's handler is gone again
    assert outcome.interrupted is ExitCode.TERMINATED
    report = outcome.report
    assert [h.name for h in report.hosts] == ["first"] and report.partial
    assert report.not_diagnosed == ("later0", "later1", "later2")
    assert "not diagnosed: later0, later1, later2" in report.notes
    assert report.retry_hosts() == ["later0", "later1", "later2"]
    assert document.to_json(report)["summary"]["headline"].startswith("Interrupted: 3 of 4 hosts never diagnosed.")
