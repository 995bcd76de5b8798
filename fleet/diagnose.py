"""The diagnosis flow: hosts -> probe script -> raw output -> facts -> verdict, one HostResult per host."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from fleet.executor import Deadline, run_pool
from fleet.limits import fit_forks
from fleet.models import (Connection, Diagnosis, Execution, Host, HostProblem, HostResult, ProbeOutput, Severity,
                          TransportStatus, Unusable)
from fleet.params import Resolved, discovered_values, with_discovered
from fleet.parsers import PARSERS
from fleet.parsers.platform import windows_shell
from fleet.redact import Redactor
from fleet.runbook import Runbook, evaluate, render_probes, resolve_params
from fleet.script import compose, new_marker, split
from fleet.transport import Transport
from fleet.transport.become import Secret
from fleet.transport.credentials import load_credentials
from fleet.transport.hostkeys import KnownHosts, record
from fleet.transport.local import LocalTransport
from fleet.transport.ssh import SSHSettings, SSHTransport, jump_hosts, resolve_endpoint
from fleet.transport.sshconfig import load_ssh_config

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: The verdict of a host whose shell cannot run the probe script at all (Windows without sh).
UNSUPPORTED_PLATFORM = "unsupported_platform"


@dataclass(frozen=True)
class RunOptions:
    """How to run: the knobs of `fleet diagnose`."""

    forks: int = 50
    connect_timeout_s: float = 10.0
    timeout_s: float = 60.0
    ssh_config: str | None = None
    known_hosts: tuple[str, ...] = ()
    accept_new: bool = False
    overrides: Mapping[str, str] = field(default_factory=dict)
    become_password: Secret | None = None

    def known_hosts_files(self) -> list[str]:
        """--known-hosts files first (new keys are recorded in the first), then the user's."""
        return [os.path.expanduser(p) for p in (*self.known_hosts, DEFAULT_KNOWN_HOSTS)]


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
        params[name] = replace(resolved, values={k: str(v) if isinstance(v, Unusable) else v
                                                 for k, v in resolved.values.items()})
    runnable = [h for h in hosts if h.name not in problems]
    transports: dict[Connection, Transport] = {Connection.LOCAL: LocalTransport()}
    notes: list[str] = []
    ssh_hosts = [h for h in runnable if h.connection is Connection.SSH]
    if ssh_hosts:
        transports[Connection.SSH], ssh_notes = ssh_transport(ssh_hosts, options, ask_passphrase)
        notes += ssh_notes
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
    unusable = [f"parameter '{p.name}' is {params[p.name].reason}" for p in runbook.parameters
                if isinstance(params.get(p.name), Unusable)]
    return HostProblem(TransportStatus.INVENTORY_ERROR, "; ".join(unusable)) if unusable else None


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


def ssh_transport(hosts: Sequence[Host], options: RunOptions,
                  ask_passphrase: Callable[[str], str | None] | None) -> tuple[SSHTransport, list[str]]:
    """The SSH transport for a run: config, keys and known_hosts read once, names resolved, bastions open."""
    ssh_config = load_ssh_config(options.ssh_config)
    endpoints = {h.name: resolve_endpoint(h, ssh_config) for h in hosts}
    key_files = {k for e in endpoints.values() for hop in (e, *jump_hosts(e.jump)) for k in hop.key_files}
    credentials = load_credentials(key_files, ask_passphrase)
    settings = SSHSettings(options.connect_timeout_s, options.accept_new, become_password=options.become_password)
    ssh = SSHTransport(settings, KnownHosts(options.known_hosts_files()), credentials, endpoints)
    resolve_names(ssh, options)
    for line in ssh.open_bastions(options.connect_timeout_s * 2):
        record(options.known_hosts_files()[0], line)
    return ssh, list(credentials.notes)


def resolve_names(ssh: SSHTransport, options: RunOptions) -> None:
    """Look every host name up before the pool starts, in parallel and under the connect timeout.

    A resolver that hangs then costs the run one connect timeout, not a worker per host; a name
    that does not resolve is that host's verdict.
    """

    def lookup(name: str, deadline: Deadline) -> tuple[str | None, str]:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return None, f"{name} does not resolve ({exc.strerror})"
        except UnicodeError:
            return None, f"{name} is not a valid host name"
        return infos[0][4][0], ""

    names = ssh.names_to_resolve()
    for name, (address, error) in run_pool(
            names, lookup, forks=min(options.forks, 64), deadline_s=options.connect_timeout_s,
            on_overrun=lambda n, d: (None, f"looking up {n} took longer than {d.seconds:g}s"),
            on_error=lambda n, exc: (None, f"looking up {n} failed: {exc}")):
        ssh.record_address(name, address, error)


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

    recorded_in = options.known_hosts_files()[0]
    try:
        for host, execution in run_pool(prepared.hosts, job, forks=prepared.forks, deadline_s=options.timeout_s,
                                        on_overrun=overrun, on_error=crashed):
            if execution.new_host_key:
                record(recorded_in, execution.new_host_key)
            yield interpret(host, execution, runbook, prepared.params[host.name], prepared.marker, prepared.redactor)
    finally:
        for transport in prepared.transports.values():
            transport.close()


