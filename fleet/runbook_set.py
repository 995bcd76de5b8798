"""Several runbooks in one connection per host (`--runbook 502,host`).

The runbooks' probes are sent as one script (each probe carrying its own runbook's prelude), the
facts parsed once, and each runbook's rules walked on its own probes' facts: a host gets a verdict
per runbook, and its overall verdict is the worst of them (a full disk or an OOM kill is often
the real cause of a 502).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from fleet.errors import RunbookError
from fleet.models import Diagnosis, HostResult, Severity, TRANSPORT_VERDICTS
from fleet.runbook import Runbook, evaluate, load_runbook

# Worst first: the verdict a host with several runbooks is listed under.
_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.OK: 3}


def load_runbooks(spec: str) -> tuple[Runbook, ...]:
    """The runbooks a comma list names (`502,host`), each once, in the order given."""
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise RunbookError(f"--runbook takes a name, a path or a comma list of them, not {spec!r}")
    return tuple(load_runbook(name) for name in names)


def combine(books: Sequence[Runbook]) -> Runbook:
    """One runbook whose script holds every runbook's probes; its rules are the parts' (see `judge`)."""
    if len(books) == 1:
        return books[0]
    probes, params, owner = [], {}, {}
    for book in books:
        for probe in book.probes:
            if probe.name in owner:
                raise RunbookError(f"runbooks {owner[probe.name]!r} and {book.name!r} both have a probe named "
                                   f"{probe.name!r}; they cannot run in one script")
            owner[probe.name] = book.name
            probes.append(probe)  # a runbook's prelude travels with each of its own probes
        for param in book.parameters:
            if param.name in params and params[param.name].default != param.default:
                raise RunbookError(f"runbooks disagree on parameter {param.name!r}'s default "
                                   f"({params[param.name].default!r} and {param.default!r})")
            params.setdefault(param.name, param)
    return Runbook(name="+".join(b.name for b in books), description="; ".join(b.description for b in books),
                   path=", ".join(b.path for b in books), parameters=tuple(params.values()), probes=tuple(probes),
                   rules=(), redact=tuple(dict.fromkeys(r for b in books for r in b.redact)))


def judge(result: HostResult, books: Sequence[Runbook]) -> tuple[HostResult, list[dict[str, Any]]]:
    """Each runbook's verdict for a host run with the combined script, and the host's overall (worst) one."""
    if result.diagnosis.verdict in TRANSPORT_VERDICTS:
        return result, []
    host = {"name": result.host.name, "address": result.host.address}
    verdicts = []
    for book in books:
        own = {p.name for p in book.probes}
        facts = {k: v for k, v in result.facts.items() if k in own}
        probes = {k: v for k, v in result.probes.items() if k in own}
        verdicts.append((book.name, evaluate(book, facts, probes, result.params, host, result.param_sources)))
    name, worst = min(verdicts, key=lambda nv: _RANK[nv[1].severity])
    problems = [(n, d) for n, d in verdicts if d.severity is not Severity.OK]
    others = [f"{n}: {d.verdict}" for n, d in problems if d is not worst]
    summary = worst.summary + (f" (also {', '.join(others)})" if others else "")
    overall = Diagnosis(worst.verdict, worst.severity, summary,
                        tuple(f"[{n}] {line}" for n, d in verdicts for line in d.evidence),
                        # a comment line names each runbook's part: the fix stays safe to paste whole
                        tuple(line for n, d in problems for line in (f"# [{n}]", *d.fix)),
                        tuple(step for _, d in problems for step in d.steps))
    return replace(result, diagnosis=overall), [_verdict_entry(n, d) for n, d in verdicts]


def _verdict_entry(runbook: str, diagnosis: Diagnosis) -> Mapping[str, Any]:
    return {"runbook": runbook, "verdict": diagnosis.verdict, "severity": diagnosis.severity.value,
            "summary": diagnosis.summary, "evidence": list(diagnosis.evidence), "fix": list(diagnosis.fix)}
