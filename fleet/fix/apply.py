"""`fleet fix apply`: run a plan's remedies in waves, each host locked, re-checked, verified, rolled back on failure.

Order of a run: refuse what must be refused (empty, old, runbook or inventory changed, too many
unhealthy hosts); ask once per cause group unless --yes; then waves: the canaries of every cause
(default 1 host each), then batches; a group whose canary failed goes no further, and the run
stops at --max-failures. Ctrl-C or SIGTERM never cuts a host in half: the wave in flight ends
(each of its hosts fixed, or rolled back), then the run stops and records why.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from fleet.errors import FleetError
from fleet.executor import run_pool
from fleet.fix import actions, audit
from fleet.fix.plan import privilege_of, remedy_for
from fleet.fix.policy import Risk, allowed
from fleet.fix.remote import Remote
from fleet.fix.verify import until_healthy
from fleet.models import Host, Privilege, TransportStatus
from fleet.runbook import Runbook

# A host's whole fix (lock, re-check, steps, verification, rollback) is bounded by its own steps'
# deadlines; the pool must never abandon it half-way, so its own limit is only a backstop.
_HOST_BACKSTOP_S = 3600.0


class Refused(FleetError):
    """apply will not start: the plan or the fleet is not fit to act on (exit 2)."""


class Outcome(str, enum.Enum):
    FIXED = "fixed"
    FIX_FAILED = "fix_failed"
    STALE = "stale"
    LOCKED = "locked"
    SKIPPED_RISK = "skipped_risk"
    CAPPED = "capped"
    DECLINED = "declined"
    NOT_ATTEMPTED = "not_attempted"
    ERROR = "error"


@dataclass(frozen=True)
class ApplyOptions:
    yes: bool = False
    canary: int = 1
    batch: str = "25%"
    max_failures: int = 1
    max_unhealthy_pct: float = 50.0
    allow_risk: Risk = Risk.MEDIUM
    url: str | None = None
    url_ca: str | None = None
    max_age_s: float = 15 * 60
    forks: int = 50


@dataclass(frozen=True)
class HostOutcome:
    name: str
    outcome: Outcome
    reason: str = ""
    verification: Mapping[str, Any] = field(default_factory=dict)
    # What the remedy's evidence commands printed before it acted (a hanging backend's stack, its log).
    evidence: tuple[Mapping[str, Any], ...] = ()


def parse_percent(text: str, what: str) -> float:
    """`50%` or `50` as a number of percent (0-100)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise Refused(f"{what} takes a percentage like 50%, not {text!r}") from None
    if not 0 <= value <= 100:
        raise Refused(f"{what} must be between 0% and 100%, not {text!r}")
    return value


def batch_size(spec: str, group: int) -> int:
    """`N` hosts, or `P%` of the group (rounded up), at least one."""
    text = spec.strip()
    if text.endswith("%"):
        return max(1, math.ceil(group * parse_percent(text, "--batch") / 100))
    if not text.isdigit() or int(text) < 1:
        raise Refused(f"--batch takes a number of hosts or a percentage (N or P%), not {spec!r}")
    return int(text)


def check(plan: Mapping[str, Any], runbook_digest: str, inventory_digest: str, options: ApplyOptions,
          now: dt.datetime) -> None:
    """Refuse a plan that is empty, too old, made with another runbook or inventory, or a fleet too sick."""
    if not plan["fix"]:
        raise Refused("the plan has no host to fix (see its 'left alone' list)")
    try:
        created = dt.datetime.fromisoformat(plan["created_at"])
    except ValueError:
        raise Refused("the plan's creation time is unreadable") from None
    age = (now - created).total_seconds()
    if age > options.max_age_s or age < -60:
        raise Refused(f"the plan is {age / 60:.0f} minutes old (limit {options.max_age_s / 60:g}): hosts change; "
                      "make a new plan")
    if plan["runbook"].get("digest") != runbook_digest:
        raise Refused(f"the runbook {plan['runbook'].get('path')} changed since the plan was made: make a new plan")
    if plan["inventory"].get("digest") != inventory_digest:
        raise Refused("the inventory's hosts changed since the plan was made: make a new plan")
    counts = plan["counts"]
    sick = 100.0 * counts.get("problems", 0) / max(1, counts.get("hosts", 0))
    if sick > options.max_unhealthy_pct:
        raise Refused(f"{counts.get('problems')} of {counts.get('hosts')} hosts ({sick:.0f}%) have a problem, more "
                      f"than --max-unhealthy {options.max_unhealthy_pct:g}%: a systemic cause needs a human first")


