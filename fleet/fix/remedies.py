"""Remedies: a rule's automatable fixes, declared as data in the runbook (docs/runbook-format.md, "Remedies").

A rule's `remedies:` is a list; the first whose `when` holds for a host is that host's remedy:

    remedies:
      - name: point_nginx_upstream      # [a-z0-9_]
        risk: low                       # low | medium | high | manual (never run by fleet)
        when: EXPR                      # optional: the remedy applies to this host
        preconditions: [EXPR, ...]      # must all hold at plan time and again just before acting
        fingerprint: [EXPR, ...]        # facts the remedy depends on; any change makes the host stale
        evidence: [FIX ENTRY, ...]      # run first, output kept in the journal (never fails the remedy)
        steps: [FIX ENTRY, ...]         # the remedy itself: fix entries as in `fix:` (argv, service, edit)
        rollback: [FIX ENTRY, ...]      # after a failed step or verification; edited files are restored first
        verify: {healthy_runs: 2, deadline: 60}
        max_per_day: 3                  # attempts per host per 24 h

Every value of a step comes from the host's parsed facts and the runbook parameters through the
same fix-entry templates as `fix:`; each step is then checked (fleet.fix.policy): complete, no
control characters, nothing from the never-automated list.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fleet import fixes, fixspec
from fleet.errors import RunbookError
from fleet.fix.policy import Risk, step_problem
from fleet.report.document import jsonable

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYS = {"name", "description", "risk", "when", "preconditions", "fingerprint", "evidence", "steps", "rollback",
         "verify", "max_per_day"}
# Compilers handed over by the runbook loader (it owns the rule sandbox and the fix-entry grammar).
ParseSteps = Callable[[Any, int], tuple[fixspec.FixEntry, ...]]
Expression = Callable[[str, str, int], Any]


@dataclass(frozen=True)
class Verify:
    """When a fixed host counts as healthy: `healthy_runs` consecutive healthy diagnoses within `deadline_s`."""

    healthy_runs: int = 2
    deadline_s: float = 60.0


@dataclass(frozen=True)
class Remedy:
    """One declared remedy of a rule, compiled."""

    name: str
    risk: Risk
    line: int
    description: str = ""
    when: Any = None
    when_source: str = ""
    preconditions: tuple[tuple[str, Any], ...] = ()
    fingerprint: tuple[tuple[str, Any], ...] = ()
    evidence: tuple[fixspec.FixEntry, ...] = ()
    steps: tuple[fixspec.FixEntry, ...] = ()
    rollback: tuple[fixspec.FixEntry, ...] = ()
    verify: Verify = Verify()
    max_per_day: int = 3


@dataclass(frozen=True)
class Built:
    """A remedy made concrete for one host: its steps, and everything apply re-checks."""

    remedy: Remedy
    steps: tuple[fixes.Step, ...]
    rollback: tuple[fixes.Step, ...]
    evidence: tuple[fixes.Step, ...]
    preconditions: tuple[tuple[str, bool], ...]
    facts: tuple[tuple[str, Any], ...]
    fingerprint: str
    # Why fleet cannot run it on this host (empty: it can).
    problems: tuple[str, ...]


def parse(value: Any, path: str, line: int, parse_steps: ParseSteps, expression: Expression) -> tuple[Remedy, ...]:
    """A rule's `remedies:` list, compiled; RunbookError (file and line) when malformed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RunbookError("remedies must be a list", path, line)
    remedies: list[Remedy] = []
    for node in value:
        at = getattr(node, "line", 0) or line
        if not isinstance(node, Mapping):
            raise RunbookError("a remedy must be a mapping", path, at)
        unknown = sorted(set(node) - _KEYS)
        if unknown:
            raise RunbookError(f"unknown key {unknown[0]!r} in a remedy (allowed: {', '.join(sorted(_KEYS))})",
                               path, at)
        name = node.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in {r.name for r in remedies}:
            raise RunbookError(f"a remedy needs a unique name of lower-case letters, digits and _ (not {name!r})",
                               path, at)
        try:
            risk = Risk(node.get("risk"))
        except ValueError:
            raise RunbookError(f"remedy {name}: risk must be one of {', '.join(r.value for r in Risk)}",
                               path, at) from None
        if not node.get("steps"):
            raise RunbookError(f"remedy {name}: steps must be a non-empty list of fix entries", path, at)
        exprs = {key: tuple((str(src), expression(str(src), f"remedy {name} {key}", at))
                            for src in _texts(node.get(key), f"remedy {name}: {key}", path, at))
                 for key in ("preconditions", "fingerprint")}
        remedies.append(Remedy(
            name, risk, at, str(node.get("description", "")),
            expression(str(node["when"]), f"remedy {name} when", at) if "when" in node else None,
            " ".join(str(node.get("when", "")).split()),
            exprs["preconditions"], exprs["fingerprint"],
            parse_steps(node.get("evidence"), at), parse_steps(node["steps"], at), parse_steps(node.get("rollback"), at),
            _verify(node.get("verify"), name, path, at), _count(node.get("max_per_day", 3), name, path, at)))
    return tuple(remedies)


