"""A run's report as typed data: one `HostEntry` per host, and the `Report` of the whole run.

These are what the run loop (fleet/runloop.py) hands its observers and what the report document
is made of; fleet/report/document.py alone turns them into JSON and back. The values a report
keeps as they are (facts, probe outputs, fix steps, parameters) are JSON values already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from fleet.models import Judged, Severity

# How a healthy verdict says a check could not be judged ("healthy; nginx -t not judged: ...").
NOT_JUDGED = " not judged: "


@dataclass(frozen=True)
class HostEntry(Judged):
    """One host as the report has it: its verdict, what decided it, the fix, and what was kept of its run."""

    name: str
    address: str
    groups: tuple[str, ...]
    verdict: str
    severity: Severity
    summary: str
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    # The fix as data (fleet.fixes steps), as JSON values.
    fix_steps: tuple[Any, ...] = ()
    # Per probe: exit_code, stdout, stderr, duration_s, truncated, error (outputs cut to what reports keep).
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    parameter_sources: Mapping[str, str] = field(default_factory=dict, hash=False)
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()
    duration_s: float = 0.0
    # With several runbooks (`--runbook 502,host`): the host's verdict under each.
    runbooks: tuple[Mapping[str, Any], ...] = ()

    @property
    def not_judged(self) -> bool:
        """Healthy, but a check could not be judged (the summary says which and why)."""
        return not self.problem and NOT_JUDGED in self.summary


@dataclass(frozen=True)
class RunbookRef:
    """Which runbook judged the hosts: its name, description and where it was read from."""

    name: str
    description: str = ""
    source: str = ""


@dataclass(frozen=True)
class Report:
    """A whole run: what ran on which hosts, each host's entry, and how the run ended."""

    runbook: RunbookRef
    hosts: tuple[HostEntry, ...]
    inventory: str = ""
    limit: str | None = None
    # The runbook's parameters for the run (redacted), before any host's values.
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    started_at: str = ""
    duration_s: float = 0.0
    # Cut short (Ctrl-C, SIGTERM): `not_diagnosed` names the hosts it never reached.
    partial: bool = False
    notes: tuple[str, ...] = ()
    not_diagnosed: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[HostEntry, ...]:
        return tuple(h for h in self.hosts if h.problem)

    def retry_hosts(self) -> list[str]:
        """Problem hosts, then the hosts never diagnosed: what a re-run needs."""
        return [h.name for h in self.problems] + list(self.not_diagnosed)
