"""The diagnosis flow: hosts -> probe script -> raw output -> facts -> verdict, one HostResult per host."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from fleet.executor import Deadline, run_pool
from fleet.interpret import ScriptOutput, interpret, sources_of, unusable_params, usable_as_text
from fleet.limits import INTERPRET_BUDGET_S, cap_text, fit_forks
from fleet.models import (Connection, Diagnosis, Execution, Host, HostProblem, HostResult, ProbeOutput, Severity,
                          TransportStatus)
from fleet.params import Resolved
from fleet.parsers import REPORT_VIEWS
from fleet.redact import Redactor
from fleet.runbook import Runbook, render_probes, resolve_params
from fleet.script import compose, new_marker
from fleet.transport import SSHOptions, Transport, build, record_new_key


@dataclass(frozen=True)
class RunOptions:
    """How to run: the knobs of `fleet diagnose`; how to connect is the transport's (`ssh`)."""

    forks: int = 50
    timeout_s: float = 60.0
    overrides: Mapping[str, str] = field(default_factory=dict)
    # Wall seconds to interpret one host's output; past it the host is inconclusive (fleet.budget).
    interpret_budget_s: float = INTERPRET_BUDGET_S
    ssh: SSHOptions = field(default_factory=SSHOptions)


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, built once in the calling thread before any connection."""

    hosts: tuple[Host, ...]
    scripts: Mapping[str, bytes]
    params: Mapping[str, Resolved]
    marker: str
    transports: Mapping[Connection, Transport]
    redactor: Redactor
    forks: int
    notes: tuple[str, ...] = ()
    # Hosts ruled out before any connection (see `host_problem`): their verdict, nothing run.
    problems: Mapping[str, HostProblem] = field(default_factory=dict)


def prepare(hosts: Sequence[Host], runbook: Runbook, options: RunOptions,
            ask_passphrase: Callable[[str], str | None] | None = None) -> Prepared:
    """Render every host's script and build the transports. Raises InputError on bad input."""
    marker = new_marker()
    params = {h.name: resolve_params(runbook, h.vars, options.overrides) for h in hosts}
    problems = {h.name: p for h in hosts if (p := host_problem(h, runbook, params[h.name].values))}
    for name, resolved in params.items():  # reports show why a value could not be used, as text
        params[name] = usable_as_text(resolved)
    runnable = [h for h in hosts if h.name not in problems]
    transports, notes = build(runnable, options.ssh, min(options.forks, 64), ask_passphrase)
    forks, limit_note = fit_forks(options.forks)
    notes += [limit_note] if limit_note else []
    scripts = host_scripts(runbook, {h.name: params[h.name] for h in runnable}, marker, options.timeout_s)
    return Prepared(tuple(hosts), scripts, params, marker, transports, Redactor.build(runbook.redact), forks,
                    tuple(notes), problems)


def host_problem(host: Host, runbook: Runbook, params: Mapping[str, Any]) -> HostProblem | None:
    """Why fleet will not run on `host`: the inventory's verdict, or a runbook parameter it cannot use
    (Vault ciphertext, a failed template). A value the runbook does not need fails nothing."""
    if host.problem is not None:
        return host.problem
    unusable = unusable_params(runbook, params)
    return HostProblem(TransportStatus.INVENTORY_ERROR, unusable) if unusable else None


def host_scripts(runbook: Runbook, params: Mapping[str, Resolved], marker: str,
                 timeout_s: float) -> dict[str, bytes]:
    """Each host's script; hosts with the same parameters share one."""
    by_params: dict[str, bytes] = {}
    scripts = {}
    for name, values in params.items():
        key = values.key()
        if key not in by_params:
            # A probe is killed on the host a second before the host's deadline, so its partial
            # output (which `head -c` only flushes when the probe ends) still comes back.
            probes = [replace(p, timeout_s=min(p.timeout_s, max(1.0, timeout_s - 1.0)))
                      for p in render_probes(runbook, values)]
            by_params[key] = compose(probes, marker).encode()
        scripts[name] = by_params[key]
    return scripts


