"""Ansible INI inventories: [group], [group:vars] and [group:children] sections, 'host key=value' lines."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.hostnames import expand_ranges, split_port
from fleet.inventory.tree import Tree, Var

# The patterns of Ansible's ini plugin: a section may carry a '#' comment, a child group name too.
_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")
_SECTION_KINDS = ("hosts", "vars", "children")
_COMMENT_MARKERS = ("#", ";")


def parse_inventory(path: str, data: bytes, tree: Tree) -> None:
    """Add an INI inventory's groups, hosts and variables to `tree`, as Ansible's ini plugin reads them.

    Raises InventoryError naming the file and the line of the offending entry.
    """
    _Parser(path, tree).parse(_decode_lines(path, data))


def parse_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it is one (22, True, [1, 2], 'text'), else the text."""
    try:
        # Ansible silences these too: '\d' in a value is an invalid escape to Python, not to the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    """Ansible's coercions after literal_eval: tuples and sets become lists, bytes text, '...' and 1j stay text."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is Ellipsis or isinstance(value, complex):
        return "..." if value is Ellipsis else str(value)
    return value


def _plain_key(key: Any) -> Any:
    # Keys must stay hashable and serialisable (reports are JSON): anything unusual becomes its text.
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return str(_plain(key))


def _decode_lines(path: str, data: bytes) -> list[str]:
    """The file's lines; like Ansible, bytes that are not UTF-8 are tolerated in comment lines only."""
    lines = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if raw.lstrip()[:1] in (b"#", b";"):
                lines.append("")
                continue
            raise InventoryError(f"inventory is not valid UTF-8 (byte 0x{raw[exc.start]:02x})", path, number) from None
    return lines


@dataclass
class _Pending:
    """A group used before any [group] or [group:children] section declared it."""

    kind: str  # 'vars' for a [group:vars] section, 'children' for a name in some [parent:children]
    line: int
    parents: list[tuple[str, int]] = field(default_factory=list)  # (parent, line) links waiting for it


class _Parser:
    """One file, read top to bottom; lines before the first section list hosts of 'ungrouped'."""

    def __init__(self, path: str, tree: Tree):
        self.path = path
        self.tree = tree
        # Ansible lets a section name a group that is declared further down, and checks at the end.
        self.pending: dict[str, _Pending] = {}

    def error(self, message: str, line: int) -> InventoryError:
        return InventoryError(message, self.path, line)

    def parse(self, lines: list[str]) -> None:
        group, kind = "ungrouped", "hosts"
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith(_COMMENT_MARKERS):
                continue
            section = _SECTION.fullmatch(line)
            if section:
                group, kind = self.section(section, number)
            elif line.startswith("[") and line.endswith("]"):
                raise self.error(f"invalid section header {line!r}: write [group], [group:vars] or [group:children], "
                                 f"with no spaces in the group name", number)
            elif kind == "hosts":
                self.host_line(group, line, number)
            elif kind == "vars":
                self.var_line(group, line, number)
            else:
                self.child_line(group, line, number)
        self.check_pending()

    def section(self, match: re.Match[str], number: int) -> tuple[str, str]:
        name, kind = match.group(1), match.group(2) or "hosts"
        if kind not in _SECTION_KINDS:
            raise self.error(f"section [{name}:{kind}] has unknown type '{kind}': use [{name}], [{name}:vars] "
                             f"or [{name}:children]", number)
        if kind == "vars" and not self.tree.has_group(name) and name not in self.pending:
            self.pending[name] = _Pending("vars", number)
        self.tree.add_group(name)
        if kind != "vars" and name in self.pending:
            for parent, line in self.pending.pop(name).parents:
                self.tree.add_child(parent, name, (self.path, line))
        return name, kind

    def host_line(self, group: str, line: str, number: int) -> None:
        try:
            # Quotes group words and '#' after a space starts a comment, exactly as Ansible splits host lines.
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise self.error(f"cannot split host line: {exc}", number) from None
        if not tokens or not tokens[0].strip():
            raise self.error("host name is empty", number)
        entry = tokens[0]
        pattern, port = split_port(entry)
        if port is None and entry.endswith(":"):
            raise self.error(f"host '{entry}' ends in ':', which must be followed by a port number", number)
        try:
            names = expand_ranges(pattern)
        except ValueError as exc:
            raise self.error(f"bad host range in '{pattern}': {exc}", number) from None
        if "---" in names:
            raise self.error("host '---' is the start of a YAML document: name a YAML inventory *.yml", number)
        # host:port is shorthand for ansible_port; the host's own vars may still override it.
        variables = {} if port is None else {"ansible_port": Var(port, self.path, number)}
        for token in tokens[1:]:
            key, equals, value = token.partition("=")
            if not equals:
                raise self.error(f"expected key=value after host '{entry}', got {token!r}", number)
            if not key:
                raise self.error(f"variable name is empty in {token!r}", number)
            variables[key] = Var(parse_value(value), self.path, number)
        if not names:
            self.tree.warn(f"host range '{pattern}' counts down, so it names no host", self.path, number)
        for name in names:
            self.tree.add_host(name, group, variables)

    def var_line(self, group: str, line: str, number: int) -> None:
        # One variable per line and everything after '=' is the value, a trailing '# ...' included (as Ansible).
        key, equals, value = line.partition("=")
        if not equals:
            raise self.error(f"expected key=value in [{group}:vars], got {line!r}", number)
        if not key.strip():
            raise self.error(f"variable name is empty in {line!r}", number)
        self.tree.set_group_vars(group, {key.strip(): Var(parse_value(value.strip()), self.path, number)})

    def child_line(self, parent: str, line: str, number: int) -> None:
        match = _GROUP_NAME.fullmatch(line)
        if not match:
            raise self.error(f"expected a group name in [{parent}:children], got {line!r}", number)
        child = match.group(1)
        if self.tree.has_group(child):
            self.tree.add_child(parent, child, (self.path, number))
        else:
            self.pending.setdefault(child, _Pending("children", number)).parents.append((parent, number))

    def check_pending(self) -> None:
        for name, pending in self.pending.items():
            if pending.kind == "vars":
                raise self.error(f"section [{name}:vars] is for group '{name}', which no [{name}] or "
                                 f"[{name}:children] section declares", pending.line)
            parent = pending.parents[0][0]
            raise self.error(f"[{parent}:children] names group '{name}', which no [{name}] or [{name}:children] "
                             f"section declares", pending.line)
