"""The `fleet` command. Thin: each command loads, calls the library, renders, and returns an exit code."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import jinja2
import typer
from rich.console import Console

from fleet import __version__, gcpolicy
from fleet.config import load_default_map
from fleet.errors import FleetError, InputError
from fleet.inventory import load_inventory
from fleet.models import Connection, ExitCode
from fleet.patterns import select
from fleet.report import document
from fleet.report.diff import compare
from fleet.report.journal import Journal
from fleet.report.journal import load as journal_load
from fleet.report.files import report_dir
from fleet.report.render import FORMATS, RENDERERS, render_diff_markdown, write_reports
from fleet.runbook import available_runbooks, load_runbook
from fleet.runbook_set import combine, load_runbooks
from fleet.sanitize import strip_control
from fleet.terminal import (Progress, RunFiles, host_row, output_console, print_case_results, print_diff, print_hosts,
                            print_runbook, print_runbooks, print_summary)
from fleet.varcheck import check_overrides

if TYPE_CHECKING:
    from fleet.diagnose import RunOptions
    from fleet.models import Host
    from fleet.report.model import Report
    from fleet.runbook import Runbook
    from fleet.transport.become import Secret

# The SSH stack (paramiko, fabric) is imported by the commands that connect, so `fleet report`,
# `fleet diff` and `--help` start without it.

app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  help="Agentless fleet diagnostics over SSH: run a runbook on every host, get a verdict per host.")


def _command(group: typer.Typer, name: str | None = None) -> Callable[[Callable], Callable]:
    """Register a command whose listing in `--help` is its docstring's whole first paragraph.

    Click cuts a command's description to the width left beside its name, mid-sentence, with
    "..." unless the short help is given; so it is always given.
    """
    def register(func: Callable) -> Callable:
        short = " ".join((func.__doc__ or "").split("\n\n")[0].split())
        return group.command(name, short_help=short)(func)
    return register


def _fail(message: object) -> typer.Exit:
    """One line on stderr, never wrapped (scripts grep it), and the input-error exit code."""
    sys.stderr.write(f"fleet: error: {' '.join(strip_control(message).split())}\n")
    return typer.Exit(ExitCode.USAGE)


def _load(path: Path):
    """Load the inventory and say on stderr what Ansible would warn about, and which reader
    resolved it when that was ansible-inventory."""
    inventory = load_inventory(path)
    for warning in inventory.warnings:
        sys.stderr.write(f"fleet: warning: {' '.join(warning.split())}\n")
    if "ansible-inventory" in inventory.reader:
        sys.stderr.write(f"fleet: {path}: resolved with ansible-inventory --list\n")
    return inventory


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Agentless fleet diagnostics over SSH."""


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--var takes KEY=VALUE, not {pair!r}")
        out[key.strip()] = value
    return out


def _parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InputError(f"--format takes a comma list of {', '.join(FORMATS)}, not {text!r}")
    return formats


def _become_password(ask: bool, path: Path | None) -> Secret | None:
    """The sudo password, asked once before any connection, or read from a file; never echoed or logged."""
    from fleet.transport.become import Secret

    if path is not None:
        try:
            with path.open(encoding="utf-8", newline="") as handle:  # no newline translation: CR is refused
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the become password: {getattr(exc, 'strerror', None) or exc}",
                             str(path)) from None
        # One line: sudo reads the password up to the first newline, and whatever follows it
        # would reach the shell behind sudo, as root.
        password = text[:-1] if text.endswith("\n") else text
        if any(c in password for c in "\r\n\0"):
            raise InputError("the become password file must hold one line (no CR, LF or NUL inside it)", str(path))
        return Secret(password)
    if not ask:
        return None
    if not sys.stdin.isatty():
        raise InputError("--ask-become-pass needs a terminal; use --become-password-file")
    try:
        return Secret(getpass.getpass("BECOME password: "))
    except EOFError:
        raise InputError("no become password given") from None


def _ask_passphrase(path: str) -> str | None:
    """Asked once per encrypted key; without a terminal (or on Ctrl-D) the key is skipped, and the report says so."""
    if not sys.stdin.isatty():
        return None
    try:
        return getpass.getpass(f"Passphrase for {path}: ") or None
    except EOFError:
        return None