def interpret(host: Host, execution: Execution, runbook: Runbook, resolved: Resolved,
              marker: str, redactor: Redactor) -> HostResult:
    """Turn one host's raw execution into facts and a verdict."""
    params = resolved.values
    notes = [f"new host key recorded: {execution.new_host_key.split()[1]}"] if execution.new_host_key else []
    if execution.attempts > 1:
        notes.append(f"{execution.attempts} connection attempts: sshd dropped connections (MaxStartups?)")
    if execution.status not in (TransportStatus.OK, TransportStatus.TIMEOUT):
        diagnosis = Diagnosis(execution.status.value, Severity.CRITICAL, execution.reason)
        return HostResult(host, diagnosis, duration_s=execution.duration_s, notes=tuple(notes),
                          params=redactor.redact_params(params), param_sources=sources_of(resolved))
    cut = execution.reason if execution.status is TransportStatus.TIMEOUT else ""
    if execution.truncated:
        cut = cut or "output passed the controller's size cap"
    output = split(execution.stdout.decode("utf-8", "replace"), execution.stderr.decode("utf-8", "replace"),
                   marker, [p.name for p in runbook.probes], cut_reason=cut)
    if output.meta.get("priv"):
        notes.append(f"privilege: {output.meta['priv']}")
    probes, masked = redact_probes(output.probes, redactor)
    if masked:
        notes.append(f"redacted {masked} secret(s) from probe output")
    unfinished = [f"{p.name} ({p.error})" for p in probes.values() if p.error]
    if unfinished:
        notes.append(f"probe(s) gave no result: {', '.join(unfinished)}")
    windows = not output.meta and windows_shell(execution.stderr.decode("utf-8", "replace") + "\n"
                                                + execution.stdout.decode("utf-8", "replace"))
    if windows:
        diagnosis = Diagnosis(UNSUPPORTED_PLATFORM, Severity.UNKNOWN,
                              "Windows is not supported: the host's shell has no POSIX sh to run fleet's probes "
                              "in; diagnose it by hand", (windows,))
        return HostResult(host, diagnosis, probes, {}, execution.duration_s, tuple(notes),
                          redactor.redact_params(params), sources_of(resolved))
    resolved = discover(runbook, resolved, probes)
    params = resolved.values
    facts = parse_facts(runbook, probes, params)
    if execution.status is TransportStatus.TIMEOUT:
        unfinished = [f"{p.name}: {p.error}" for p in probes.values() if p.error]
        diagnosis = Diagnosis(TransportStatus.TIMEOUT.value, Severity.CRITICAL, execution.reason, tuple(unfinished))
    else:
        diagnosis = evaluate(runbook, facts, probes, params, {"name": host.name, "address": host.address},
                             sources_of(resolved))
    return HostResult(host, diagnosis, probes, facts, execution.duration_s, tuple(notes),
                      redactor.redact_params(params), sources_of(resolved))


def discover(runbook: Runbook, resolved: Resolved, probes: Mapping[str, ProbeOutput]) -> Resolved:
    """The host's parameters once its discovering probes' `param` lines are applied to the open ones."""
    found: dict[str, str] = {}
    for probe in runbook.probes:
        if probe.discovers:
            found.update(discovered_values(probes.get(probe.name), resolved.open & set(probe.discovers)))
    return with_discovered(resolved, found)


def sources_of(resolved: Resolved) -> dict[str, str]:
    return {name: source.value for name, source in resolved.sources.items()}


def redact_probes(probes: Mapping[str, ProbeOutput], redactor: Redactor) -> tuple[dict[str, ProbeOutput], int]:
    """Probe outputs with secrets masked, before anything parses or reports them; and how many were masked."""
    cleaned, total = {}, 0
    for name, probe in probes.items():
        stdout, n_out = redactor.redact(probe.stdout)
        stderr, n_err = redactor.redact(probe.stderr)
        total += n_out + n_err
        cleaned[name] = replace(probe, stdout=stdout, stderr=stderr) if n_out or n_err else probe
    return cleaned, total


def parse_facts(runbook: Runbook, probes: Mapping[str, ProbeOutput], params: Mapping[str, Any]) -> dict[str, Any]:
    """Facts of every probe that finished; a probe that did not finish, or whose parser failed, has none."""
    facts: dict[str, Any] = {}
    for probe in runbook.probes:
        output = probes.get(probe.name)
        if output is None or not output.ran or output.error:
            continue
        try:
            facts[probe.name] = PARSERS[probe.parser](output, params)
        except Exception:  # noqa: BLE001 - a parser bug on one host's odd output must not end the run
            continue
    return facts
