"""What the operator sees in the terminal: live progress while hosts run, and the summary at the end.

Host output is untrusted: every host-derived string goes through `safe()` (control characters
and ANSI escapes removed) and into rich as plain Text, never as markup.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleet.report.diff import Diff
from fleet.sanitize import strip_control

_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "magenta"}


def safe(value: Any) -> str:
    """A host-derived value fit for a terminal: no escape sequences, no control characters."""
    return strip_control(value)


class Progress:
    """Hosts done/total, per-verdict counters and elapsed time, redrawn in place; silent off a TTY."""

    def __init__(self, console: Console, total: int):
        self.console, self.total = console, total
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._live = Live(self._render(), console=console, transient=True, refresh_per_second=8) \
            if console.is_terminal else None

    def __enter__(self) -> "Progress":
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(*exc)

    def host_done(self, verdict: str) -> None:
        self.counts[verdict] += 1
        if self._live:
            self._live.update(self._render())

    def _render(self) -> Text:
        done = sum(self.counts.values())
        text = Text(f"{done}/{self.total} hosts  {time.monotonic() - self.started:5.1f}s  ")
        for verdict, n in self.counts.most_common():
            text.append(f"{safe(verdict)}={n} ", style="green" if verdict == "healthy" else "red")
        return text


def print_summary(console: Console, doc: Mapping[str, Any], paths: list[str]) -> None:
    """The headline, a table of causes with their hosts, each cause's fix, and where the reports are."""
    summary = doc["summary"]
    if doc.get("partial"):
        console.print(Text("PARTIAL: the run was interrupted; hosts not shown were not diagnosed.", style="bold yellow"))
    worst = "ok" if summary["problems"] == 0 else "critical"
    console.print(Text(safe(summary["headline"]), style=f"bold {_STYLE[worst]}"))
    causes = summary["causes"]
    if causes:
        table = Table(header_style="bold", expand=False)
        table.add_column("#", justify="right")
        table.add_column("verdict", no_wrap=True)
        table.add_column("hosts", overflow="fold")
        table.add_column("cause", overflow="fold", ratio=1)
        for n, cause in enumerate(causes, 1):
            names = cause["hosts"]
            hosts = ", ".join(names[:6]) + (f" (+{len(names) - 6})" if len(names) > 6 else "")
            table.add_row(str(n), Text(safe(cause["verdict"]), style=_STYLE.get(cause["severity"], "")),
                          Text(f"{cause['count']}: {safe(hosts)}"), Text(safe(cause["summary"])))
        console.print(table)
        for n, cause in enumerate(causes, 1):
            if cause["fix"]:
                console.print(Text(f"fix for #{n} ({safe(cause['verdict'])}):", style="bold"))
                for line in cause["fix"]:
                    console.print(Text(f"  {safe(line)}"), soft_wrap=True)
    for path in paths:
        console.print(Text(f"report: {path}"), soft_wrap=True)


def print_diff(console: Console, diff: Diff) -> None:
    """Counts per kind of change, then every host that did not simply stay healthy."""
    console.print(Text(", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in diff.counts().items()) or "no hosts"))
    table = Table(header_style="bold")
    for column in ("host", "change", "before", "after"):
        table.add_column(column)
    for change in diff.changes:
        if change.kind != "still_healthy":
            style = "green" if change.kind == "fixed" else "red" if change.kind.startswith("newly") else ""
            table.add_row(Text(safe(change.name)), Text(change.kind.replace("_", " "), style=style),
                          Text(safe(change.old_verdict or "-")), Text(safe(change.new_verdict or "-")))
    if table.row_count:
        console.print(table)