def run(prepared: Prepared, runbook: Runbook, options: RunOptions,
        on_start: Callable[[str], None] | None = None) -> Iterator[HostResult]:
    """Diagnose every host, yielding each result as soon as its host is done.

    `on_start(name)` is called from the worker as a host begins (the progress line names them).
    """

    def job(host: Host, deadline: Deadline) -> Execution:
        problem = prepared.problems.get(host.name)
        if problem is not None:
            return Execution(problem.status, problem.reason)
        if on_start is not None:
            on_start(host.name)
        return prepared.transports[host.connection].execute(host, prepared.scripts[host.name], deadline)

    def overrun(host: Host, deadline: Deadline) -> Execution:
        return Execution(TransportStatus.TIMEOUT, f"gave up after the {deadline.seconds:g}s deadline; connection closed",
                         duration_s=deadline.seconds)

    def crashed(host: Host, exc: BaseException) -> Execution:
        return Execution(TransportStatus.UNREACHABLE, f"internal error: {type(exc).__name__}: {exc}")

    try:
        for host, execution in run_pool(prepared.hosts, job, forks=prepared.forks, deadline_s=options.timeout_s,
                                        on_overrun=overrun, on_error=crashed):
            record_new_key(options.ssh, execution)
            yield host_result(host, execution, runbook, prepared.params[host.name], prepared.marker,
                              prepared.redactor, options.interpret_budget_s)
    finally:
        for transport in prepared.transports.values():
            transport.close()


def host_result(host: Host, execution: Execution, runbook: Runbook, resolved: Resolved, marker: str,
                redactor: Redactor, budget_s: float = INTERPRET_BUDGET_S) -> HostResult:
    """One host's raw execution interpreted into facts and a verdict, its outputs cut to what a report keeps."""
    names = runbook.parameter_names()
    notes = [f"new host key recorded: {execution.new_host_key.split()[1]}"] if execution.new_host_key else []
    if execution.attempts > 1:
        notes.append(f"{execution.attempts} connection attempts: sshd dropped connections (MaxStartups?)")
    if execution.status not in (TransportStatus.OK, TransportStatus.TIMEOUT):
        diagnosis = Diagnosis(execution.status.value, Severity.CRITICAL, execution.reason)
        return HostResult(host, diagnosis, duration_s=execution.duration_s, notes=tuple(notes),
                          params=redactor.redact_params(resolved.values, names),
                          param_sources=_sources(resolved, names))
    cut = execution.reason if execution.status is TransportStatus.TIMEOUT else ""
    if execution.truncated:
        cut = cut or "output passed the controller's size cap"
    result = interpret(runbook, host, ScriptOutput(execution.stdout, execution.stderr, marker, cut), resolved,
                       redactor, budget_s)
    diagnosis = result.diagnosis
    if execution.status is TransportStatus.TIMEOUT:
        unfinished = [f"{p.name}: {p.error}" for p in result.probes.values() if p.error]
        diagnosis = Diagnosis(TransportStatus.TIMEOUT.value, Severity.CRITICAL, execution.reason, tuple(unfinished))
    kept, view_notes = report_probes(runbook, result.probes, result.facts)
    return HostResult(host, diagnosis, kept, result.facts, execution.duration_s,
                      (*notes, *result.notes, *view_notes), redactor.redact_params(result.params.values, names),
                      _sources(result.params, names), result.privilege)


def _sources(resolved: Resolved, names: frozenset[str]) -> dict[str, str]:
    """Where each of the runbook's parameters came from; a report names no other variable."""
    return {name: source for name, source in sources_of(resolved).items() if name in names}


def report_probes(runbook: Runbook, probes: Mapping[str, ProbeOutput],
                  facts: Mapping[str, Any]) -> tuple[dict[str, ProbeOutput], list[str]]:
    """Probe outputs as the report keeps them, and a note per output kept only in part.

    Facts came from all of the output; the report (held until the run ends) keeps a bounded part
    of each, and of a listing such as `ps` only what the facts used (fleet.parsers.REPORT_VIEWS).
    """
    parsers = {p.name: p.parser for p in runbook.probes}
    kept, notes = {}, []
    for name, probe in probes.items():
        stdout = probe.stdout
        view = REPORT_VIEWS.get(parsers.get(name, ""))
        if view is not None and name in facts:
            stdout = view(probe, facts[name])
            dropped = probe.stdout.count("\n") - stdout.count("\n")
            if dropped > 0:
                notes.append(f"{dropped} line(s) of probe {name} not kept in the report: only those its facts use")
        kept[name] = replace(probe, stdout=cap_text(stdout), stderr=cap_text(probe.stderr))
    return kept, notes
