"""The `fleet fix` command group: `plan` (changes nothing) and `apply` (acts, in waves, verified, recorded)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional

import typer
from rich.console import Console

from fleet.errors import FleetError, InputError
from fleet.fix.policy import Risk
from fleet.inventory import load_inventory
from fleet.models import Diagnosis, ExitCode, HostResult, Severity, privilege_of_notes
from fleet.patterns import select
from fleet.report import document
from fleet.runbook import load_runbook, resolve_params

_FIX_HELP = "Plan remedies for diagnosed hosts, then apply them in waves, verified and recorded."
# short_help too: Click cuts a group's listing to the width beside its name otherwise (see cli._command).
fix_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=_FIX_HELP, short_help=_FIX_HELP)

_RISKS = ", ".join(r.value for r in Risk if r is not Risk.MANUAL)


def _cli():
    from fleet import cli  # the shared option helpers; imported late, cli.py registers this group

    return cli


@fix_app.command("plan")
def fix_plan(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="Ansible inventory, as for diagnose."),
    plan_path: Path = typer.Option(..., "--plan", help="Where to write the plan (JSON; Markdown beside it)."),
    from_report: Optional[Path] = typer.Option(None, "--from", help="Plan from this diagnose JSON report instead "
                                                                    "of diagnosing now."),
    runbook_name: str = typer.Option("502", "--runbook", "-r", envvar="FLEET_RUNBOOK", help="Runbook name or path."),
    limit: Optional[str] = typer.Option(None, "--limit", "-l", help="Ansible host pattern, as for diagnose."),
    forks: int = typer.Option(50, "--forks", "-f", min=1, max=1000, help="Hosts diagnosed at once."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.1, help="Seconds for connect and handshake."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.5, help="Hard per-host deadline of a diagnosis."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="ssh_config file to use."),
    known_hosts: list[Path] = typer.Option([], "--known-hosts", help="Extra known_hosts file (repeatable)."),
    accept_new: bool = typer.Option(False, "--accept-new", help="Record unknown host keys (never changed ones)."),
    var: list[str] = typer.Option([], "--var", "-e", help="Runbook parameter KEY=VALUE (repeatable)."),
    backup_dir: str = typer.Option("/var/backups/fleet", "--backup-dir",
                                   help="Where on the hosts edited files are backed up (outside nginx's directories)."),
    ask_become_pass: bool = typer.Option(False, "--ask-become-pass", "-K", help="Ask for the sudo password of become hosts."),
    become_password_file: Optional[Path] = typer.Option(None, "--become-password-file", help="Read it from this file."),
) -> None:
    """Diagnose (or read a report) and write the plan of remedies: changes nothing on any host.

    Exit code: 0 plan written, 2 bad input.

    Example: fleet fix plan -i inventories/prod.yml --plan fix.json
    """
    from fleet.fix import plan as planning

    cli = _cli()
    console = Console(stderr=True, highlight=False)
    try:
        runbook = load_runbook(runbook_name)
        hosts = select(load_inventory(inventory), limit)
        if not hosts:
            raise InputError(f"no host matches {limit!r}" if limit else "the inventory has no hosts", str(inventory))
        overrides = cli._parse_vars(var)
        # Paths absolute: apply may run from another directory.
        options = {"forks": forks, "connect_timeout_s": connect_timeout, "timeout_s": timeout,
                   "ssh_config": os.path.abspath(ssh_config) if ssh_config else None,
                   "known_hosts": [os.path.abspath(p) for p in known_hosts], "accept_new": accept_new,
                   "vars": overrides}
        if from_report is not None:
            results = _results_from_report(str(from_report), runbook, hosts, overrides)
        else:
            results = _diagnose(hosts, runbook, options, cli._become_password(ask_become_pass, become_password_file),
                                console)
        named = runbook_name if os.path.sep not in runbook_name and not runbook_name.endswith((".yml", ".yaml")) \
            else os.path.abspath(runbook_name)
        settings = planning.Settings(named, os.path.abspath(inventory), limit, options, backup_dir)
        plan = planning.build(results, runbook, hosts, settings)
        paths = planning.write(plan, str(plan_path))
    except FleetError as exc:
        raise cli._fail(exc)
    except OSError as exc:
        raise cli._fail(f"{plan_path}: cannot write the plan: {exc.strerror or exc}")
    console.print(f"{len(plan['fix'])} host(s) to fix, {len(plan['left_alone'])} left alone; nothing changed.",
                  markup=False)
    for path in paths:
        console.print(f"plan: {path}", markup=False)


def _diagnose(hosts, runbook, options: Mapping[str, Any], become, console: Console) -> list[HostResult]:
    from fleet.diagnose import prepare
    from fleet.runloop import results
    from fleet.terminal import Progress

    run_options = _run_options(options, become)
    prepared = prepare(hosts, runbook, run_options, _cli()._ask_passphrase)
    with Progress(console, len(hosts)) as progress:
        done = {result.host.name: result for result, _ in results(prepared, runbook, run_options, (progress,))}
    return [done[h.name] for h in hosts if h.name in done]


def _run_options(options: Mapping[str, Any], become):
    from fleet.diagnose import RunOptions
    from fleet.transport import SSHOptions

    ssh = SSHOptions(float(options["connect_timeout_s"]), options.get("ssh_config"),
                     tuple(options.get("known_hosts") or ()), bool(options.get("accept_new")), become)
    return RunOptions(forks=int(options["forks"]), timeout_s=float(options["timeout_s"]),
                      overrides=dict(options.get("vars") or {}), ssh=ssh)


def _results_from_report(path: str, runbook, hosts, overrides) -> list[HostResult]:
    """The report's hosts, re-interpreted from their recorded probe outputs by this runbook
    (through fleet.interpret, as a live run: redaction, discovered parameters, the time budget)."""
    from fleet.interpret import interpret, sources_of
    from fleet.runbook_cases import _probe_from_json

    doc = document.load(path)
    if doc.get("runbook") != runbook.name:
        raise InputError(f"the report was made with runbook {doc.get('runbook')!r}, not {runbook.name!r}", path)
    entries = {h.name: h for h in document.hosts_of(doc)}
    results = []
    for host in hosts:
        entry = entries.get(host.name)
        if entry is None:
            continue
        resolved = resolve_params(runbook, host.vars, overrides)
        if not entry.reached:
            results.append(HostResult(host, Diagnosis(entry.verdict, Severity.CRITICAL, str(entry.summary)),
                                      params=resolved.values))
            continue
        probes = {name: _probe_from_json(name, p) for name, p in entry.probes.items()}
        result = interpret(runbook, host, probes, resolved)
        # The report records what the probes ran as in its host notes (its probes carry no meta line).
        results.append(HostResult(host, result.diagnosis, result.probes, result.facts, notes=result.notes,
                                  params=result.params.values, param_sources=sources_of(result.params),
                                  privilege=privilege_of_notes(entry.notes)))
    if not results:
        raise InputError("no host of the report is in the inventory (or the --limit)", path)
    return results


@fix_app.command("apply")
def fix_apply(
    plan_path: Path = typer.Argument(..., help="A plan written by `fleet fix plan`."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask per cause group: the plan was reviewed."),
    canary: int = typer.Option(1, "--canary", min=1, help="Hosts per cause fixed first, alone."),
    batch: str = typer.Option("25%", "--batch", help="Hosts per later wave and cause: N or P% of the cause's hosts."),
    max_failures: int = typer.Option(1, "--max-failures", min=1, help="Stop after this many hosts failed."),
    max_unhealthy: str = typer.Option("50%", "--max-unhealthy",
                                      help="Refuse when more of the fleet than this has a problem."),
    allow_risk: str = typer.Option("medium", "--allow-risk", help=f"Highest remedy risk to run: {_RISKS}."),
    url: Optional[str] = typer.Option(None, "--url", help="Public URL to check from here after each fix "
                                                          "({address} and {name} are the host's)."),
    url_ca: Optional[Path] = typer.Option(None, "--url-ca", help="CA certificates (PEM) for an https --url."),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Directory for the journal and the reports."),
    max_age: float = typer.Option(15.0, "--max-age", min=0.1, help="Refuse a plan older than this many minutes."),
    ask_become_pass: bool = typer.Option(False, "--ask-become-pass", "-K", help="Ask for the sudo password of become hosts."),
    become_password_file: Optional[Path] = typer.Option(None, "--become-password-file", help="Read it from this file."),
) -> None:
    """Apply a plan: lock each host, re-check it, run its remedy, verify it, roll back on failure; record all.

    Exit code: 0 every planned host healthy at the end, 1 otherwise, 2 refused or bad input, 130/143 interrupted.

    Example: fleet fix apply fix.json --allow-risk medium --url 'https://{address}/health'
    """
    from fleet.diagnose import prepare
    from fleet.fix import apply as applying
    from fleet.fix import audit, plan as planning, summary
    from fleet.fix.remote import Remote

    cli = _cli()
    console = Console(stderr=True, highlight=False)
    try:
        try:
            risk = Risk(allow_risk)
        except ValueError:
            raise InputError(f"--allow-risk takes one of {_RISKS}, not {allow_risk!r}") from None
        if risk is Risk.MANUAL:
            raise InputError("manual remedies are never run by fleet; --allow-risk takes low, medium or high")
        options = applying.ApplyOptions(yes=yes, canary=canary, batch=batch, max_failures=max_failures,
                                        max_unhealthy_pct=applying.parse_percent(max_unhealthy, "--max-unhealthy"),
                                        allow_risk=risk, url=url, url_ca=str(url_ca) if url_ca else None,
                                        max_age_s=max_age * 60)
        applying.batch_size(batch, 1)
        plan, plan_digest = planning.load(str(plan_path))
        runbook = load_runbook(plan["runbook"]["name"])
        selected = select(load_inventory(plan["inventory"]["path"]), plan["inventory"]["limit"])
        applying.check(plan, planning.file_digest(runbook.path), planning.inventory_digest(selected), options,
                       dt.datetime.now(dt.timezone.utc))
        if not yes and not sys.stdin.isatty():
            raise InputError("no terminal to ask for approval: review the plan, then pass --yes")
        _check_out(out)
        hosts = {h.name: h for h in selected}
        missing = [e["name"] for e in plan["fix"] if e["name"] not in hosts]
        if missing:
            raise InputError(f"planned host(s) not in the inventory any more: {', '.join(missing)}")
        run_options = _run_options(plan["options"], cli._become_password(ask_become_pass, become_password_file))
        planned = [hosts[e["name"]] for e in plan["fix"]]
        prepared = prepare(planned, runbook, run_options, cli._ask_passphrase)
    except FleetError as exc:
        raise cli._fail(exc)

    started = dt.datetime.now(dt.timezone.utc)
    stem = f"fix-{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    run_id = stem.removeprefix("fix-")
    who = planning.who()
    try:
        journal = audit.Audit(str(out / f"{stem}.audit.jsonl"), run_id)
    except OSError as exc:
        for transport in prepared.transports.values():
            transport.close()
        raise cli._fail(f"{out}: cannot create the audit journal: {exc.strerror or exc}")
    owner = f"fleet-fix {run_id} by {who} pid={os.getpid()} at {started.isoformat(timespec='seconds')}"
    run = applying.Run(plan, plan_digest, runbook, hosts, Remote(prepared, runbook, run_options), options, journal,
                       str(out), owner)
    journal.record("run_start", who=who, plan=plan["id"], plan_path=str(plan_path), plan_digest=plan_digest,
                   runbook_digest=plan["runbook"]["digest"], options=options.__dict__ | {"allow_risk": risk.value})
    interrupted = _stop_on_signals(run, console)
    clock = time.monotonic()
    try:
        outcomes = applying.apply(run, lambda cause, members: _approve(console, cause, members))
        after = _final_diagnosis(run, planned)
    except KeyboardInterrupt:
        journal.record("run_end", outcomes={}, all_healthy=False, interrupted="interrupted before any host was touched")
        journal.close()
        run.remote.close()
        raise typer.Exit(ExitCode.INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        run.remote.close()
    meta = {"who": who, "started_at": started.isoformat(timespec="seconds"), "plan_digest": plan_digest,
            "journal": journal.path, "duration_s": round(time.monotonic() - clock, 3),
            "interrupted": run.stop_reason}
    healthy = all(h["verdict"] == "healthy" for h in after) and len(after) == len(planned)
    journal.record("run_end", outcomes={n: o.outcome.value for n, o in outcomes.items()}, all_healthy=healthy,
                   interrupted=run.stop_reason)
    journal.close()
    paths = summary.write_all(str(out), stem, plan, runbook, after, outcomes, meta)
    for name, outcome in outcomes.items():
        console.print(f"{name}: {outcome.outcome.value} {outcome.reason}", markup=False, soft_wrap=True)
    for path in [journal.path, *paths]:
        console.print(f"report: {path}", markup=False)
    if interrupted:
        raise typer.Exit(interrupted[0])
    raise typer.Exit(ExitCode.OK if healthy else ExitCode.PROBLEMS)


def _check_out(out: Path) -> None:
    """--out must be a directory only its owner can write (it holds the audit journal)."""
    try:
        os.makedirs(out, mode=0o700, exist_ok=True)
        info = os.stat(out)
    except OSError as exc:
        raise InputError(f"cannot use it as the output directory: {exc.strerror or exc}", str(out)) from None
    if not os.path.isdir(out):
        raise InputError("not a directory", str(out))
    if info.st_mode & 0o022:
        raise InputError("other users can write this directory: the audit journal needs one only you can write",
                         str(out))


def _stop_on_signals(run, console: Console) -> list[int]:
    """Ctrl-C / SIGTERM: finish the wave in flight (no host is left half-fixed), then stop."""
    got: list[int] = []

    def handler(signum, frame):  # noqa: ANN001 - signal handler signature
        if not run.acting:
            raise KeyboardInterrupt  # still asking for approval: nothing was done, just stop
        if not got:
            got.append(ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED)
            run.stop_reason = f"{signal.Signals(signum).name}: stopped after the wave in flight"
            run.stop.set()
            console.print("stopping after the hosts in flight are done (fixed or rolled back)...", markup=False)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return got


def _approve(console: Console, cause: str, members: list[Mapping[str, Any]]) -> bool:
    """Ask once for a cause group: its remedy's commands (of its first host) and its hosts."""
    first = members[0]["remedy"]
    console.print(f"\n{cause}: remedy {first['name']} (risk {first['risk']}) on {len(members)} host(s): "
                  f"{', '.join(m['name'] for m in members)}", markup=False)
    for row in first["commands"]["steps"]:
        console.print(f"  {row['shell']}", markup=False, soft_wrap=True)
    if len(members) > 1:
        console.print("  (each host with its own values: see the plan)", markup=False)
    try:
        answer = input(f"Apply {first['name']} to these {len(members)} host(s)? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _final_diagnosis(run, planned) -> list[dict]:
    """Every planned host diagnosed once more at the end: the 'after' report.

    It judges the hosts as they are now: for a runbook with a `since` parameter, what the logs
    held before this last diagnosis (the outage, the fix's own re-checks) is history.
    """
    from dataclasses import replace

    from fleet.runloop import in_order, results

    prepared, now = run.remote.prepared, int(time.time())
    params = {name: replace(p, values={**p.values, "since": now}) if "since" in p.values else p
              for name, p in prepared.params.items()}
    entries = [entry for _, entry in results(replace(prepared, params=params), run.runbook, run.remote.options)]
    return [document.entry_json(e) for e in in_order(entries, planned)]
