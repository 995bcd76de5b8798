"""Parser `memory`: how much memory is available, swap, load and memory pressure (PSI).

Input (probe `memory` of the host runbook): `== meminfo ==` (/proc/meminfo: `Key:   N kB`),
`== loadavg cpus=N ==` (/proc/loadavg; N from /proc/stat), and, on kernels with PSI,
`== psi-memory ==` (/proc/pressure/memory: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`).
Kernels before 3.14 have no MemAvailable: it is then estimated as MemFree + Buffers + Cached
and `available_estimated` says so. Inside a container /proc/meminfo is usually the host's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import clip, key_values, to_float, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import ProbeSpec
from fleet.probes.disk import human_kb


@dataclass(frozen=True)
class MemoryFacts:
    """Memory in KiB (None when /proc/meminfo did not say), load averages, PSI percentages."""

    total_kb: int | None
    available_kb: int | None
    available_estimated: bool
    free_kb: int | None
    swap_total_kb: int | None
    swap_free_kb: int | None
    load: tuple[float, ...]
    cpus: int | None
    psi_some_avg60: float | None
    psi_full_avg60: float | None
    notes: tuple[str, ...] = ()

    @property
    def available_pct(self) -> float | None:
        if not self.total_kb or self.available_kb is None:
            return None
        return round(100.0 * self.available_kb / self.total_kb, 1)

    @property
    def total_human(self) -> str:
        return human_kb(self.total_kb)

    @property
    def available_human(self) -> str:
        return human_kb(self.available_kb)

    @property
    def load_per_cpu(self) -> float | None:
        if not self.load or not self.cpus:
            return None
        return round(self.load[0] / self.cpus, 2)

    @property
    def evidence(self) -> str:
        lines = []
        if self.total_kb is not None:
            line = f"memory: {self.available_human} available of {self.total_human}"
            if self.available_pct is not None:
                line += f" ({self.available_pct}%{', estimated' if self.available_estimated else ''})"
            if self.swap_total_kb is not None:
                line += (f"; swap {human_kb(self.swap_free_kb)} free of {human_kb(self.swap_total_kb)}"
                         if self.swap_total_kb else "; no swap")
            lines.append(line)
        if self.load:
            lines.append(f"load average {' '.join(f'{x:.2f}' for x in self.load)}"
                         + (f" on {self.cpus} CPUs" if self.cpus else ""))
        if self.psi_some_avg60 is not None:
            lines.append(f"memory pressure (PSI, last 60 s): some {self.psi_some_avg60}%, full {self.psi_full_avg60}%")
        lines.extend(self.notes)
        return "\n".join(lines)


def _finite(text: Any) -> float | None:
    value = to_float(text)
    return value if value is not None and math.isfinite(value) else None


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> MemoryFacts:
    """Read /proc/meminfo, /proc/loadavg and /proc/pressure/memory as the probe printed them."""
    info: dict[str, int] = {}
    load: tuple[float, ...] = ()
    cpus = None
    psi: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for section in sections(output.stdout):
        if section.name == "meminfo":
            for line in section.lines:
                key, sep, rest = line.partition(":")
                value = to_int(rest.split()[0]) if sep and rest.split() else None
                if value is not None and key.strip() and key.strip() not in info:
                    info[key.strip()] = value
        elif section.name == "loadavg":
            cpus = to_int(section.attrs.get("cpus"))
            cpus = cpus if cpus and cpus > 0 else None
            for line in section.lines:
                parts = [to_float(x) for x in line.split()[:3]]
                if len(parts) == 3 and all(p is not None and math.isfinite(p) and p >= 0 for p in parts):
                    load = tuple(parts)  # type: ignore[arg-type]
                    break
        elif section.name == "psi-memory":
            for line in section.lines:
                kind, _, rest = line.strip().partition(" ")
                if kind in ("some", "full"):
                    psi[kind] = key_values(rest)
    total = info.get("MemTotal")
    available = info.get("MemAvailable")
    estimated = False
    if available is None and total is not None and "MemFree" in info:
        available = info["MemFree"] + info.get("Buffers", 0) + info.get("Cached", 0)
        estimated = True
        notes.append("no MemAvailable (kernel older than 3.14): estimated as MemFree + Buffers + Cached")
    if total is None:
        notes.append("no MemTotal in /proc/meminfo" if any(s.name == "meminfo" for s in sections(output.stdout))
                     else "no /proc/meminfo output")
    return MemoryFacts(
        total_kb=total, available_kb=available, available_estimated=estimated, free_kb=info.get("MemFree"),
        swap_total_kb=info.get("SwapTotal"), swap_free_kb=info.get("SwapFree"), load=load, cpus=cpus,
        psi_some_avg60=_finite(psi.get("some", {}).get("avg60")),
        psi_full_avg60=_finite(psi.get("full", {}).get("avg60")),
        notes=tuple(clip(n) for n in notes),
    )


PROBE = ProbeSpec(
    name="memory",
    parser="memory",
    parse=parse,
    description='How much memory is available, and how loaded is the host?',
    timeout_s=10,
)
