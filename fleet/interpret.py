"""The one path from a host's raw output to its verdict: split, redact, discover, parse, evaluate,
under a time budget.

`fleet diagnose`, `fleet runbook test`, `fleet fix` and bench/breakdown.py all call `interpret`,
so an offline test sees exactly what a live run would (redaction and discovered parameters
included), and a benchmark measures the code that runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Union

from fleet.budget import OverBudget, time_budget
from fleet.limits import INTERPRET_BUDGET_S, MAX_LINE_CHARS, cap_lines
from fleet.memo import PARSES, ParseMemo
from fleet.models import Diagnosis, Host, Privilege, ProbeOutput, Severity, TransportStatus, Unusable
from fleet.params import Resolved, discovered_values, with_discovered
from fleet.parsers import PARSERS
from fleet.probes.platform import windows_shell
from fleet.redact import Redactor
from fleet.rules import INCONCLUSIVE, Rule, evaluate
from fleet.runbook import Runbook, parser_inputs
from fleet.script import split

#: The verdict of a host whose shell cannot run the probe script at all (Windows without sh).
UNSUPPORTED_PLATFORM = "unsupported_platform"

#: The stages of interpretation, in order; `Interpretation.cpu_s` has one entry per stage run.
STAGES = ("split", "redact", "parse", "rules")


@dataclass(frozen=True)
class ScriptOutput:
    """One host's script output as the transport brought it back, to be cut into probes."""

    stdout: bytes
    stderr: bytes
    marker: str
    # Why the output may stop early (the deadline, the controller's cap); "" when it ran to its end.
    cut_reason: str = ""


#: What `interpret` reads: a whole script's output, or probe outputs already cut apart (captured cases).
Raw = Union[ScriptOutput, Mapping[str, ProbeOutput]]


@dataclass(frozen=True)
class Interpretation:
    """A host's verdict with the probes (secrets redacted) and facts it came from."""

    diagnosis: Diagnosis
    probes: Mapping[str, ProbeOutput] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # CPU seconds of each stage that ran (see STAGES).
    cpu_s: Mapping[str, float] = field(default_factory=dict)
    # The parameters the host was judged with (discovered values applied), with their sources.
    params: Resolved = field(default_factory=lambda: Resolved({}, {}))
    # What the probes ran as, from the script's meta line (None: no script output, or it never said).
    privilege: Privilege | None = None


@dataclass
class _Work:
    """What interpretation has built so far, kept when the budget stops it midway."""

    params: Resolved
    stage: str = STAGES[0]
    probes: dict[str, ProbeOutput] = field(default_factory=dict)
    redacted: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    privilege: Privilege | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.process_time)
    # Facts parsed here for the first time, stored in the memo once the budget is over.
    new_facts: list[tuple] = field(default_factory=list)

    def next_stage(self, stage: str) -> None:
        now = time.process_time()
        self.cpu_s[self.stage] = now - self.clock
        self.stage, self.clock = stage, now


def interpret(runbook: Runbook, host: Host, raw: Raw, params: Mapping[str, Any] | Resolved,
              redactor: Redactor | None = None, budget_s: float = INTERPRET_BUDGET_S) -> Interpretation:
    """Interpret one host's output with its parameters; past `budget_s` seconds the host is inconclusive.

    With `Resolved` parameters, the open ones take the values the host's discovering probes
    found; plain values count as given. `redactor` defaults to the runbook's own (built-in
    patterns plus its `redact:`).
    """
    work = _Work(params if isinstance(params, Resolved) else Resolved(dict(params), {}))
    unusable = unusable_params(runbook, work.params.values)
    if unusable:
        # A value fleet cannot use (Vault ciphertext, a failed template) judges nothing: the
        # inventory is the problem, as `fleet diagnose` says before connecting.
        diagnosis = Diagnosis(TransportStatus.INVENTORY_ERROR.value, Severity.CRITICAL, unusable)
        return Interpretation(diagnosis, params=usable_as_text(work.params))
    try:
        with time_budget(budget_s):
            diagnosis = _interpret(work, runbook, host, raw, redactor or Redactor.build(runbook.redact))
    except OverBudget:
        return _over_budget(work, budget_s)
    PARSES.store(work.new_facts)
    work.next_stage("")
    return Interpretation(diagnosis, work.probes, work.facts, tuple(work.notes), work.cpu_s, work.params,
                          work.privilege)


def _interpret(work: _Work, runbook: Runbook, host: Host, raw: Raw, redactor: Redactor) -> Diagnosis:
    names = [p.name for p in runbook.probes]
    windows = None
    if isinstance(raw, ScriptOutput):
        stdout, stderr = raw.stdout.decode("utf-8", "replace"), raw.stderr.decode("utf-8", "replace")
        output = split(stdout, stderr, raw.marker, names, cut_reason=raw.cut_reason)
        work.privilege = next((p for p in Privilege if p.value == output.meta.get("priv")), None)
        if work.privilege:
            work.notes.append(work.privilege.note)
        probes = output.probes
        # No meta line: the script never ran. A Windows shell says why in its own words.
        windows = None if output.meta else windows_shell(cap_lines(f"{stderr}\n{stdout}")[0])
    else:
        probes = dict(raw)
    work.probes, cut = cap_probe_lines(probes)
    if cut:
        work.notes.append(f"{cut} output line(s) longer than {MAX_LINE_CHARS} characters were cut there")

    work.next_stage("redact")
    work.probes, masked = redact_probes(work.probes, redactor)
    work.redacted = True
    if masked:
        work.notes.append(f"redacted {masked} secret(s) from probe output")
    unfinished = [f"{p.name} ({p.error})" for p in work.probes.values() if p.error]
    if unfinished:
        work.notes.append(f"probe(s) gave no result: {', '.join(unfinished)}")
    if windows:
        return Diagnosis(UNSUPPORTED_PLATFORM, Severity.UNKNOWN,
                         "Windows is not supported: the host's shell has no POSIX sh to run fleet's probes "
                         "in; diagnose it by hand", (windows,))

    work.next_stage("parse")
    # Discovered values are read from redacted output: a secret the host printed stays masked.
    work.params = discover(runbook, work.params, work.probes)
    params = work.params.values
    work.facts, failed = parse_facts(runbook, work.probes, params, work.new_facts)
    work.notes.extend(failed)

    work.next_stage("rules")
    raised: list[str] = []

    def rule_failed(rule: Rule, exc: Exception) -> None:
        raised.append(f"rule {rule.verdict} ({runbook.path}:{rule.line}) raised {_error(exc)}; skipped")

    diagnosis = evaluate(runbook, work.facts, work.probes, params, {"name": host.name, "address": host.address},
                         sources_of(work.params), on_error=rule_failed)
    work.notes.extend(raised)
    return diagnosis