def _texts(value: Any, what: str, path: str, line: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RunbookError(f"{what} must be a list of expressions", path, line)
    return value


def _count(value: Any, name: str, path: str, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RunbookError(f"remedy {name}: max_per_day must be a whole number from 1", path, line)
    return value


def _verify(value: Any, name: str, path: str, line: int) -> Verify:
    if value is None:
        return Verify()
    if not isinstance(value, Mapping) or set(value) - {"healthy_runs", "deadline"}:
        raise RunbookError(f"remedy {name}: verify is a mapping of healthy_runs and deadline", path, line)
    runs, deadline = value.get("healthy_runs", 2), value.get("deadline", 60)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1 or isinstance(deadline, bool) \
            or not isinstance(deadline, (int, float)) or not 0 < deadline <= 3600:
        raise RunbookError(f"remedy {name}: verify needs healthy_runs >= 1 and a deadline of 1-3600 s", path, line)
    return Verify(runs, float(deadline))


def choose(remedies: tuple[Remedy, ...], context: Mapping[str, Any]) -> Remedy | None:
    """The first remedy whose `when` holds for this host (a `when` that fails to evaluate does not hold)."""
    for remedy in remedies:
        if remedy.when is None or _holds(remedy.when, context):
            return remedy
    return None


def _holds(expression: Any, context: Mapping[str, Any]) -> bool:
    try:
        return bool(expression(**context))
    except Exception:  # noqa: BLE001 - a remedy that cannot judge this host does not apply to it
        return False


def build(remedy: Remedy, context: Mapping[str, Any], verdict: str) -> Built:
    """Make `remedy` concrete for one host's facts, with the problems that keep fleet from running it."""
    steps = _steps(remedy.steps, context)
    rollback = _steps(remedy.rollback, context)
    evidence = _steps(remedy.evidence, context)
    preconditions = tuple((src, _holds(expr, context)) for src, expr in remedy.preconditions)
    facts = tuple((src, _value(expr, context)) for src, expr in remedy.fingerprint)
    problems = [f"precondition does not hold: {src}" for src, ok in preconditions if not ok]
    if remedy.risk is Risk.MANUAL:
        problems.append("the runbook marks this remedy manual")
    for step in (*steps, *rollback):
        why = step_problem(step)
        if why:
            problems.append(f"{why}: {' '.join(fixes.render(step))[:300]}")
    if not any(fixes.shell_line(s) or isinstance(s, fixes.EditFile) for s in steps):
        notes = "; ".join(s.explain for s in steps if isinstance(s, fixes.Note))
        problems.append(f"no command to run on this host{': ' + notes if notes else ''}")
    return Built(remedy, steps, rollback, evidence, preconditions, facts,
                 fingerprint(verdict, remedy.name, facts, steps), tuple(dict.fromkeys(problems)))


def fingerprint(verdict: str, name: str, facts: tuple[tuple[str, Any], ...], steps: tuple[fixes.Step, ...]) -> str:
    """A digest of the verdict, the facts the remedy depends on and the exact steps it would run."""
    data = {"verdict": verdict, "remedy": name, "facts": [[k, v] for k, v in facts], "steps": step_data(steps)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def step_data(steps: tuple[fixes.Step, ...]) -> list[dict[str, Any]]:
    """Steps as JSON data (the plan's record of exactly what will run)."""
    return [{"kind": s.kind, **jsonable(s)} for s in steps]


def _steps(entries: tuple[fixspec.FixEntry, ...], context: Mapping[str, Any]) -> tuple[fixes.Step, ...]:
    return tuple(step for entry in entries for step in fixspec.build(entry, context))


def _value(expression: Any, context: Mapping[str, Any]) -> Any:
    try:
        return jsonable(expression(**context))
    except Exception as exc:  # noqa: BLE001 - an unreadable fact is part of the fingerprint as such
        return f"(not available: {type(exc).__name__})"
