"""Host entries as Ansible writes them in static inventories: 'host:port' and ranges like 'web[01:20]'."""

from __future__ import annotations

import ipaddress
import itertools
import re
import string

# A typo such as web[0:9999999] must fail fast instead of eating all memory.
MAX_RANGE_HOSTS = 100_000

_RANGE = re.compile(r"\[([^\[\]]*)\]")
_RANGE_SPEC = re.compile(r"(?:([0-9]*):([0-9]+)|([a-zA-Z]):([a-zA-Z]))(?::([0-9]+))?")
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])+):([0-9]+)")


def split_port(name: str) -> tuple[str, str | None]:
    """Split Ansible's 'host:port' and '[ipv6]:port' host entries; a bare IPv6 address has no port."""
    bracketed = _BRACKETED_PORT.fullmatch(name)
    if bracketed:
        try:
            ipaddress.ip_address(bracketed.group(1))
            return bracketed.group(1), bracketed.group(2)
        except ValueError:
            pass
    plain = _HOST_PORT.fullmatch(name)
    if plain:
        return plain.group(1), plain.group(2)
    return name, None


def expand_ranges(name: str) -> list[str]:
    """Expand Ansible host ranges: 'web[01:03]' -> web01..web03, '[1:9:4]' steps, '[a:c]' letters, several multiply.

    A range that counts down ('web[9:1]') names no host, as in Ansible: the caller warns.

    Raises ValueError describing what is wrong with a range.
    """
    parts = _RANGE.split(name)  # literal, range, literal, range, ..., literal
    literals, specs = parts[::2], parts[1::2]
    if any("[" in literal or "]" in literal for literal in literals):
        raise ValueError("unbalanced '[' or ']'")
    choices: list[list[str]] = []
    total = 1
    for literal, spec in zip(literals, specs):
        values = _range_values(spec)
        total *= len(values)
        if total > MAX_RANGE_HOSTS:
            raise ValueError(f"expands to more than {MAX_RANGE_HOSTS} hosts")
        choices += [[literal], values]
    choices.append([literals[-1]])
    return ["".join(combination) for combination in itertools.product(*choices)]


def _range_values(spec: str) -> list[str]:
    match = _RANGE_SPEC.fullmatch(spec)
    if not match:
        raise ValueError(f"[{spec}] is not [start:end] or [start:end:step] of numbers or single letters")
    step = int(match.group(5) or 1)
    if step < 1:
        raise ValueError(f"[{spec}] has a step below 1")
    if match.group(2) is not None:
        start_text, end_text = match.group(1) or "0", match.group(2)
        start, end = int(start_text), int(end_text)
        # Counted by arithmetic: len() of a range past sys.maxsize raises OverflowError.
        if (end - start) // step + 1 > MAX_RANGE_HOSTS:
            raise ValueError(f"expands to more than {MAX_RANGE_HOSTS} hosts")
        values = range(start, end + 1, step)
        if len(start_text) > 1 and start_text.startswith("0"):
            # Leading zeros mean fixed width, so the ends must agree on it.
            if len(start_text) != len(end_text):
                raise ValueError(f"[{spec}] is zero-padded, so start and end need the same width")
            return [str(value).zfill(len(start_text)) for value in values]
        return [str(value) for value in values]
    letters = string.ascii_letters
    start, end = letters.index(match.group(3)), letters.index(match.group(4))
    return list(letters[start:end + 1:step])
