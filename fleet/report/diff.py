"""Comparing two runs host by host: how an operator checks that a fix worked across the fleet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.report.document import hosts_of
from fleet.report.model import HostEntry


#: Change kinds, in the order a reader wants them: what got worse first.
KINDS = ("newly_unreachable", "newly_broken", "still_broken", "changed_problem", "fixed", "still_healthy",
         "added", "removed")


@dataclass(frozen=True)
class HostChange:
    name: str
    kind: str
    old_verdict: str | None
    new_verdict: str | None


@dataclass(frozen=True)
class Diff:
    changes: tuple[HostChange, ...]

    def counts(self) -> dict[str, int]:
        counted = Counter(c.kind for c in self.changes)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}


def _kind(old: HostEntry | None, new: HostEntry | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    if not new.reached and old.reached:
        return "newly_unreachable"
    if old.problem and not new.problem:
        return "fixed"
    if not old.problem and new.problem:
        return "newly_broken"
    if new.problem:
        return "still_broken" if old.verdict == new.verdict else "changed_problem"
    return "still_healthy"


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Diff:
    """Each host of either report with what happened to it between the two runs."""
    before = {h.name: h for h in hosts_of(old)}
    after = {h.name: h for h in hosts_of(new)}
    names = list(after) + [n for n in before if n not in after]
    changes = [HostChange(n, _kind(before.get(n), after.get(n)),
                          before[n].verdict if n in before else None,
                          after[n].verdict if n in after else None) for n in names]
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.name))
    return Diff(tuple(changes))
