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
from fleet.runbook import Runbook
from fleet.terminal import RunFiles, print_diff, print_summary


@dataclass(frozen=True)
class WatchOptions:
    interval_s: float
    until_healthy: bool = False
    deadline_s: float | None = None


def one_round(hosts: Sequence[Host], runbook: Runbook, options: Any, inventory: str, limit: str | None,
              ask_passphrase: Callable[[str], str | None] | None) -> dict[str, Any]:
    """One whole diagnosis of the hosts, as a report document."""
    from fleet.diagnose import prepare, run

    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    prepared = prepare(hosts, runbook, options, ask_passphrase)
    entries = {r.host.name: document.host_entry(r) for r in run(prepared, runbook, options)}
    return document.build([entries[h.name] for h in hosts if h.name in entries], runbook=runbook, params={},
                          inventory=inventory, limit=limit, options={"hosts_selected": len(hosts)},
                          started_at=started.isoformat(timespec="seconds"), duration_s=time.monotonic() - clock,
                          notes=list(prepared.notes))


def watch(console: Console, rounds: Callable[[], Mapping[str, Any]], watch_options: WatchOptions,
          write: Callable[[Mapping[str, Any]], RunFiles]) -> int:
    """Run rounds until done; print each round's changes; write the last round's reports; the exit code."""
    started = time.monotonic()
    previous: Mapping[str, Any] | None = None
    number = 0
    try:
        while True:
            number += 1
            doc = rounds()
            console.print(Text(f"round {number} at {dt.datetime.now().strftime('%H:%M:%S')}: "
                               f"{doc['summary']['headline']}", style="bold"), soft_wrap=True)
            if previous is not None:
                print_diff(console, compare(previous, doc))
            previous = doc
            healthy = doc["summary"]["problems"] == 0
            if watch_options.until_healthy and healthy:
                break
            left = None if watch_options.deadline_s is None else watch_options.deadline_s - (time.monotonic() - started)
            if left is not None and left <= watch_options.interval_s:
                console.print(Text(f"deadline of {watch_options.deadline_s:g} s reached"), soft_wrap=True)
                break
            time.sleep(watch_options.interval_s)
    except KeyboardInterrupt:
        if previous is None:
            return ExitCode.INTERRUPTED
        print_summary(console, previous, write(previous))
        return ExitCode.INTERRUPTED
    print_summary(console, previous, write(previous))
    return ExitCode.OK if previous["summary"]["problems"] == 0 else ExitCode.PROBLEMS
