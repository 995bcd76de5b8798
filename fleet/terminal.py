"""What the operator sees in the terminal: live progress while hosts run, and the summary at the end.

Host output is untrusted: every host-derived string goes through `safe()` (control characters
and ANSI escapes removed) and into rich as plain Text, never as markup.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleet.models import Host
from fleet.redact import SECRET_NAME
from fleet.report.diff import Diff
from fleet.sanitize import strip_control

if TYPE_CHECKING:
    from fleet.runbook import Runbook
    from fleet.runbook_cases import CaseResult
    from fleet.transport.ssh import Endpoint

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
        # Live redraws 8 times a second by calling __rich__, so the clock moves between hosts too.
        self._live = Live(self, console=console, transient=True, refresh_per_second=8) \
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

    def __rich__(self) -> Text:
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


def host_row(host: Host, endpoint: Endpoint | None) -> dict[str, Any]:
    """A host as `fleet hosts` shows it; variables whose names look secret are masked."""
    from fleet.transport.ssh import jump_hosts

    return {
        "name": host.name,
        "connection": host.connection.value,
        "address": endpoint.hostname if endpoint else host.address,
        "port": endpoint.port if endpoint else None,
        "user": endpoint.user if endpoint else None,
        "keys": list(endpoint.key_files) if endpoint else [],
        "jump": [f"{j.user}@{j.hostname}:{j.port}" for j in jump_hosts(endpoint.jump)] if endpoint else [],
        "groups": list(host.groups),
        "vars": {k: "****" if SECRET_NAME.search(k) else v for k, v in host.vars.items()},
    }


def print_hosts(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(header_style="bold")
    for column in ("host", "connect to", "user", "groups", "variables"):
        table.add_column(column, overflow="fold")
    for row in rows:
        where = "local" if row["connection"] == "local" else f"{row['address']}:{row['port']}"
        if row["jump"]:
            where += " via " + " -> ".join(row["jump"])
        variables = " ".join(f"{k}={v}" for k, v in row["vars"].items())
        # Inventory text is data: plain Text, never rich markup (`[link=...]` would become a live link).
        table.add_row(*(Text(safe(cell)) for cell in (row["name"], where, row["user"] or "", ",".join(row["groups"]),
                                                      variables)))
    console.print(table)
    console.print(Text(f"{len(rows)} host(s)"))


def print_runbooks(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(header_style="bold")
    for column in ("runbook", "origin", "description", "path"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(safe(row[k])) for k in ("name", "origin", "description", "path")))
    console.print(table)


def print_runbook(console: Console, runbook: Runbook) -> None:
    """Parameters, probes and the decision table of a runbook."""
    console.print(Text(safe(f"{runbook.name}: {runbook.description}"), style="bold"))
    console.print(Text(safe(runbook.path), style="dim"))
    params = Table(title="parameters", header_style="bold", title_justify="left")
    for column in ("name", "default", "description"):
        params.add_column(column, overflow="fold")
    for p in runbook.parameters:
        params.add_row(p.name, Text(safe(repr(p.default))), Text(safe(p.description)))
    console.print(params)
    probes = Table(title="probes (one script, in this order)", header_style="bold", title_justify="left")
    for column in ("probe", "parser", "timeout", "command"):
        probes.add_column(column, overflow="fold")
    for p in runbook.probes:
        probes.add_row(p.name, p.parser, f"{p.timeout_s:g}s", Text(safe(p.command.strip())))
    console.print(probes)
    rules = Table(title="decision table (first match wins)", header_style="bold", title_justify="left")
    for column in ("#", "verdict", "severity", "when"):
        rules.add_column(column, overflow="fold")
    for n, rule in enumerate(runbook.rules, 1):
        rules.add_row(str(n), rule.verdict, rule.severity.value, Text(safe(" ".join(rule.when.split()))))
    rules.add_row("", "inconclusive", "unknown", Text("no rule matched"))
    console.print(rules)


def print_case_results(console: Console, results: list[CaseResult]) -> None:
    table = Table(header_style="bold")
    for column in ("case", "expected", "got", "", "summary"):
        table.add_column(column, overflow="fold")
    for r in results:
        mark = Text("ok", style="green") if r.passed else Text("FAIL", style="bold red")
        table.add_row(Text(safe(r.case.name)), Text(safe(r.case.expected or "-")), Text(safe(r.diagnosis.verdict)), mark,
                      Text(safe(r.diagnosis.summary)))
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(Text(f"{len(results) - failed} passed, {failed} failed"))
