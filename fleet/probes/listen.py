"""Parser `listeners`: which TCP sockets listen, on which address, owned by which process.

Input (probe `listen`): `== listen source=netstat ==` (`netstat -tlnp`), `== listen source=ss ==`
(`ss -tlnp`), or `== listen source=proc-tcp ==` / `proc-tcp6` (raw /proc/net/tcp*, hex).
Tables are read by their header, so wider forms read too: `ss -tulpen` (Netid column, old
`users:(("sshd",1231,3))` owners), `netstat -tulpeno` (User, Inode, Timer), BSD `netstat -an`
(`host.port`) and FreeBSD `sockstat`.
Without privilege netstat shows `-` and ss shows no `users:(...)`: the owner is then unknown
and the facts say so (`pids_visible`, `degraded`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import (
    MAX_ITEMS,
    NOT_UNDERSTOOD,
    clip,
    header_columns,
    hostport,
    to_int,
    unread_note,
)
from fleet.probes.sections import sections
from fleet.probes.spec import ProbeSpec

# ss owners: `("nginx",pid=1,fd=6)`, or on iproute2 before 2011 (RHEL 6) `("nginx",1,6)`.
_SS_USER = re.compile(r'\("([^"]*)",(?:pid=)?(\d+)')
# An IPv6 address:port as iproute2 before 4.x wrote it, without brackets (`:::22`, `::1:25`).
_OLD_SS_V6 = re.compile(r"\s[0-9a-fA-F]*::?[0-9a-fA-F:]*:\d+\s")
# netstat -o: the Timer column after the owner, `off (0.00/0/0)`.
_TIMER = re.compile(r"\s+(?:off|on|keepalive|timewait)\s*\([^)]*\)\s*$")
# Column names of socket tables (ss; Linux, BusyBox and BSD netstat; FreeBSD sockstat), and what
# each holds; "" for columns not read.
_ROLES = {
    "Netid": "proto", "Proto": "proto", "PROTO": "proto", "State": "state", "(state)": "state",
    "CONN STATE": "state", "Local Address:Port": "local", "Local Address": "local", "LOCAL ADDRESS": "local",
    "Peer Address:Port": "peer", "Foreign Address": "peer", "FOREIGN ADDRESS": "peer",
    "PID/Program name": "owner", "Process": "owner", "PID": "pid", "COMMAND": "program",
    "Recv-Q": "", "Send-Q": "", "User": "", "Inode": "", "Timer": "", "Tcpcb": "", "Log ID": "",
    "USER": "", "FD": "", "PATH STATE": "",
}
_HEADER_NAMES = frozenset(_ROLES)


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

    @property
    def unread(self) -> str | None:
        """Why no listener could be read (a format not understood), or None."""
        return None if self.listeners else unread_note(self.notes)

    def on_port(self, port: Any) -> tuple[Listener, ...]:
        port = to_int(port)
        return tuple(item for item in self.listeners if item.port == port)

    def evidence_for(self, port: Any) -> str:
        """The tool's lines for the listeners on `port`, one per line."""
        return "\n".join(item.line for item in self.on_port(port))

    def addresses_on(self, port: Any) -> str:
        """`127.0.0.1:8000, [::1]:8000`: where something listens on `port`."""
        return ", ".join(item.hostport for item in self.on_port(port))


def _family(address: str, proto: str, kind: str) -> str:
    """ss prints a dual-stack socket as "*" and a v6-only one as "[::]"; Linux netstat and /proc
    print "::" for both, and Linux defaults to dual-stack (bindv6only=0), so there "::"
    is read as "any"; so does ss before iproute2 4.x, whose "*" is 0.0.0.0. The BSDs name the
    family in the protocol: tcp4, tcp6, tcp46."""
    if kind == "bsd":
        return {"tcp46": "any", "tcp4": "ipv4", "tcp6": "ipv6"}.get(proto, "ipv6" if ":" in address else "ipv4")
    if kind == "ss-old" and address == "*":
        return "ipv4"
    if address == "*" or (address == "::" and kind != "ss"):
        return "any"
    return "ipv6" if ":" in address else "ipv4"


@dataclass(frozen=True)
class _Table:
    """How to read the rows under one socket table header."""

    roles: tuple[str, ...]  # what each leading one-word column holds ("" for columns not read)
    kind: str  # ss | ss-old (iproute2 before 4.x) | netstat (Linux) | bsd (BSD netstat, FreeBSD sockstat)
    port_sep: str  # BSD netstat writes `127.0.0.1.80`, the others `127.0.0.1:80`
    timer: bool  # netstat -o: a Timer column follows the owner


def _table(header: list[str]) -> _Table:
    roles = [_ROLES[name] for name in header]
    # Columns from the owner on may hold blanks (`1234/Passenger Rac`, `users:(("a b",...))`):
    # they are read from the rest of the line; every column before them is one word.
    fixed = roles.index("owner") if "owner" in roles else len(roles)
    kind = "bsd" if "(state)" in header or "PROTO" in header else "ss" if "Local Address:Port" in header else "netstat"
    return _Table(tuple(roles[:fixed]), kind, "." if "(state)" in header else ":", "Timer" in header)


