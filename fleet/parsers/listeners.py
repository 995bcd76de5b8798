"""Parser `listeners`: which TCP sockets listen, on which address, owned by which process.

Input (probe `listen`): `== listen source=netstat ==` (`netstat -tlnp`), `== listen source=ss ==`
(`ss -tlnp`), or `== listen source=proc-tcp ==` / `proc-tcp6` (raw /proc/net/tcp*, hex).
Without privilege netstat shows `-` and ss shows no `users:(...)`: the owner is then unknown
and the facts say so (`pids_visible`, `degraded`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.parsers._common import MAX_ITEMS, clip, hostport, sections, to_int

_SS_USER = re.compile(r'\("([^"]*)",pid=(\d+)')


@dataclass(frozen=True)
class Listener:
    """One listening socket. `address` is as the tool printed it, without brackets:
    "0.0.0.0", "::" and "*" (ss: a dual-stack socket) are wildcards. `family` is
    "ipv4", "ipv6" or "any" (dual-stack)."""

    address: str
    port: int
    pid: int | None
    program: str | None
    family: str
    line: str

    @property
    def hostport(self) -> str:
        return hostport(self.address, self.port)


@dataclass(frozen=True)
class ListenFacts:
    """All TCP listeners, and whether their owners could be seen."""

    source: str
    listeners: tuple[Listener, ...]
    pids_visible: bool
    notes: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        """True when owners are unknown (no privilege, or /proc fallback)."""
        return bool(self.listeners) and not self.pids_visible

    def on_port(self, port: Any) -> tuple[Listener, ...]:
        port = to_int(port)
        return tuple(item for item in self.listeners if item.port == port)

    def evidence_for(self, port: Any) -> str:
        """The tool's lines for the listeners on `port`, one per line."""
        return "\n".join(item.line for item in self.on_port(port))

    def addresses_on(self, port: Any) -> str:
        """`127.0.0.1:8000, [::1]:8000`: where something listens on `port`."""
        return ", ".join(item.hostport for item in self.on_port(port))


def _family(address: str, dual_stack_wildcard: bool) -> str:
    """ss prints a dual-stack socket as "*" and a v6-only one as "[::]"; netstat and /proc
    print "::" for both, and Linux defaults to dual-stack (bindv6only=0), so there "::"
    is read as "any"."""
    if address == "*" or (address == "::" and dual_stack_wildcard):
        return "any"
    return "ipv6" if ":" in address else "ipv4"


def _netstat(lines: list[str]) -> list[Listener]:
    result = []
    for line in lines:
        parts = line.split(None, 6)
        if len(parts) < 6 or not parts[0].startswith("tcp") or parts[5] != "LISTEN":
            continue
        address, _, port = parts[3].rpartition(":")
        owner = parts[6].strip() if len(parts) > 6 else "-"
        pid, _, program = owner.partition("/")
        result.append(_listener(address, port, pid, program, _family(address, True), line))
    return result


def _ss(lines: list[str]) -> list[Listener]:
    result = []
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or parts[0] != "LISTEN":
            continue
        address, _, port = parts[3].rpartition(":")
        address = address.strip("[]")
        users = _SS_USER.findall(line)
        # All processes sharing the socket are listed (nginx master and workers): the
        # lowest pid is the parent.
        program, pid = min(users, key=lambda u: int(u[1])) if users else ("", "")
        result.append(_listener(address, port, pid, program, _family(address, False), line))
    return result


def _proc(lines: list[str]) -> list[Listener]:
    """/proc/net/tcp{,6}: `sl local rem st ...`, hex addresses in host byte order per 32 bits."""
    result = []
    for line in lines:
        parts = line.split()
        if len(parts) < 4 or parts[3] != "0A" or ":" not in parts[1]:
            continue
        hexaddr, _, hexport = parts[1].partition(":")
        try:
            raw = bytes.fromhex(hexaddr)
            if len(raw) not in (4, 16):
                continue
            swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = str(ipaddress.ip_address(swapped))
            port = int(hexport, 16)
        except ValueError:
            continue
        result.append(_listener(address, str(port), "", "", _family(address, True), line))
    return result


def _listener(address: str, port: str, pid: str, program: str, family: str, line: str) -> Listener:
    return Listener(
        address=address or "*",
        port=to_int(port) or 0,
        pid=to_int(pid),
        program=clip(program.strip(), 64) or None,
        family=family,
        line=clip(line.strip()),
    )


def parse(output: ProbeOutput, params: Mapping[str, Any]) -> ListenFacts:
    """Collect every listener from whichever source the probe used."""
    found: list[Listener] = []
    source = "unknown"
    for section in sections(output.stdout):
        kind = section.attrs.get("source", "") if section.name == "listen" else ""
        if kind == "netstat":
            found += _netstat(section.lines)
        elif kind == "ss":
            found += _ss(section.lines)
        elif kind in ("proc-tcp", "proc-tcp6"):
            found += _proc(section.lines)
            kind = "proc"
        if kind:
            source = kind
    # A socket can appear twice (ss lists one line per socket, /proc per family); keep one.
    unique = list({(item.address, item.port, item.pid): item for item in found}.values())
    visible = any(item.pid is not None for item in unique)
    notes = []
    if source == "unknown":
        notes.append("no listener output")
    elif unique and not visible:
        notes.append(
            "process owners not shown (/proc fallback)" if source == "proc"
            else f"process owners hidden by {source} (no privilege)"
        )
    return ListenFacts(source, tuple(unique[:MAX_ITEMS]), visible, tuple(notes))