@_command(app)
def diagnose(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="Ansible inventory: YAML, INI, a directory of them, or an executable dynamic inventory."),
    runbook_name: str = typer.Option("502", "--runbook", "-r", envvar="FLEET_RUNBOOK",
                                     help="Built-in runbook name or path to a runbook .yml; a comma list "
                                          "(502,host) runs several in one connection per host."),
    limit: Optional[str] = typer.Option(None, "--limit", "-l",
                                        help="Ansible host pattern: names, groups, globs, a,b, !x, &y, @retry-file."),
    forks: int = typer.Option(50, "--forks", "-f", min=1, max=1000, envvar="FLEET_FORKS", help="Hosts diagnosed at once."),
    workers: int = typer.Option(0, "--workers", min=0, max=256, envvar="FLEET_WORKERS",
                                help="Worker processes sharing the hosts (and --forks); 0 = one per 100 forks and "
                                     "250 hosts, up to the cores (1 at the default forks)."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.1, envvar="FLEET_CONNECT_TIMEOUT",
                                          help="Seconds for TCP connect and for the SSH handshake."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.5, envvar="FLEET_TIMEOUT",
                                  help="Hard per-host deadline in seconds; past it the host is closed and gets 'timeout'."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", envvar="FLEET_SSH_CONFIG", help="ssh_config file to use instead of ~/.ssh/config."),
    known_hosts: list[Path] = typer.Option([], "--known-hosts", envvar="FLEET_KNOWN_HOSTS", help="Extra known_hosts file (repeatable)."),
    accept_new: bool = typer.Option(False, "--accept-new",
                                    help="Record unknown host keys (never changed ones), like StrictHostKeyChecking=accept-new."),
    var: list[str] = typer.Option([], "--var", "-e", help="Runbook parameter KEY=VALUE for every host (repeatable)."),
    formats: str = typer.Option("json,md,html", "--format", envvar="FLEET_FORMAT",
                               help="Report formats, comma separated: json,md,html,junit."),
    out: Path = typer.Option(Path("reports"), "--out", "-o", envvar="FLEET_OUT", help="Directory for the reports."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report on stdout (for jq); the summary then goes to stderr."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Connect to nothing: print the exact script fleet would send (for the selected "
                                      "host, or the first host of each distinct script), parameters and their "
                                      "sources as # comments at its top; pipe it to `ssh HOST sh -s`."),
    ask_become_pass: bool = typer.Option(False, "--ask-become-pass", "-K",
                                         help="Ask once, before connecting, for the sudo password of hosts with "
                                              "ansible_become."),
    become_password_file: Optional[Path] = typer.Option(None, "--become-password-file",
                                                        help="Read the sudo password for become from this file."),
    watch: Optional[float] = typer.Option(None, "--watch", min=1.0, help="Diagnose again every SECONDS and show "
                                                                         "what changed each round (Ctrl-C stops)."),
    until: Optional[str] = typer.Option(None, "--until", help="With --watch: stop once the fleet is 'healthy'."),
    deadline: Optional[float] = typer.Option(None, "--deadline", min=1.0, help="With --watch: stop after S seconds."),
) -> None:
    """Run a runbook's read-only probes on every selected host and write an incident report.

    Progress and warnings go to stderr; the summary (causes, fixes, report paths, the headline
    last) to stdout.

    Exit code: 0 all hosts healthy, 1 a host has a problem, 2 bad input, 130/143 interrupted.

    Example: fleet diagnose -i inventories/prod.yml --limit 'web*:!web07' --var port=8001
    """
    from fleet import runloop
    from fleet.diagnose import RunOptions
    from fleet.transport import SSHOptions
    from fleet.workers import prepare_run

    try:
        for name, seconds in (("--timeout", timeout), ("--connect-timeout", connect_timeout)):
            if not math.isfinite(seconds):
                raise InputError(f"{name} takes a number of seconds, not {seconds}")
        books = load_runbooks(runbook_name)
        runbook = combine(books)
        inv = _load(inventory)
        hosts = select(inv, limit)
        if not hosts:
            raise InputError(f"no host matches {limit!r}" if limit else "the inventory has no hosts", str(inventory))
        overrides = _parse_vars(var)
        check_overrides(runbook, overrides)
        ssh = SSHOptions(connect_timeout, str(ssh_config) if ssh_config else None,
                         tuple(str(p) for p in known_hosts), accept_new)
        options = RunOptions(forks=forks, timeout_s=timeout, overrides=overrides, ssh=ssh)
        if dry_run:
            sys.stdout.write(_dry_run(hosts, runbook, options))
            raise typer.Exit(ExitCode.OK)
        options = replace(options, ssh=replace(ssh, become_password=_become_password(ask_become_pass,
                                                                                     become_password_file)))
        wanted = _parse_formats(formats)
        report_dir(out)
        if watch is not None or until is not None or deadline is not None:
            raise typer.Exit(_watch(output_console(stderr=True), hosts, runbook, options, str(inventory), limit, out, wanted,
                                    watch, until, deadline))
        prepared = prepare_run(hosts, books, runbook, options, workers, _ask_passphrase)
        started = dt.datetime.now(dt.timezone.utc)
        journal = Journal(out, started, runbook.name)
    except FleetError as exc:
        raise _fail(exc)

    for note in prepared.notes:  # warnings go to stderr as they arise; the report keeps them too
        sys.stderr.write(f"fleet: warning: {' '.join(strip_control(note).split())}\n")
    shown = {"forks": forks, "connect_timeout_s": connect_timeout, "timeout_s": timeout, "hosts_selected": len(hosts)}
    described = runloop.describe(prepared, runbook, options, str(inventory), limit,
                                 started.isoformat(timespec="seconds"), shown)
    with journal, Progress(Console(stderr=True, highlight=False), len(hosts)) as progress:
        outcome = runloop.run(prepared, runbook, options, described, (journal, progress))
    doc, paths, retry = runloop.write_files(outcome.report, out, journal.stem, wanted)
    new_keys = sum(1 for e in outcome.report.hosts for n in e.notes if n.startswith("new host key recorded"))
    print_summary(output_console(stderr=json_out), doc,
                  RunFiles((*paths, journal.path), retry, len(outcome.report.retry_hosts()), new_keys,
                           options.ssh.known_hosts_files()[0]))
    if json_out:
        sys.stdout.write(RENDERERS["json"](doc))
    if outcome.interrupted is not None:
        raise typer.Exit(outcome.interrupted)
    raise typer.Exit(ExitCode.PROBLEMS if outcome.report.problems else ExitCode.OK)


