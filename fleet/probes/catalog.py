"""The built-in probes by name: what a runbook's `use:` may name."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from fleet.probes import discover, disk, http, kernel, listen, logs, memory, nginx, nginx_logs, process, procs, unit
from fleet.probes.spec import ProbeSpec

BUILTIN: Mapping[str, ProbeSpec] = MappingProxyType({
    module.PROBE.name: module.PROBE
    for module in (discover, process, unit, listen, http, logs, nginx, nginx_logs, procs, disk, kernel, memory)
})
