"""Comparing two runs host by host: how an operator checks that a fix worked across the fleet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import Severity, TRANSPORT_VERDICTS


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


def _bad(host: Mapping[str, Any]) -> bool:
    return host["severity"] != Severity.OK.value


def _kind(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    if new["verdict"] in TRANSPORT_VERDICTS and old["verdict"] not in TRANSPORT_VERDICTS:
        return "newly_unreachable"
    if _bad(old) and not _bad(new):
        return "fixed"
    if not _bad(old) and _bad(new):
        return "newly_broken"
    if _bad(new):
        return "still_broken" if old["verdict"] == new["verdict"] else "changed_problem"
    return "still_healthy"


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Diff:
    """Each host of either report with what happened to it between the two runs."""
    before = {h["name"]: h for h in old["hosts"]}
    after = {h["name"]: h for h in new["hosts"]}
    names = list(after) + [n for n in before if n not in after]
    changes = [HostChange(n, _kind(before.get(n), after.get(n)),
                          before[n]["verdict"] if n in before else None,
                          after[n]["verdict"] if n in after else None) for n in names]
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.name))
    return Diff(tuple(changes))
