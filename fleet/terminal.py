"""What the operator sees in the terminal: live progress while hosts run, and the summary at the end.

Host output is untrusted: every host-derived string goes through `safe()` (control characters
and ANSI escapes removed) and into rich as plain Text, never as markup.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleet.models import Host
from fleet.redact import SECRET_NAME
from fleet.report.document import hosts_of
from fleet.report.diff import Diff
from fleet.report.model import HostEntry, Report
from fleet.sanitize import strip_control

if TYPE_CHECKING:
    from fleet.runbook import Runbook
    from fleet.runbook_cases import CaseResult
    from fleet.transport.ssh import Endpoint

_STYLE = {"ok": "green", "warning": "yellow", "critical": "red", "unknown": "magenta"}
# Off a terminal lines are as long as they need to be (see output_console).
_UNWRAPPED = 100_000
_RUNNING_SHOWN = 4
_HOSTS_SHOWN = 10
_HOSTS_LISTED = 50


def safe(value: Any) -> str:
    """A host-derived value fit for a terminal: no escape sequences, no control characters."""
    return strip_control(value)


def output_console(stderr: bool = False) -> Console:
    """The console for a command's result: stdout (stderr when stdout carries JSON).

    Off a terminal nothing is wrapped: a line cut at 80 columns splits host names mid-word in a
    file or a pipe, and greps and pastes break on it.
    """
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(file=stream, highlight=False)
    return Console(file=stream, highlight=False, width=_UNWRAPPED)


class Progress:
    """Hosts done/total, per-verdict counters, elapsed time and the hosts still running, redrawn in place.

    Silent off a terminal. `host_started` is called from worker threads; it only sets a dict item.
    """

    def __init__(self, console: Console, total: int):
        self.console, self.total = console, total
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self.running: dict[str, float] = {}
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

    # An observer of the run loop (fleet.runloop.Observer): the start and end of a run draw nothing.
    def start(self, report: Report, hosts: Sequence[str]) -> None:
        pass

    def finish(self, report: Report) -> None:
        pass

    def host_started(self, name: str) -> None:
        self.running[name] = time.monotonic()

    def host_done(self, entry: HostEntry) -> None:
        self.running.pop(entry.name, None)
        self.counts[entry.verdict] += 1

    def __rich__(self) -> Text:
        done = sum(self.counts.values())
        now = time.monotonic()
        text = Text(f"{done}/{self.total} hosts  {now - self.started:5.1f}s  ")
        for verdict, n in self.counts.most_common():
            text.append(f"{safe(verdict)}={n} ", style="green" if verdict == "healthy" else "red")
        # The longest-running hosts are the ones an operator waits for: name them, oldest first.
        running = sorted(list(self.running.items()), key=lambda kv: kv[1])
        if running:
            shown = ", ".join(f"{safe(name)} {now - since:.0f}s" for name, since in running[:_RUNNING_SHOWN])
            more = f" (+{len(running) - _RUNNING_SHOWN})" if len(running) > _RUNNING_SHOWN else ""
            text.append(f" running: {shown}{more}", style="dim")
        text.truncate(max(20, self.console.width - 1))
        return text


@dataclass(frozen=True)
class RunFiles:
    """What a run left beside its reports, for the last lines of the summary."""

    paths: tuple[str, ...]
    retry: str | None = None
    retry_hosts: int = 0
    new_keys: int = 0
    known_hosts: str = ""


def print_summary(console: Console, doc: Mapping[str, Any], files: RunFiles) -> None:
    """Causes with their hosts and fixes, where the reports are, and the headline last (it must not scroll off)."""
    summary = doc["summary"]
    for n, cause in enumerate(summary["causes"], 1):
        names = cause["hosts"]
        hosts = ", ".join(names[:_HOSTS_SHOWN]) + (f" (+{len(names) - _HOSTS_SHOWN} more)"
                                                   if len(names) > _HOSTS_SHOWN else "")
        line = Text(f"{n}. ")
        line.append(safe(cause["verdict"]), style=_STYLE.get(cause["severity"], ""))
        line.append(f", {cause['count']} host{'s' if cause['count'] != 1 else ''}: {safe(hosts)}")
        console.print(line, soft_wrap=True)
        console.print(Text(f"   {safe(cause['summary'])}"), soft_wrap=True)
        shared = cause["fix"] or len(cause.get("fixes") or ()) < 2
        for fixes in ([{"fix": cause["fix"]}] if shared else cause["fixes"]):
            if not shared:  # hosts of one cause with fixes of their own: each set with its own
                console.print(Text(f"   fix for {safe(', '.join(fixes['hosts']))}:"), soft_wrap=True)
            for i, fix in enumerate(fixes["fix"]):
                console.print(Text(f"   {'fix: ' if i == 0 else '     '}{safe(fix)}"), soft_wrap=True)
    _print_not_judged(console, doc)
    _print_runbook_verdicts(console, doc)
    for path in files.paths:
        console.print(Text(f"report: {path}"), soft_wrap=True)
    if files.retry:
        console.print(Text(f"retry: {files.retry} ({files.retry_hosts} host{'s' if files.retry_hosts != 1 else ''};"
                           f" re-run them with --limit @{files.retry})"), soft_wrap=True)
    if files.new_keys:
        console.print(Text(f"{files.new_keys} new host key{'s' if files.new_keys != 1 else ''} recorded in "
                           f"{files.known_hosts}"), soft_wrap=True)
    if doc.get("partial"):
        console.print(Text("PARTIAL: the run was interrupted.", style="bold yellow"))
    worst = "ok" if summary["problems"] == 0 and not doc.get("not_diagnosed") else "critical"
    console.print(Text(safe(summary["headline"]), style=f"bold {_STYLE[worst]}"), soft_wrap=True)


def _print_not_judged(console: Console, doc: Mapping[str, Any]) -> None:
    """Healthy hosts whose summary says a check was not judged, grouped by what was not judged and why."""
    groups: dict[str, list[str]] = {}
    for host in hosts_of(doc):
        if host.not_judged:
            groups.setdefault(host.summary.rsplit("; ", 1)[-1], []).append(host.name)
    for caveat, names in groups.items():
        console.print(Text(f"healthy, but {safe(caveat)}: {safe(', '.join(names))}", style="yellow"), soft_wrap=True)


def _print_runbook_verdicts(console: Console, doc: Mapping[str, Any]) -> None:
    """With several runbooks: each host's verdict per runbook (problem hosts only past a screenful)."""
    hosts = [h for h in hosts_of(doc) if h.runbooks]
    if not hosts:
        return
    if len(hosts) > _HOSTS_LISTED:
        hosts = [h for h in hosts if h.problem]
    console.print(Text("verdicts per runbook:", style="bold"))
    for host in hosts:
        line = Text(f"   {safe(host.name)}: ")
        for i, verdict in enumerate(host.runbooks):
            line.append(", " if i else "")
            line.append(f"{safe(verdict['runbook'])} ")
            line.append(safe(verdict["verdict"]), style=_STYLE.get(verdict["severity"], ""))
        console.print(line, soft_wrap=True)


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
    """A host as `fleet hosts` shows it; variables whose names look secret are masked.

    `vars` are what the runbook gets (templates rendered; the ansible_* connection settings fleet
    keeps are as written, their outcome being the connection columns), `templates` the templates as
    written, `problem` why fleet will not run on the host.
    """
    from fleet.inventory.templating import shown
    from fleet.transport.ssh import jump_hosts

    def masked(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: "****" if SECRET_NAME.search(k) else shown(v) for k, v in values.items()}

    proxy = endpoint.proxy_command if endpoint else None
    return {
        "name": host.name,
        "connection": host.plugin or host.connection.value,
        "address": endpoint.hostname if endpoint else host.address,
        "port": endpoint.port if endpoint else None,
        "user": endpoint.user if endpoint else None,
        "keys": list(endpoint.key_files) if endpoint else [],
        # What fleet connects through: each jump host, or the ProxyCommand.
        "jump": [f"ProxyCommand {proxy}"] if proxy else
        [f"{j.user}@{j.hostname}:{j.port}" for j in jump_hosts(endpoint.jump)] if endpoint else [],
        "proxy_command": proxy,
        "groups": list(host.groups),
        "vars": masked({k: host.templates[k] if k.startswith("ansible_") and k in host.templates else v
                        for k, v in host.vars.items()}),
        "templates": masked(host.templates),
        "problem": f"{host.problem.status.value}: {host.problem.reason}" if host.problem else None,
    }


