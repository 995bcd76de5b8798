"""The run loop: every host diagnosed, each result judged and handed to observers as it lands.

Like nornir's processors, observers are told of the run as it goes: the journal appends each
host's entry the moment it lands, the terminal's progress line counts verdicts. The loop ends on
its own, or on Ctrl-C or SIGTERM with the hosts diagnosed so far (the others are named as never
diagnosed). `fleet diagnose`, `diagnose --watch` and `fleet fix`'s diagnoses (the plan's, the
final one) run their hosts through it; `fleet fix`'s re-check of one host before acting calls
fleet.diagnose.host_result, the same interpretation, directly.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Protocol, Sequence

from fleet import gcpolicy
from fleet.diagnose import Prepared, RunOptions
from fleet.models import Connection, ExitCode, Host, HostResult
from fleet.report import document
from fleet.report.files import write_private
from fleet.report.model import HostEntry, Report, RunbookRef
from fleet.report.render import write_reports
from fleet.runbook import Runbook, host_params
from fleet.signals import Terminated, sigterm_raises
from fleet.transport_fix import TransportContext, with_transport_fix
from fleet.workers import Sharded, run_prepared


class Observer(Protocol):
    """What the loop tells of a run as it goes."""

    def start(self, report: Report, hosts: Sequence[str]) -> None:
        """The run begins on `hosts`; `report` holds what is known before any host."""

    def host_started(self, name: str) -> None:
        """A host begins (called from a worker thread: keep it to setting a value)."""

    def host_done(self, entry: HostEntry) -> None:
        """A host's entry, the moment it lands."""

    def finish(self, report: Report) -> None:
        """The run ended (interrupted or not): the whole report."""


@dataclass(frozen=True)
class Outcome:
    """A run's report and, if Ctrl-C or SIGTERM cut it short, its exit code."""

    report: Report
    interrupted: ExitCode | None = None


def describe(prepared: Prepared | Sharded, runbook: Runbook, options: RunOptions, inventory: str, limit: str | None,
             started_at: str, shown_options: Mapping[str, object]) -> Report:
    """The report of a run before any host: runbook, its parameters as given for every host (redacted), inventory."""
    params = prepared.redactor.redact_params(host_params(runbook, {}, options.overrides), runbook.parameter_names())
    return Report(RunbookRef(runbook.name, runbook.description, runbook.path), (), inventory, limit, params,
                  shown_options, started_at)


def results(prepared: Prepared | Sharded, runbook: Runbook, options: RunOptions,
            observers: Sequence[Observer] = ()) -> Iterator[tuple[HostResult, HostEntry]]:
    """Each host's result and report entry as soon as the host is done (transport verdicts with
    their fixes), observers told. The run's transports are closed when the iteration ends."""
    context = TransportContext(prepared.transports.get(Connection.SSH), options.ssh.known_hosts_files()[0])

    def started(name: str) -> None:
        for observer in observers:
            observer.host_started(name)

    for result in run_prepared(prepared, runbook, options, started):
        result = with_transport_fix(result, context)
        entry = document.entry(result)
        # The caller keeps the entry before any observer sees it: a SIGTERM landing in an observer
        # (the journal's write) must not lose a host the journal may already hold.
        yield result, entry
        for observer in observers:
            observer.host_done(entry)


def run(prepared: Prepared | Sharded, runbook: Runbook, options: RunOptions, report: Report,
        observers: Sequence[Observer] = ()) -> Outcome:
    """Diagnose every prepared host; the whole run's report, hosts in inventory order.

    `report`: the run as `describe` gives it. Ctrl-C and SIGTERM end the run early with what it
    has: the report is partial and names the hosts never diagnosed.
    """
    clock = time.monotonic()
    gcpolicy.settle()  # set up (SSH stack imported, runbook and inventory loaded): see fleet/gcpolicy.py
    for observer in observers:
        observer.start(report, [h.name for h in prepared.hosts])
    entries: list[HostEntry] = []
    interrupted = None
    try:
        with sigterm_raises():
            for _, entry in results(prepared, runbook, options, observers):
                entries.append(entry)
    except KeyboardInterrupt:
        interrupted = ExitCode.INTERRUPTED
    except Terminated:
        interrupted = ExitCode.TERMINATED
    ordered = in_order(entries, prepared.hosts)
    done = {e.name for e in entries}
    missing = tuple(h.name for h in prepared.hosts if h.name not in done)
    notes = (*report.notes, *prepared.notes, *([f"not diagnosed: {', '.join(missing)}"] if missing else []))
    report = replace(report, hosts=tuple(ordered), duration_s=time.monotonic() - clock,
                     partial=interrupted is not None, notes=notes, not_diagnosed=missing)
    for observer in observers:
        observer.finish(report)
    return Outcome(report, interrupted)


def in_order(done: Sequence[HostEntry], hosts: Sequence[Host]) -> list[HostEntry]:
    """Entries in the inventory's order (they land in the order hosts finish)."""
    order = {h.name: i for i, h in enumerate(hosts)}
    return sorted(done, key=lambda e: order[e.name])


def write_files(report: Report, out: str | os.PathLike, stem: str, formats: Sequence[str]) -> tuple[dict, list[str],
                                                                                                      str | None]:
    """The run's report files and its retry file (`--limit @FILE`, as Ansible's): the document, their paths,
    and the retry file's path (None when no host needs a re-run)."""
    doc = document.to_json(report)
    paths = write_reports(doc, str(out), stem, formats)
    names = report.retry_hosts()
    retry = None
    if names:
        retry = os.path.join(str(out), f"{stem}.retry")
        write_private(retry, "\n".join(names) + "\n")
    return doc, paths, retry