def _over_budget(work: _Work, budget_s: float) -> Interpretation:
    """The host's verdict when its interpretation ran out of time: inconclusive, with what is known."""
    stage = work.stage
    work.next_stage("")
    if work.redacted:
        probes = work.probes
    else:
        # Output that was not redacted yet must not reach a report.
        probes = {name: replace(p, stdout="", stderr="", error=p.error or "output withheld: it was not redacted "
                                "before the time budget ran out") for name, p in work.probes.items()}
    summary = (f"interpreting this host's output took longer than its {budget_s:g} s budget (stopped while in "
               f"stage {stage!r}); the other hosts were not held up")
    diagnosis = Diagnosis(INCONCLUSIVE, Severity.UNKNOWN, summary)
    return Interpretation(diagnosis, probes, {}, (*work.notes, summary), work.cpu_s, work.params, work.privilege)


def unusable_params(runbook: Runbook, params: Mapping[str, Any]) -> str:
    """Why the runbook's parameters cannot be used ("" when they can): a runbook parameter whose
    value is `Unusable` (Vault ciphertext, a failed template). A variable the runbook does not
    declare fails nothing."""
    return "; ".join(f"parameter '{p.name}' is {params[p.name].reason}" for p in runbook.parameters
                     if isinstance(params.get(p.name), Unusable))


def usable_as_text(resolved: Resolved) -> Resolved:
    """The parameters with each `Unusable` value as its text, which says why (for reports)."""
    return replace(resolved, values={k: str(v) if isinstance(v, Unusable) else v for k, v in resolved.values.items()})


def discover(runbook: Runbook, resolved: Resolved, probes: Mapping[str, ProbeOutput]) -> Resolved:
    """The host's parameters once its discovering probes' `param` lines are applied to the open ones."""
    found: dict[str, str] = {}
    for probe in runbook.probes:
        if probe.discovers:
            found.update(discovered_values(probes.get(probe.name), resolved.open & set(probe.discovers)))
    return with_discovered(resolved, found)


def sources_of(resolved: Resolved) -> dict[str, str]:
    """Where each parameter's value came from, as the words rules and reports use."""
    return {name: source.value for name, source in resolved.sources.items()}


def cap_probe_lines(probes: Mapping[str, ProbeOutput]) -> tuple[dict[str, ProbeOutput], int]:
    """Probe outputs with every line cut to MAX_LINE_CHARS, before any pattern reads them; and how many were cut."""
    capped, total = {}, 0
    for name, probe in probes.items():
        stdout, n_out = cap_lines(probe.stdout)
        stderr, n_err = cap_lines(probe.stderr)
        total += n_out + n_err
        capped[name] = replace(probe, stdout=stdout, stderr=stderr) if n_out or n_err else probe
    return capped, total


def redact_probes(probes: Mapping[str, ProbeOutput], redactor: Redactor) -> tuple[dict[str, ProbeOutput], int]:
    """Probe outputs with secrets masked, before anything parses or reports them; and how many were masked."""
    cleaned, total = {}, 0
    for name, probe in probes.items():
        stdout, n_out = redactor.redact(probe.stdout)
        stderr, n_err = redactor.redact(probe.stderr)
        total += n_out + n_err
        cleaned[name] = replace(probe, stdout=stdout, stderr=stderr) if n_out or n_err else probe
    return cleaned, total


def parse_facts(runbook: Runbook, probes: Mapping[str, ProbeOutput], params: Mapping[str, Any],
                new_facts: list[tuple], memo: ParseMemo = PARSES) -> tuple[dict[str, Any], list[str]]:
    """Facts of every probe that finished, and a note per parser that raised (its probe then has no facts).

    A built-in probe's parser reads its own inputs, bound to `params` by the runbook's `with:`
    (fleet.runbook.parser_inputs); a runbook's own command's parser reads the parameters. An
    output parsed before with the same values read (another host, same config) is not parsed
    again (fleet.memo); what was parsed here is added to `new_facts` for `memo.store`.
    """
    facts: dict[str, Any] = {}
    failed: list[str] = []
    for probe in runbook.probes:
        output = probes.get(probe.name)
        if output is None or not output.ran or output.error:
            continue
        try:
            inputs = parser_inputs(probe, params)
            facts[probe.name], new = memo.parse(probe.parser, PARSERS[probe.parser], output, inputs)
            if new is not None:
                new_facts.append(new)
        except Exception as exc:  # noqa: BLE001 - a parser bug on one host's odd output must not end the run
            failed.append(f"parser {probe.parser} failed on probe {probe.name}: {_error(exc)}")
    return facts, failed


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
