"""`fleet diagnose --watch SECONDS`: diagnose again and again, showing what changed each round.

For an engineer fixing by hand: each round is a whole diagnosis, compared with the round before
in the `fleet diff` view, until the fleet is healthy (`--until healthy`), the deadline passes,
or Ctrl-C. The last round's reports are written like a single diagnose run's.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from rich.console import Console
from rich.text import Text

from fleet.models import ExitCode, Host
from fleet.report import document
from fleet.report.diff import compare
from fleet.report.model import Report, RunbookRef
from fleet.runbook import Runbook
from fleet.terminal import RunFiles, print_diff, print_summary


@dataclass(frozen=True)
class WatchOptions:
    interval_s: float
    until_healthy: bool = False
    deadline_s: float | None = None


def one_round(hosts: Sequence[Host], runbook: Runbook, options: Any, inventory: str, limit: str | None,
              ask_passphrase: Callable[[str], str | None] | None) -> Report:
    """One whole diagnosis of the hosts through the run loop; Ctrl-C (or SIGTERM) ends the watch."""
    from fleet import runloop
    from fleet.diagnose import prepare

    started = dt.datetime.now(dt.timezone.utc)
    prepared = prepare(hosts, runbook, options, ask_passphrase)
    described = Report(RunbookRef(runbook.name, runbook.description, runbook.path), (), inventory, limit,
                       options={"hosts_selected": len(hosts)}, started_at=started.isoformat(timespec="seconds"))
    outcome = runloop.run(prepared, runbook, options, described)
    if outcome.interrupted is ExitCode.TERMINATED:
        raise SystemExit(ExitCode.TERMINATED)
    if outcome.interrupted is not None:
        raise KeyboardInterrupt
    return outcome.report


def watch(console: Console, rounds: Callable[[], Report], watch_options: WatchOptions,
          write: Callable[[Report], RunFiles]) -> int:
    """Run rounds until done; print each round's changes; write the last round's reports; the exit code."""
    started = time.monotonic()
    previous: Mapping[str, Any] | None = None
    kept: Report | None = None  # the round `previous` is the document of
    number = 0
    try:
        while True:
            number += 1
            report = rounds()
            doc = document.to_json(report)
            console.print(Text(f"round {number} at {dt.datetime.now().strftime('%H:%M:%S')}: "
                               f"{doc['summary']['headline']}", style="bold"), soft_wrap=True)
            if previous is not None:
                print_diff(console, compare(previous, doc))
            previous, kept = doc, report
            healthy = doc["summary"]["problems"] == 0
            if watch_options.until_healthy and healthy:
                break
            left = None if watch_options.deadline_s is None else watch_options.deadline_s - (time.monotonic() - started)
            if left is not None and left <= watch_options.interval_s:
                console.print(Text(f"deadline of {watch_options.deadline_s:g} s reached"), soft_wrap=True)
                break
            time.sleep(watch_options.interval_s)
    except KeyboardInterrupt:
        if previous is None or kept is None:
            return ExitCode.INTERRUPTED
        print_summary(console, previous, write(kept))
        return ExitCode.INTERRUPTED
    print_summary(console, previous, write(kept))
    return ExitCode.OK if previous["summary"]["problems"] == 0 else ExitCode.PROBLEMS
