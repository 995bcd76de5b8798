"""Helpers shared by the parsers: key=value lines, addresses, caps.

Probe output is untrusted, so everything here is total: odd input gives None or an empty
result, never an exception.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any, Mapping

# Caps on what facts keep, so a hostile or huge output cannot blow up a report.
MAX_LINE = 400
MAX_ITEMS = 200
MAX_LINES = 50_000

# In the note a parser gives for output in a format it does not read. Facts holding nothing but
# such a note say so in their `unread` property, and rules then treat the probe as having given
# no facts (fleet.rules.evaluate): a misread table would be worse than none.
NOT_UNDERSTOOD = "format not understood"

#: `key=value` words (section headers, probe lines). A key starts at a word's start: started
#: mid-word, every position of a long word without `=` would be scanned to the word's end (quadratic).
KV = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
# A cgroup path's systemd unit (its last component) and container id (docker, podman).
_CGROUP_UNIT = re.compile(r"([A-Za-z0-9:_.@\\-]+\.(service|scope))$")
_CGROUP_CONTAINER = re.compile(r"(?:/docker/|docker-|libpod-)([0-9a-f]{12,64})")


def clip(text: str, limit: int = MAX_LINE) -> str:
    """One line of evidence, without trailing blanks, cut to a length a report can show."""
    text = text.rstrip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lines_of(text: str | None) -> list[str]:
    """The lines of an output, at most MAX_LINES of them.

    Split on \n only: that is what ends a line on the host. str.splitlines() also splits on
    U+2028, \x85, \x1c-\x1e, \v and \f, which would let one logged line pose as several.
    """
    lines = (text or "").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    return lines[:MAX_LINES]


@functools.lru_cache(maxsize=16)
def _header_pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = sorted(names, key=len, reverse=True)
    return re.compile(r"\s*(" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in alternatives) + ")")


def unread_note(notes: tuple[str, ...]) -> str | None:
    """The first "format not understood" note, if any."""
    return next((note for note in notes if NOT_UNDERSTOOD in note), None)


def header_columns(line: str, names: frozenset[str]) -> list[str] | None:
    """The column names of a table header line, or None when it is not one made of `names` only.

    Tools print headers their own way: names holding spaces (`Local Address:Port`), or glued
    to the next one when a column is full (`Peer Address:PortProcess`), so the line is read
    name by name, longest name first, rather than split at blanks.
    """
    pattern = _header_pattern(names)
    found, at, text = [], 0, line.rstrip()
    while at < len(text):
        match = pattern.match(text, at)
        if not match:
            return None
        found.append(re.sub(r"\s+", " ", match.group(1)))
        at = match.end()
    return found or None


def key_values(line: str, tail: str | None = None) -> dict[str, str]:
    """`a=1 b=2` as a dict; the value of key `tail` runs to the end of the line (may hold spaces)."""
    rest = ""
    if tail is not None:
        head, sep, rest = line.partition(f" {tail}=")
        line = head
    values = dict(KV.findall(line))
    if tail is not None and sep:
        values[tail] = rest.strip()
    return values


def to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def to_float(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def param(inputs: Mapping[str, Any] | None, name: str, default: Any) -> Any:
    """A probe's input by its name (as its ProbeSpec declares it), or `default` when the inputs
    are missing or odd or do not hold it."""
    try:
        value = (inputs or {}).get(name)
    except AttributeError:
        return default
    return default if value is None else value


def port_param(inputs: Mapping[str, Any] | None) -> int:
    """The `port` input, 8000 when it is not a TCP port."""
    port = to_int(param(inputs, "port", 8000))
    return port if port is not None and 0 < port < 65536 else 8000


def hostport(host: str, port: int | None) -> str:
    """`host:port` as curl and nginx write it: IPv6 literals in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def split_hostport(text: str) -> tuple[str, int | None]:
    """`127.0.0.1:80` -> ("127.0.0.1", 80); `[::1]:80` -> ("::1", 80); `host` -> ("host", None)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, to_int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, to_int(port)
    return text, None


def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, with IPv4-mapped IPv6 (::ffff:1.2.3.4) read as the IPv4 it carries."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


# Processes an SSH login starts land in sshd's own cgroup on hosts without pam_systemd: they were
# started by hand, not by that unit.
LOGIN_UNITS = frozenset({"ssh.service", "sshd.service"})


def managing_unit(path: str | None) -> str | None:
    """The systemd service that runs a process (from its cgroup), None for a login's or none."""
    unit = cgroup_unit(path, ("service",))
    return None if unit in LOGIN_UNITS else unit


def cgroup_unit(path: str | None, kinds: tuple[str, ...] = ("service", "scope")) -> str | None:
    """The systemd unit a cgroup path ends in (`/system.slice/x.service` -> `x.service`), of these kinds."""
    match = _CGROUP_UNIT.search(path or "")
    return match.group(1) if match and match.group(2) in kinds else None


def cgroup_container(path: str | None) -> str | None:
    """The short (12 hex digit) id of the container a cgroup path belongs to, if it names one."""
    match = _CGROUP_CONTAINER.search(path or "")
    return match.group(1)[:12] if match else None