def _split_local(local: str, table: _Table) -> tuple[str, str]:
    """`127.0.0.1:80`, `[::1]:80`, `:::80`, `*:80`, `0.0.0.0%lo:53` (ss: bound to a device) or,
    in BSD netstat, `127.0.0.1.80` / `*.22` -> (address, port)."""
    address, _, port = local.rpartition(table.port_sep)
    address = address.strip("[]")
    if table.kind.startswith("ss"):
        address = address.split("%", 1)[0]
    return address, port


def _owner(table: _Table, values: dict[str, str], rest: str) -> tuple[str, str]:
    """(pid, program) of a row: ss `users:(("nginx",pid=1,fd=6),...)` (or the old
    `users:(("nginx",1,6))`), netstat `1234/prog`, sockstat's PID and COMMAND columns."""
    users = _SS_USER.findall(rest)
    if users:
        # All processes sharing the socket are listed (nginx master and workers): the
        # lowest pid is the parent.
        program, pid = min(users, key=lambda u: int(u[1]))
        return pid, program
    if "pid" in values:
        return values["pid"], values.get("program", "")
    pid, sep, program = rest.strip().partition("/")
    if not sep or not pid.isdigit():
        return "", ""
    if table.timer:
        program = _TIMER.sub("", program)
    return pid, program


def _row(table: _Table, line: str) -> Listener | None:
    """The listener on one row of a socket table, or None when the row holds no TCP listener."""
    parts = line.split(None, len(table.roles))
    values = {role: value for role, value in zip(table.roles, parts) if role}
    rest = parts[len(table.roles)] if len(parts) > len(table.roles) else ""
    proto, state = values.get("proto", "tcp").lower(), values.get("state")
    if not proto.startswith("tcp") or "local" not in values:
        return None
    # sockstat without -s shows no state: there a TCP socket without a peer is listening.
    if (state or "").upper() != "LISTEN" and not (state is None and values.get("peer") in ("*:*", "*.*")):
        return None
    address, port = _split_local(values["local"], table)
    if not port.isdigit():
        return None
    pid, program = _owner(table, values, rest)
    return _listener(address, port, pid, program, _family(address, proto, table.kind), line)


def _tables(lines: list[str]) -> tuple[list[Listener], bool]:
    """Listeners from ss, netstat (Linux or BSD) or sockstat output, and whether any table
    header was recognised. Each header says how to read the rows below it, up to the next
    header or `Active ...` title (netstat -a goes on with a UNIX socket table)."""
    blocks: list[tuple[_Table, list[str]]] = []
    table: _Table | None = None
    for line in lines:
        if not line.strip():
            continue
        header = header_columns(line, _HEADER_NAMES)
        if header and "local" in (_ROLES[name] for name in header):
            table = _table(header)
            blocks.append((table, []))
        elif header or line.startswith("Active "):
            table = None
        elif table is not None:
            blocks[-1][1].append(line)
    result = []
    for table, rows in blocks:
        if table.kind == "ss" and any(_OLD_SS_V6.search(row) for row in rows):
            # iproute2 before 4.x: `:::22` for [::], and `*` is 0.0.0.0, not dual-stack.
            table = dataclasses.replace(table, kind="ss-old")
        result += [found for found in (_row(table, row) for row in rows) if found is not None]
    return result, bool(blocks)


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
        result.append(_listener(address, str(port), "", "", _family(address, "tcp", "netstat"), line))
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


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> ListenFacts:
    """Collect every listener from whichever source the probe used.

    ss, netstat and sockstat tables are read by their header's column names, whatever the
    section's source says; /proc/net/tcp* by its source. Output with no known header gives a
    note and no listeners, never a guess.
    """
    found: list[Listener] = []
    source = "unknown"
    notes = []
    for section in sections(output.stdout):
        kind = section.attrs.get("source", "") if section.name == "listen" else ""
        if kind in ("proc-tcp", "proc-tcp6"):
            found += _proc(section.lines)
            kind = "proc"
        elif kind:
            listeners, recognised = _tables(section.lines)
            found += listeners
            text = next((line.strip() for line in section.lines if line.strip()), "")
            if text and not recognised:
                notes.append(f"{kind} output {NOT_UNDERSTOOD}: {clip(text, 80)}")
        if kind:
            source = kind
    # A socket can appear twice (ss lists one line per socket, /proc per family); keep one.
    unique = list({(item.address, item.port, item.pid, item.family): item for item in found}.values())
    visible = any(item.pid is not None for item in unique)
    if source == "unknown":
        notes.append("no listener output")
    elif unique and not visible:
        notes.append(
            "process owners not shown (/proc fallback)" if source == "proc"
            else f"process owners hidden by {source} (no privilege)"
        )
    return ListenFacts(source, tuple(unique[:MAX_ITEMS]), visible, tuple(notes))


PROBE = ProbeSpec(
    name="listen",
    parser="listeners",
    parse=parse,
    description='What listens on TCP, and which process owns it?',
    timeout_s=10,
    libraries=("common",),
)
