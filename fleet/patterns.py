"""Ansible-style host patterns (the --limit language) over a loaded inventory."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from typing import Callable

from fleet.errors import InventoryError
from fleet.inventory import Inventory
from fleet.models import Host
from fleet.textfile import read_text

# 'name[3]', 'name[-1]', 'name[1:4]' or 'name[2:]' picks hosts out of what 'name' matched
# (Ansible still reads the old 'name[1-4]' too).
_SUBSCRIPT = re.compile(r"(.+)\[(?:(-?[0-9]{1,9})|([0-9]{1,9})[:-]([0-9]{0,9}))\]")
# 'db1.example.com:5432' is one host with a port, not groups 'db1.example.com' and '5432'.
_HOST_PORT = re.compile(r"(?:[\w.-]|\[[^\]]*\])+:[0-9]+")
# A name with these characters is a glob, so it is matched against hosts even when it matched groups.
_GLOB_CHARS = frozenset(".?*[")


def select(inventory: Inventory, pattern: str | None) -> tuple[Host, ...]:
    """Return the inventory's hosts matched by an Ansible host pattern, in inventory order.

    None (or a blank pattern) selects every host. Terms are separated by commas (or colons, as
    in old Ansible); '&term' intersects, '!term' excludes, '~regex' matches by regular
    expression, '@file' reads one term per line (Ansible retry files). Matching nothing gives
    an empty tuple; a bad regex or unreadable @file raises InventoryError.
    """
    terms = _expand_files(_split_terms(pattern or ""))
    names = _evaluate(inventory, terms)
    return tuple(host for host in inventory.hosts if host.name in names)


def _split_terms(pattern: str) -> list[str]:
    """Split a pattern into terms: on commas if there are any, else on colons outside [...].

    An IPv6 address or 'host:port' stays whole, which is why Ansible prefers commas.
    """
    if "," in pattern:
        terms = pattern.split(",")
    elif _is_address(pattern.strip()):
        terms = [pattern]
    else:
        terms = _split_outside_brackets(pattern)
    return [term.strip() for term in terms if term.strip()]


def _split_outside_brackets(pattern: str) -> list[str]:
    """Split on colons and whitespace, but not inside [...] (ranges, subscripts, globs)."""
    terms = [""]
    depth = 0
    for char in pattern:
        if depth == 0 and (char == ":" or char.isspace()):
            terms.append("")
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        terms[-1] += char
    return terms


def _is_address(text: str) -> bool:
    if text.startswith("[") and "]:" in text:
        text = text[1:text.rindex("]:")]
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOST_PORT.fullmatch(text))


def _expand_files(terms: list[str]) -> list[str]:
    expanded: list[str] = []
    for term in terms:
        if term.startswith("@"):
            expanded += _read_limit_file(term[1:])
        else:
            expanded.append(term)
    return expanded


def _read_limit_file(path: str) -> list[str]:
    text = read_text(path, "limit file", InventoryError)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _evaluate(inventory: Inventory, terms: list[str]) -> set[str]:
    """Ansible's order, whatever the order written: union of plain terms, then '&' terms, then '!' terms."""
    plain = [t for t in terms if t[0] not in "&!"] or ["all"]
    intersect = [t[1:] for t in terms if t[0] == "&"]
    exclude = [t[1:] for t in terms if t[0] == "!"]
    host_names = {host.name for host in inventory.hosts}
    selected: set[str] = set()
    for term in plain:
        # A plain term that is exactly a host name is that host, before any group or glob reading of
        # it; after '&' or '!' a name that is both a host and a group means the group, as in Ansible.
        selected |= {term} if term in host_names else _match_term(inventory, term)
    for term in intersect:
        selected &= _match_term(inventory, term)
    for term in exclude:
        selected -= _match_term(inventory, term)
    return selected


def _match_term(inventory: Inventory, term: str) -> set[str]:
    if not term:
        return set()
    host_names = [host.name for host in inventory.hosts]
    expression, subscript = _split_subscript(term)
    matches = _compile(expression)
    groups = [group for group in inventory.groups if matches(group)]
    # Group members in Ansible's order (a group's own hosts, then its children's), then matching hosts;
    # a subscript counts this list as Ansible does, repeats included.
    found = [name for group in groups for name in inventory.groups[group]]
    if not groups or expression[0] == "~" or _GLOB_CHARS.intersection(expression):
        found += [name for name in host_names if matches(name)]
    return set(_apply_subscript(found, subscript, term))


def _split_subscript(term: str) -> tuple[str, tuple[int, int | None] | None]:
    # A regex keeps its brackets: '~web[12]' is a character class.
    match = _SUBSCRIPT.fullmatch(term) if not term.startswith("~") else None
    if not match:
        return term, None
    expression, index, start, end = match.groups()
    if index is not None:
        return expression, (int(index), None)
    return expression, (int(start), int(end) if end else -1)


def _apply_subscript(names: list[str], subscript: tuple[int, int | None] | None, term: str) -> list[str]:
    """Ansible's slicing: [i] one host (an index past the end is an error), [i:j] inclusive, [i:] to the end."""
    if subscript is None or not names:
        return names
    start, end = subscript
    if end:  # as in Ansible, [i:0] reads as [i]
        return names[start:] if end == -1 else names[start:end + 1]
    if not -len(names) <= start < len(names):
        raise InventoryError(f"no host matches the subscripted pattern '{term}': it matches {len(names)} host(s)")
    return [names[start]]


def _compile(expression: str) -> Callable[[str], bool]:
    """A predicate over names: '~' means a regex matched at the start (re.match, like Ansible), else a glob."""
    try:
        if expression.startswith("~"):
            regex = re.compile(expression[1:])
            return lambda name: regex.match(name) is not None
        glob = re.compile(fnmatch.translate(expression))
        return lambda name: glob.match(name) is not None
    except (re.error, OverflowError, RecursionError) as exc:
        raise InventoryError(f"invalid host pattern '{expression}': {exc}") from None