def _watch(console: Console, hosts, runbook, options, inventory: str, limit: str | None, out: Path,
           formats: tuple[str, ...], every: float | None, until: str | None, deadline: float | None) -> int:
    """`diagnose --watch`: rounds of diagnosis with what changed each round (fleet/watch.py)."""
    from fleet.watch import WatchOptions, one_round, watch as watch_rounds

    if every is None:
        raise InputError("--until and --deadline go with --watch SECONDS")
    if until not in (None, "healthy"):
        raise InputError(f"--until takes 'healthy', not {until!r}")

    def write(report: Report) -> RunFiles:
        # The last round's files are named as a run's (`<stamp>-<id>-<runbook>`): its journal,
        # created O_EXCL, reserves the name, so a watch never overwrites another run's reports.
        journal = Journal(out, dt.datetime.now(dt.timezone.utc), report.runbook.name)
        with journal:
            journal.record(report)
        return RunFiles((*write_reports(document.to_json(report), str(out), journal.stem, formats), journal.path))

    return watch_rounds(console, lambda: one_round(hosts, runbook, options, inventory, limit, _ask_passphrase),
                        WatchOptions(every, until == "healthy", deadline), write)



def _dry_run(hosts: tuple[Host, ...], runbook: Runbook, options: RunOptions) -> str:
    """The dry-run text, with the become user a run would use for each SSH host (no connection)."""
    from fleet.dryrun import dry_run

    return dry_run(hosts, runbook, options,
                   {h.name: h.become_user for h in hosts if h.connection is Connection.SSH and h.become_user})