def groups(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Plan entries by cause (verdict and remedy), in plan order."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        out.setdefault(entry["cause"], []).append(entry)
    return out


@dataclass
class Run:
    """One apply run: what it acts with, what it records, and when it must stop."""

    plan: Mapping[str, Any]
    plan_digest: str
    runbook: Runbook
    hosts: Mapping[str, Host]
    remote: Remote
    options: ApplyOptions
    journal: audit.Audit
    out_dir: str
    owner: str
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = ""
    # True once the first wave starts: before it, an interruption simply ends the run (nothing was done).
    acting: bool = False
    outcomes: dict[str, HostOutcome] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """Host output with the runbook's secrets masked, as diagnose masks probe output."""
        return self.remote.prepared.redactor.redact(text)[0]

    def execute(self, host: Host, action: actions.Action, phase: str) -> tuple[bool, str, dict[str, Any]]:
        """Run one action, journal it; (succeeded, a one-line account of its failure, its journal record)."""
        execution = self.remote.run(host, action)
        record = {"shell": action.shell, "status": execution.status.value, "exit_code": execution.exit_code,
                  **audit.output_record(execution.stdout, execution.stderr, self.redact)}
        self.journal.record("command", host=host.name, phase=phase, argv=list(action.argv), **record)
        if execution.status is not TransportStatus.OK:
            return False, f"{execution.status.value}: {execution.reason}", record
        if execution.exit_code != 0:
            said = execution.stderr.decode("utf-8", "replace").strip().split("\n")[-1][:300]
            return False, f"exit {execution.exit_code}{': ' + said if said else ''}", record
        return True, "", record

    def fix_host(self, entry: Mapping[str, Any]) -> HostOutcome:
        """Lock, re-check, act, verify (roll back on failure), unlock: one host's whole fix."""
        host = self.hosts[entry["name"]]
        remedy = entry["remedy"]
        self.journal.record("host_start", host=host.name, remedy=remedy["name"], fingerprint=remedy["fingerprint"])
        # The privilege the plan's diagnosis saw; the re-check below refuses to act if it changed.
        privilege = Privilege(entry["privilege"])
        lock = actions.lock(self.owner, privilege)
        execution = self.remote.run(host, lock)
        self.journal.record("lock", host=host.name, argv=list(lock.argv), status=execution.status.value,
                            exit_code=execution.exit_code,
                            **audit.output_record(execution.stdout, execution.stderr, self.redact))
        if execution.status is not TransportStatus.OK:
            return HostOutcome(host.name, Outcome.ERROR, f"{execution.status.value}: {execution.reason}")
        if execution.exit_code == actions.LOCKED_EXIT:
            held = execution.stdout.decode("utf-8", "replace").strip()[:300]
            return HostOutcome(host.name, Outcome.LOCKED, f"another fix holds {actions.LOCK_DIR} ({held})")
        if execution.exit_code != 0:
            return HostOutcome(host.name, Outcome.ERROR, "could not take the lock: "
                               + execution.stderr.decode("utf-8", "replace").strip()[:300])
        try:
            return self._locked(host, entry, privilege)
        finally:
            # a lock not freed is in the journal
            self.execute(host, actions.unlock(self.owner, privilege), "unlock")

    def _locked(self, host: Host, entry: Mapping[str, Any], privilege: Privilege) -> HostOutcome:
        remedy = entry["remedy"]
        fresh = self.remote.diagnose(host)
        built = remedy_for(self.runbook, fresh)
        stale = ""
        if fresh.diagnosis.verdict != entry["verdict"]:
            stale = f"the verdict is now {fresh.diagnosis.verdict} (planned for {entry['verdict']})"
        elif built is None or built.remedy.name != remedy["name"]:
            stale = "the remedy no longer applies"
        elif built.fingerprint != remedy["fingerprint"]:
            changed = [src for (src, old), (_, new) in zip(remedy["facts"], built.facts) if old != new]
            stale = f"facts changed since the plan: {', '.join(changed) or 'the commands it would run'}"
        elif built.problems:
            stale = "; ".join(built.problems)
        elif privilege_of(fresh) is not privilege:
            # Other commands than the plan shows would run (or, as a plain user, none could).
            stale = f"the login's privilege is now {privilege_of(fresh).value} (planned with {privilege.value})"
        self.journal.record("recheck", host=host.name, verdict=fresh.diagnosis.verdict,
                            fingerprint=built.fingerprint if built else None, privilege=privilege.value,
                            stale=stale)
        if stale:
            return HostOutcome(host.name, Outcome.STALE, stale)
        if not allowed(built.remedy.risk, self.options.allow_risk):  # the runbook's word, not the plan file's
            return HostOutcome(host.name, Outcome.SKIPPED_RISK, f"risk {built.remedy.risk.value} needs --allow-risk")
        done = audit.attempts_today(self.out_dir, host.name, remedy["name"], dt.datetime.now(dt.timezone.utc))
        if done >= built.remedy.max_per_day:
            return HostOutcome(host.name, Outcome.CAPPED, f"{done} attempts of {remedy['name']} in the last 24 h "
                               f"(cap {built.remedy.max_per_day})")
        self.journal.record("act", host=host.name, remedy=remedy["name"], plan=self.plan["id"])
        backup_dir = self.plan["backup_dir"]
        # Evidence that cannot be taken is recorded, not fatal.
        evidence = tuple(self.execute(host, action, "evidence")[2]
                         for action in actions.for_steps(built.evidence, backup_dir, privilege))
        for number, action in enumerate(actions.for_steps(built.steps, backup_dir, privilege), 1):
            ok, why, _ = self.execute(host, action, "step")
            if not ok:
                why = f"step {number} ({action.explain or action.argv[0]}) failed: {why}"
                failed = self._roll_back(host, built, privilege, why)
                return replace(failed, evidence=evidence)
        verification = until_healthy(self.remote, host, built.remedy.verify, self.options.url, self.options.url_ca)
        record = {"ok": verification.ok, "runs": list(verification.runs), "seconds": verification.seconds,
                  "reason": verification.reason,
                  "url": verification.url.__dict__ if verification.url else None}
        self.journal.record("verify", host=host.name, **record)
        if not verification.ok:
            failed = self._roll_back(host, built, privilege, f"verification failed: {verification.reason}", record)
            return replace(failed, evidence=evidence)
        return HostOutcome(host.name, Outcome.FIXED, "verified: " + " -> ".join(verification.runs), record, evidence)

    def _roll_back(self, host: Host, built: Any, privilege: Privilege, why: str,
                   record: Mapping[str, Any] | None = None) -> HostOutcome:
        backup_dir = self.plan["backup_dir"]
        rollback = (actions.restores(built.steps, backup_dir, privilege)
                    + actions.for_steps(built.rollback, backup_dir, privilege))
        failed = []
        for action in rollback:  # every rollback command runs, even after one failed
            ok, why_not, _ = self.execute(host, action, "rollback")
            failed += [] if ok else [why_not]
        self.journal.record("rollback", host=host.name, commands=len(rollback), failed=failed)
        note = (" rolled back" if rollback else " (no rollback declared)") + (f"; rollback failed: {failed[0]}"
                                                                              if failed else "")
        return HostOutcome(host.name, Outcome.FIX_FAILED, why + ";" + note, dict(record or {}))


def waves(entries: Sequence[Mapping[str, Any]], options: ApplyOptions,
          failed_causes: Callable[[], set[str]]) -> Iterator[list[Mapping[str, Any]]]:
    """Yield waves of plan entries: every cause's canaries first, then batches of the causes still sound."""
    by_cause = groups(entries)
    taken = {cause: 0 for cause in by_cause}
    first = True
    while True:
        wave = []
        for cause, members in by_cause.items():
            if cause in failed_causes():
                continue
            size = options.canary if first else batch_size(options.batch, len(members))
            wave += members[taken[cause]:taken[cause] + size]
            taken[cause] = min(len(members), taken[cause] + size)
        first = False
        if not wave:
            return
        yield wave


def apply(run: Run, approve: Callable[[str, list[Mapping[str, Any]]], bool]) -> dict[str, HostOutcome]:
    """Fix the plan's hosts; every host of the plan ends with an outcome."""
    entries: list[Mapping[str, Any]] = []
    for cause, members in groups(run.plan["fix"]).items():
        risk = Risk(members[0]["remedy"]["risk"])
        if not allowed(risk, run.options.allow_risk):
            for m in members:
                run.outcomes[m["name"]] = HostOutcome(m["name"], Outcome.SKIPPED_RISK,
                                                      f"risk {risk.value} needs --allow-risk {risk.value}")
        elif not run.options.yes and not approve(cause, members):
            for m in members:
                run.outcomes[m["name"]] = HostOutcome(m["name"], Outcome.DECLINED, "not approved")
        else:
            entries += members
    failures: list[str] = []
    failed_causes: set[str] = set()
    cause_of = {e["name"]: e["cause"] for e in entries}
    run.acting = True
    for number, wave in enumerate(waves(entries, run.options, lambda: failed_causes), 1):
        if run.stop.is_set() or len(failures) >= run.options.max_failures:
            break
        run.journal.record("wave", number=number, hosts=[e["name"] for e in wave])
        for entry, outcome in run_pool(
                wave, lambda e, _deadline: run.fix_host(e), forks=run.options.forks, deadline_s=_HOST_BACKSTOP_S,
                on_overrun=lambda e, d: HostOutcome(e["name"], Outcome.ERROR, "the fix overran its backstop"),
                on_error=lambda e, exc: HostOutcome(e["name"], Outcome.ERROR, f"internal error: {exc}")):
            run.outcomes[entry["name"]] = outcome
            run.journal.record("host_end", host=entry["name"], outcome=outcome.outcome.value, reason=outcome.reason)
            if outcome.outcome in (Outcome.FIX_FAILED, Outcome.ERROR):
                failures.append(entry["name"])
                failed_causes.add(cause_of[entry["name"]])
    why = run.stop_reason if run.stop.is_set() else (
        f"stopped after {len(failures)} failure(s) (--max-failures {run.options.max_failures})"
        if len(failures) >= run.options.max_failures else "its cause's canary or an earlier batch failed")
    for entry in run.plan["fix"]:
        run.outcomes.setdefault(entry["name"], HostOutcome(entry["name"], Outcome.NOT_ATTEMPTED, why))
    return run.outcomes
