"""Runbook parameters for one host, and where each value came from.

Precedence, lowest first: the runbook's default < a value discovered on the host < an
inventory variable < `--var`. A value the user gave is never replaced by a discovered one.

Discovery happens on the host, inside the one script fleet sends: a probe that lists a
parameter under `discovers` prints `param NAME=VALUE` lines, the script reads them into
`FLEET_D_NAME` before the later probes run, and those probes see `"$FLEET_D_NAME"` where their
template says `{{ NAME }}` (see `HostValue`). The controller reads the same lines from the same
output (`discovered_values`), so the values the rules and the report show are the ones the
probes used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from fleet.errors import RunbookError
from fleet.models import ProbeOutput

#: Prefix of the shell variables that carry discovered values to later probes.
ENV_PREFIX = "FLEET_D_"
#: Prefix of the lines a discovering probe prints for each value it found.
LINE_PREFIX = "param "


class Source(str, enum.Enum):
    """Where a parameter's value came from."""

    DEFAULT = "default"
    DISCOVERED = "discovered"
    INVENTORY = "inventory"
    VAR = "--var"


@dataclass(frozen=True)
class HostValue:
    """A parameter whose value the host decides: rendered into a command as `"$FLEET_D_NAME"`."""

    name: str

    def shell(self) -> str:
        return f'"${ENV_PREFIX}{self.name}"'

    def __str__(self) -> str:
        return self.shell()


@dataclass(frozen=True)
class Resolved:
    """One host's parameters with their sources; `open` names those the host may still discover."""

    values: Mapping[str, Any]
    sources: Mapping[str, Source]
    open: frozenset[str] = field(default_factory=frozenset)

    def for_commands(self) -> dict[str, Any]:
        """Values for rendering probe commands: open parameters become host-side variables."""
        return {name: HostValue(name) if name in self.open else value for name, value in self.values.items()}

    def key(self) -> str:
        """Equal for hosts whose scripts are byte-for-byte the same."""
        return repr((sorted(self.values.items(), key=lambda kv: kv[0]), sorted(self.open)))


def _typed(name: str, value: Any, default: Any, strict: bool) -> Any:
    """A text value for a numeric default as a number (`--var port=8001`); RunbookError when `strict`."""
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            if strict:
                raise RunbookError(f"parameter {name!r} must be a whole number, not {value!r}") from None
    return value


def resolve(defaults: Mapping[str, Any], discoverable: frozenset[str], host_vars: Mapping[str, Any],
            overrides: Mapping[str, Any]) -> Resolved:
    """Defaults < inventory variables < --var; parameters nobody gave and a probe discovers stay open."""
    values = dict(defaults)
    sources = {name: Source.DEFAULT for name in values}
    # Variables the runbook does not declare are kept too, as before: a user's runbook may read them.
    for source, given in ((Source.INVENTORY, host_vars), (Source.VAR, overrides)):
        for name, value in given.items():
            values[name] = _typed(name, value, defaults[name], strict=True) if name in defaults else value
            sources[name] = source
    still_open = frozenset(n for n in discoverable if sources.get(n) is Source.DEFAULT)
    return Resolved(values, sources, still_open)


def discovered_values(output: ProbeOutput | None, names: frozenset[str]) -> dict[str, str]:
    """The `param NAME=VALUE` lines of a discovering probe, read as the host's script reads them.

    The script keeps the last non-empty value per name and splits lines at newlines only, so
    this does too; a probe that did not finish gave the host nothing either.
    """
    found: dict[str, str] = {}
    if output is None or not output.ran:
        return found
    for line in output.stdout.split("\n"):
        if not line.startswith(LINE_PREFIX):
            continue
        name, sep, value = line[len(LINE_PREFIX):].partition("=")
        if sep and value and name in names:
            found[name] = value
    return found


def with_discovered(resolved: Resolved, found: Mapping[str, str]) -> Resolved:
    """The parameters after discovery: open ones take what the host found, the rest keep theirs."""
    values, sources = dict(resolved.values), dict(resolved.sources)
    for name, value in found.items():
        if name in resolved.open:
            values[name] = _typed(name, value, resolved.values[name], strict=False)
            sources[name] = Source.DISCOVERED
    return Resolved(values, sources)
