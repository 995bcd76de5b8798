"""Facts that several built-in probes' facts make together, computed once per host for the rules.

A derived fact is a name rules read like a probe's (`not own_processes`), built from the facts
of the built-in probes it `needs` (by their names, as `use:` names them). A runbook whose rules
name one must use those probes; on a host where one of them gave no facts it is absent, so a
rule reading it does not match, as one reading those probes' facts would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from fleet.probes.catalog import BUILTIN
from fleet.probes.procs import ProcessInfoFacts
from fleet.probes.process import ProcessFacts
from fleet.probes.unit import ServiceFacts


@dataclass(frozen=True)
class Derived:
    """A derived fact: `build` gets the facts of `needs` and of `optional` (None when absent) by name."""

    name: str
    description: str
    needs: tuple[str, ...]
    optional: tuple[str, ...]
    build: Callable[..., Any]

    def available(self, probe_parsers: Mapping[str, str]) -> bool:
        """Whether a runbook with these probes (name -> parser) can give it: the built-in probes
        it needs, under their own names."""
        return all(probe_parsers.get(name) == BUILTIN[name].parser for name in self.needs)

    def value(self, facts: Mapping[str, Any]) -> Any | None:
        """Its value from one host's usable facts; None when a probe it needs gave none."""
        if any(facts.get(name) is None for name in self.needs):
            return None
        return self.build(**{name: facts.get(name) for name in (*self.needs, *self.optional)})


def own_processes(process: ProcessFacts, unit: ServiceFacts, procs: ProcessInfoFacts | None) -> tuple[Any, ...]:
    """The processes matching the pattern that are this host's backend: of its own PID namespace
    (as /proc shows, when the procs probe ran) and not another container's or service's."""
    matching = procs.own(process.matching) if procs is not None else process.matching
    return unit.own(matching)


DERIVED: Mapping[str, Derived] = MappingProxyType({d.name: d for d in (
    Derived("own_processes", "the processes matching the pattern that are this host's backend's own",
            ("process", "unit"), ("procs",), own_processes),
)})


def derived_facts(facts: Mapping[str, Any], probe_parsers: Mapping[str, str]) -> dict[str, Any]:
    """The derived facts a runbook with these probes can give, from one host's usable facts."""
    found = {}
    for name, derived in DERIVED.items():
        if name not in probe_parsers and derived.available(probe_parsers):
            value = derived.value(facts)
            if value is not None:
                found[name] = value
    return found