def print_hosts(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(header_style="bold")
    for column in ("host", "connect to", "user", "groups", "variables"):
        table.add_column(column, overflow="fold")
    for row in rows:
        where = "local" if row["connection"] == "local" else f"{row['address']}:{row['port']}"
        if row["jump"]:
            where += " via " + " -> ".join(row["jump"])
        if row["problem"]:
            where = f"not run: {row['problem']}"
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
    """Parameters, probes and the decision table of a runbook; shell text printed as written, never folded."""
    console.print(Text(safe(f"{runbook.name}: {runbook.description}"), style="bold"), soft_wrap=True)
    console.print(Text(safe(runbook.path), style="dim"), soft_wrap=True)
    params = Table(title="parameters", header_style="bold", title_justify="left")
    for column in ("name", "default", "description"):
        params.add_column(column, overflow="fold")
    for p in runbook.parameters:
        params.add_row(p.name, Text(safe(repr(p.default))), Text(safe(p.description)))
    console.print(params)
    if runbook.prelude.strip():
        console.print(Text("prelude (shell functions before each of the runbook's own probe commands):", style="bold"))
        _print_shell(console, runbook.prelude)
    shared = list(dict.fromkeys(text for p in runbook.probes for text in p.libraries))
    if shared:
        console.print(Text("shared shell (sent once, run before each built-in probe that uses it):", style="bold"))
        for text in shared:
            _print_shell(console, text)
    console.print(Text("probes (one script, in this order):", style="bold"))
    for p in runbook.probes:
        console.print(Text(f"\n{safe(p.name)}", style="bold cyan").append(
            safe(f"  parser {p.parser}, timeout {p.timeout_s:g}s{': ' + p.description if p.description else ''}"),
            style="default"), soft_wrap=True)
        if p.inputs:
            bound = ", ".join(f"{name}={'{{ ' + b.param + ' }}' if b.param else repr(b.value)}"
                              f"{' (parser only)' if name in p.parse_only else ''}" for name, b in p.inputs)
            console.print(Text(safe(f"  inputs: {bound}"), style="dim"), soft_wrap=True)
        _print_shell(console, p.command)
    rules = Table(title="decision table (first match wins)", header_style="bold", title_justify="left")
    for column in ("#", "verdict", "severity", "when"):
        rules.add_column(column, overflow="fold")
    for n, rule in enumerate(runbook.rules, 1):
        rules.add_row(str(n), rule.verdict, rule.severity.value, Text(safe(" ".join(rule.when.split()))))
    rules.add_row("", "inconclusive", "unknown", Text("no rule matched"))
    console.print()
    console.print(rules)
    remedies = Table(title="remedies (fleet fix; first whose `when` holds)", header_style="bold", title_justify="left")
    for column in ("verdict", "remedy", "risk", "when", "what it does"):
        remedies.add_column(column, overflow="fold")
    for rule in runbook.rules:
        for remedy in rule.remedies:
            remedies.add_row(rule.verdict, remedy.name, remedy.risk.value, Text(safe(remedy.when_source or "always")),
                             Text(safe(remedy.description)))
    if remedies.rows:
        console.print(remedies)


def _print_shell(console: Console, text: str) -> None:
    """Shell text indented by four, line for line as the runbook has it: long lines run on, unfolded."""
    for line in text.strip("\n").split("\n"):
        console.print(Text(f"    {safe(line)}"), soft_wrap=True)


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