@_command(app)
def report(
    results: Path = typer.Argument(..., help="A JSON report written by `fleet diagnose`, or its .jsonl journal."),
    formats: str = typer.Option("md,html", "--format", help="Formats to render, comma separated: json,md,html."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory (default: beside the JSON)."),
) -> None:
    """Re-render a report from its JSON, or rebuild one from a run's .jsonl journal (finished or killed).

    Example: fleet report reports/20261124T031500Z-502.json --format html
    """
    try:
        wanted = _parse_formats(formats)
        doc = _load_results(results)
        paths = write_reports(doc, str(out or results.parent), results.stem, wanted)
    except FleetError as exc:
        raise _fail(exc)
    except (KeyError, TypeError, jinja2.UndefinedError) as exc:
        raise _fail(f"{results}: the report lacks what rendering needs ({exc})")
    console = output_console()
    for path in paths:
        console.print(f"report: {path}", markup=False, soft_wrap=True)


def _load_results(path: Path) -> dict:
    """A JSON report, or the journal of a run killed before it wrote one."""
    return journal_load(str(path)) if path.suffix == ".jsonl" else document.load(str(path))


@_command(app)
def diff(
    old: Path = typer.Argument(..., help="The earlier JSON report."),
    new: Path = typer.Argument(..., help="The later JSON report."),
    markdown: bool = typer.Option(False, "--md", help="Print Markdown (for a ticket) instead of a table."),
) -> None:
    """Show per host what changed between two runs: fixed, still broken, newly broken, newly unreachable.

    Exit code 1 if any host is newly broken or newly unreachable, else 0.

    Example: fleet diff reports/before.json reports/after.json --md
    """
    try:
        before, after = _load_results(old), _load_results(new)
        if before["runbook"] != after["runbook"]:
            raise InputError(f"the reports are of different runbooks ({before['runbook']!r} and "
                             f"{after['runbook']!r}): their verdicts cannot be compared host by host")
        changes = compare(before, after)
    except FleetError as exc:
        raise _fail(exc)
    if markdown:
        sys.stdout.write(render_diff_markdown(changes, str(old), str(new)))
    else:
        print_diff(output_console(), changes)
    worse = {"newly_broken", "newly_unreachable"} & changes.counts().keys()
    raise typer.Exit(ExitCode.PROBLEMS if worse else ExitCode.OK)


@_command(app)
def hosts(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="Ansible inventory: YAML, INI, a directory of them, or an executable dynamic inventory."),
    limit: Optional[str] = typer.Option(None, "--limit", "-l", help="Ansible host pattern, as for diagnose."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", envvar="FLEET_SSH_CONFIG",
                                              help="ssh_config file to use instead of ~/.ssh/config."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the hosts a pattern selects, with the connection settings fleet will use (secrets masked).

    Example: fleet hosts -i inventories/prod.yml --limit 'web:!web07'
    """
    from fleet.transport.ssh import resolve_endpoint
    from fleet.transport.sshconfig import load_ssh_config

    try:
        selected = select(_load(inventory), limit)
        if limit and not selected:  # as Ansible's --limit, and as diagnose; an empty inventory lists nothing
            raise InputError(f"no host matches {limit!r}", str(inventory))
        config = load_ssh_config(str(ssh_config) if ssh_config else None)
        rows = [host_row(h, resolve_endpoint(h, config) if h.connection is Connection.SSH and h.problem is None
                         else None)
                for h in selected]
    except FleetError as exc:
        raise _fail(exc)
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        print_hosts(output_console(), rows)


runbook_app = typer.Typer(no_args_is_help=True, help="Inspect and test runbooks.")
app.add_typer(runbook_app, name="runbook")


@_command(app)
def runbooks() -> None:
    """List the built-in runbooks and the user's ($FLEET_RUNBOOK_PATH, ./runbooks, ~/.config/fleet/runbooks)."""
    rows = []
    for name, (path, origin) in available_runbooks().items():
        try:
            description = load_runbook(path).description
        except FleetError as exc:
            description = f"(broken: {exc})"
        rows.append({"name": name, "origin": origin, "path": path, "description": description})
    print_runbooks(output_console(), rows)


@_command(runbook_app, "show")
def runbook_show(name: str = typer.Argument(..., help="Runbook name or path to a .yml file.")) -> None:
    """Print a runbook's parameters, probes and decision table.

    Example: fleet runbook show 502
    """
    try:
        book = load_runbook(name)
    except FleetError as exc:
        raise _fail(exc)
    print_runbook(output_console(), book)


@_command(runbook_app, "test")
def runbook_test(
    name: str = typer.Argument(..., help="Runbook name or path to a .yml file."),
    cases: Path = typer.Argument(..., help="A directory of cases (see docs/runbook-format.md) or a JSON report."),
    var: list[str] = typer.Option([], "--var", "-e", help="Runbook parameter KEY=VALUE for every case."),
) -> None:
    """Evaluate a runbook offline on captured probe outputs: no fleet needed.

    Exit code 0 when every case gets its expected verdict, 1 otherwise.

    Example: fleet runbook test 502 tests/fixtures/runbook-cases/502
    """
    from fleet.runbook_cases import load_cases, run_case

    try:
        book = load_runbook(name)
        overrides = _parse_vars(var)
        results = [run_case(book, case, overrides) for case in load_cases(str(cases))]
    except FleetError as exc:
        raise _fail(exc)
    if not results:
        raise _fail(f"{cases}: no cases found (a case is a folder of PROBE.out files, or give a JSON report)")
    print_case_results(output_console(), results)
    raise typer.Exit(ExitCode.OK if all(r.passed for r in results) else ExitCode.PROBLEMS)


from fleet.cli_fix import fix_app  # noqa: E402 - after the helpers it reuses; one group, one module
app.add_typer(fix_app, name="fix")


def main() -> None:
    """Console-script entry point: defaults from fleet.toml sit beneath FLEET_* variables and options."""
    gcpolicy.start()  # the program's own process (`python -m fleet` started it before the imports)
    try:
        default_map = load_default_map()
    except FleetError as exc:
        raise SystemExit(_fail(exc).exit_code) from None
    gcpolicy.settle(final=False)  # the CLI's imports done; a run settles again once set up (fleet.runloop)
    app(default_map=default_map)
