"""Read Ansible YAML inventories into fleet Hosts, with Ansible's groups, ranges and variable precedence."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import string
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from fleet.errors import InventoryError
from fleet.models import Connection, Host

GROUP_SECTIONS = ("hosts", "children", "vars")

# ansible_* variables are connection settings, not runbook parameters; these few are kept
# because fleet decides later whether to escalate privileges and how to call ssh.
KEPT_ANSIBLE_VARS = frozenset({"ansible_become", "ansible_become_user", "ansible_ssh_common_args"})

# Ansible's ssh plugin reads each setting from several variables; the last name set wins,
# whatever level it was set at.
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_FILE_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")

_CONNECTIONS = {
    "local": Connection.LOCAL,
    "ssh": Connection.SSH,
    "paramiko": Connection.SSH,
    "paramiko_ssh": Connection.SSH,
    "smart": Connection.SSH,
}

# A typo such as web[0:9999999] must fail fast instead of eating all memory.
MAX_RANGE_HOSTS = 100_000

_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"

_RANGE = re.compile(r"\[([^\[\]]*)\]")
_RANGE_SPEC = re.compile(r"(?:([0-9]*):([0-9]+)|([a-zA-Z]):([a-zA-Z]))(?::([0-9]+))?")
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])+):([0-9]+)")

# (line of the variable's key, YAML node of its value); values are built only when used, so a
# vault-encrypted password fleet never needs does not stop the inventory from loading.
_Var = tuple[int, yaml.Node]


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory: hosts in file order and every group's hosts (children included)."""

    path: str
    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)


def load_inventory(path: str | os.PathLike) -> Inventory:
    """Load an Ansible YAML inventory file.

    Raises InventoryError, naming the file and line when known, for anything unreadable or malformed.
    """
    path_str = os.fsdecode(path)
    text = _read_text(path_str)
    try:
        return _Parser(path_str, text).parse()
    except RecursionError:
        raise InventoryError("inventory is nested too deeply", path_str) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path_str, text) from None


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InventoryError("inventory file not found", path) from None
    except IsADirectoryError:
        raise InventoryError("is a directory; give the path of a YAML inventory file", path) from None
    except PermissionError:
        raise InventoryError("cannot read inventory file: permission denied", path) from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory file: {exc.strerror or exc}", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InventoryError(f"inventory is not valid UTF-8 (byte 0x{data[exc.start]:02x})", path, line) from None


def _yaml_error(exc: yaml.YAMLError, path: str, text: str) -> InventoryError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        return InventoryError(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return InventoryError(f"invalid YAML: {exc.reason} (character #x{exc.character:04x})", path, line)
    return InventoryError(f"invalid YAML: {exc}", path)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads the tags Ansible adds to YAML."""


def _construct_unsafe(loader: _Loader, node: yaml.Node) -> Any:
    # !unsafe only switches off Jinja templating in Ansible; fleet never templates.
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_vault(loader: _Loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, "value is encrypted with Ansible Vault, which fleet cannot decrypt", node.start_mark)


_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value[:40]!r}"


class _Parser:
    """One load: walks the YAML node tree (for line numbers), then resolves hosts like Ansible."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.loader = _Loader(text)
        # 'all' and 'ungrouped' always exist and come first, as in Ansible.
        self.group_order: dict[str, None] = {"all": None, "ungrouped": None}
        self.group_vars: dict[str, dict[str, _Var]] = {}
        # parent -> child -> line of the child's key (None for the implicit links to 'all').
        self.children: dict[str, dict[str, int | None]] = {}
        self.direct_groups: dict[str, dict[str, None]] = {}  # host -> groups it is listed in
        self.host_vars: dict[str, dict[str, _Var]] = {}
        # YAML aliases can share one node between groups; parse each (group, node) once so
        # aliases neither loop forever nor blow up exponentially.
        self.parsed: set[tuple[str, yaml.Node]] = set()

    def error(self, message: str, node: yaml.Node | None = None) -> InventoryError:
        return InventoryError(message, self.path, _line(node) if node is not None else None)

    def parse(self) -> Inventory:
        try:
            root = self.loader.get_single_node()
            if root is None or _is_null(root) or (isinstance(root, yaml.MappingNode) and not root.value):
                raise self.error("inventory is empty", root)
            if not isinstance(root, yaml.MappingNode):
                raise self.error(f"inventory must be a mapping of group names at the top level, not {_describe(root)}",
                                 root)
            for key, value in self.items(root):
                name = self.name_of(key, "group")
                if name == "plugin":
                    raise self.error("this is an inventory plugin configuration; fleet reads only static YAML "
                                     "inventories", key)
                self.parse_group(name, value)
            return self.build()
        finally:
            self.loader.dispose()

    def items(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        # Resolves '<<: *anchor' merge keys, which Ansible users rely on to share host vars.
        self.loader.flatten_mapping(node)
        return node.value

    def name_of(self, key: yaml.Node, what: str) -> str:
        if not isinstance(key, yaml.ScalarNode) or _is_null(key) or not key.value.strip():
            raise self.error(f"{what} name must be a non-empty string, not {_describe(key)}", key)
        # The text as written: YAML would turn a group 'yes' into True or a host '1e3' into 1000.0.
        return key.value

    def parse_group(self, name: str, node: yaml.Node) -> None:
        self.group_order.setdefault(name, None)
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, {})
        if _is_null(node) or (name, node) in self.parsed:
            return
        self.parsed.add((name, node))
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"group '{name}' must be a mapping with hosts, children or vars, not {_describe(node)}",
                             node)
        for key, value in self.items(node):
            section = key.value if isinstance(key, yaml.ScalarNode) else None
            if section not in GROUP_SECTIONS:
                shown = repr(section) if section is not None else _describe(key)
                raise self.error(f"unknown key {shown} in group '{name}': only hosts, children and vars are allowed",
                                 key)
            if _is_null(value):
                continue
            if section == "vars":
                self.group_vars[name].update(self.variables(value, f"vars of group '{name}'"))
            elif section == "hosts":
                for host_key, host_value in self.entries(value, "hosts", name):
                    self.parse_host(name, host_key, host_value)
            else:
                for child_key, child_value in self.entries(value, "children", name):
                    child = self.name_of(child_key, "group")
                    self.children[name].setdefault(child, _line(child_key))
                    self.parse_group(child, child_value)

    def entries(self, node: yaml.Node, section: str, group: str) -> list[tuple[yaml.Node, yaml.Node]]:
        """The name -> value pairs of a hosts/children section; Ansible also takes one bare name."""
        if isinstance(node, yaml.ScalarNode):
            return [(node, yaml.ScalarNode(_NULL_TAG, "", node.start_mark, node.end_mark))]
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"'{section}' of group '{group}' must be a mapping of names, not {_describe(node)} "
                             f"(write each name as a key ending in ':')", node)
        return self.items(node)

    def variables(self, node: yaml.Node, what: str) -> dict[str, _Var]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"{what} must be a mapping, not {_describe(node)}", node)
        found: dict[str, _Var] = {}
        for key, value in self.items(node):
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG or not key.value:
                raise self.error(f"variable names must be strings, not {_describe(key)} (in {what})", key)
            found[key.value] = (_line(key), value)
        return found

    def parse_host(self, group: str, key: yaml.Node, value: yaml.Node) -> None:
        pattern, port = _split_port(self.name_of(key, "host"))
        try:
            names = _expand_ranges(pattern)
        except ValueError as exc:
            raise self.error(f"bad host range in '{pattern}': {exc}", key) from None
        host_vars = {} if _is_null(value) else self.variables(value, f"vars of host '{pattern}'")
        if port is not None:
            # host:port is shorthand for ansible_port; the host's own vars may still override it.
            port_node = yaml.ScalarNode(_STR_TAG, port, key.start_mark, key.end_mark)
            host_vars = {"ansible_port": (_line(key), port_node), **host_vars}
        for name in names:
            self.direct_groups.setdefault(name, {})[group] = None
            self.host_vars.setdefault(name, {}).update(host_vars)

    def value(self, name: str, var: _Var) -> Any:
        line, node = var
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise InventoryError(f"variable '{name}': {exc.problem or exc}", self.path,
                                 mark.line + 1 if mark else line) from None
        except Exception as exc:  # SafeConstructor lets ValueError & co. out for tagged scalars like '!!int x'
            raise InventoryError(f"variable '{name}': cannot read its value ({exc})", self.path, line) from None

    def build(self) -> Inventory:
        self.link_roots()
        self.check_cycles()
        depth: dict[str, int] = {}
        ancestors: dict[str, frozenset[str]] = {}
        for group in self.group_order:
            self.resolve_depth(group, depth, ancestors)
        priority = {group: self.priority(group) for group in self.group_order}

        members: dict[str, list[str]] = {group: [] for group in self.group_order}
        hosts = []
        for name, listed in self.direct_groups.items():
            direct = set(listed) - {"all"}
            # Ansible's rule: 'ungrouped' holds exactly the hosts in no other group.
            direct = {"ungrouped"} if direct <= {"ungrouped"} else direct - {"ungrouped"}
            groups = set(direct).union(*(ancestors[g] for g in direct))
            for group in self.group_order:
                if group in groups:
                    members[group].append(name)
            # Shallow groups first, then by ansible_group_priority, then by name; later ones override.
            merged: dict[str, _Var] = {}
            for group in sorted(groups, key=lambda g: (depth[g], priority[g], g)):
                merged.update(self.group_vars[group])
            merged.update(self.host_vars[name])
            hosts.append(self.make_host(name, tuple(sorted(groups - {"all"})), merged))

        return Inventory(
            path=self.path,
            hosts=tuple(hosts),
            groups=MappingProxyType({group: tuple(names) for group, names in members.items()}),
        )

    def link_roots(self) -> None:
        """Make every parentless group a child of 'all', as Ansible does after parsing."""
        for group in self.group_order:
            self.children.setdefault(group, {})
            self.group_vars.setdefault(group, {})
        has_parent = {child for kids in self.children.values() for child in kids}
        for group in self.group_order:
            if group != "all" and group not in has_parent:
                self.children["all"].setdefault(group, None)

    def check_cycles(self) -> None:
        done: set[str] = set()
        stack: list[str] = []

        def visit(group: str) -> None:
            stack.append(group)
            for child, line in self.children[group].items():
                if child in stack:
                    cycle = stack[stack.index(child):] + [child]
                    raise InventoryError(f"groups form a cycle: {' -> '.join(cycle)}", self.path,
                                         line if line is not None else self.cycle_line(cycle))
                if child not in done:
                    visit(child)
            stack.pop()
            done.add(group)

        for group in self.group_order:
            if group not in done:
                visit(group)

    def cycle_line(self, cycle: list[str]) -> int | None:
        lines = [self.children[a][b] for a, b in zip(cycle, cycle[1:])]
        return next((line for line in lines if line is not None), None)

    def resolve_depth(self, group: str, depth: dict[str, int], ancestors: dict[str, frozenset[str]]) -> None:
        """Depth is the longest path from 'all', which is what orders group vars in Ansible."""
        if group in depth:
            return
        parents = [parent for parent, kids in self.children.items() if group in kids]
        for parent in parents:
            self.resolve_depth(parent, depth, ancestors)
        depth[group] = max((depth[p] + 1 for p in parents), default=0)
        ancestors[group] = frozenset(parents).union(*(ancestors[p] for p in parents))

    def priority(self, group: str) -> int:
        var = self.group_vars[group].get("ansible_group_priority")
        if var is None:
            return 1
        value = self.value("ansible_group_priority", var)
        number = _as_int(value)
        if number is None:
            raise InventoryError(f"ansible_group_priority of group '{group}' must be an integer, not {value!r}",
                                 self.path, var[0])
        return number

    def make_host(self, name: str, groups: tuple[str, ...], merged: dict[str, _Var]) -> Host:
        address = self.text_setting(name, merged, _ADDRESS_VARS) or name
        key_file = self.text_setting(name, merged, _KEY_FILE_VARS)
        return Host(
            name=name,
            address=address,
            port=self.port(name, merged),
            user=self.text_setting(name, merged, _USER_VARS),
            key_file=os.path.expanduser(key_file) if key_file else None,
            connection=self.connection(name, merged),
            groups=groups,
            vars={var: self.value(var, entry) for var, entry in merged.items()
                  if not var.startswith("ansible_") or var in KEPT_ANSIBLE_VARS},
        )

    def setting(self, merged: dict[str, _Var], names: tuple[str, ...]) -> tuple[str, _Var] | None:
        found = [(var, merged[var]) for var in names if var in merged]
        return found[-1] if found else None

    def text_setting(self, host: str, merged: dict[str, _Var], names: tuple[str, ...]) -> str | None:
        setting = self.setting(merged, names)
        if setting is None:
            return None
        var, entry = setting
        value = self.value(var, entry)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise InventoryError(f"{var} of host '{host}' must be a non-empty string, not {value!r}",
                                 self.path, entry[0])
        return value

    def port(self, host: str, merged: dict[str, _Var]) -> int | None:
        setting = self.setting(merged, _PORT_VARS)
        if setting is None:
            return None
        var, entry = setting
        value = self.value(var, entry)
        if value is None:
            return None
        port = _as_int(value)
        if port is None or not 1 <= port <= 65535:
            raise InventoryError(f"{var} of host '{host}' must be a port number from 1 to 65535, not {value!r}",
                                 self.path, entry[0])
        return port

    def connection(self, host: str, merged: dict[str, _Var]) -> Connection:
        entry = merged.get("ansible_connection")
        if entry is None:
            return Connection.SSH
        value = self.value("ansible_connection", entry)
        if value is None:
            return Connection.SSH
        plugin = value.removeprefix("ansible.builtin.") if isinstance(value, str) else None
        if plugin not in _CONNECTIONS:
            raise InventoryError(f"ansible_connection {value!r} of host '{host}' is not supported: fleet runs "
                                 f"over ssh (ssh, paramiko, smart) or local", self.path, entry[0])
        return _CONNECTIONS[plugin]


def _as_int(value: Any) -> int | None:
    """An int from an int or a string of digits, as Ansible's int() would take it; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        return int(value)
    return None


def _split_port(name: str) -> tuple[str, str | None]:
    """Split Ansible's 'host:port' and '[ipv6]:port' host keys; a bare IPv6 address has no port."""
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


def _expand_ranges(name: str) -> list[str]:
    """Expand Ansible host ranges: 'web[01:03]' -> web01..web03, '[1:9:4]' steps, '[a:c]' letters, several multiply.

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
        values = range(int(start_text), int(end_text) + 1, step)
        if not values:
            raise ValueError(f"[{spec}] starts after it ends")
        if len(values) > MAX_RANGE_HOSTS:
            raise ValueError(f"expands to more than {MAX_RANGE_HOSTS} hosts")
        if len(start_text) > 1 and start_text.startswith("0"):
            # Leading zeros mean fixed width, so the ends must agree on it.
            if len(start_text) != len(end_text):
                raise ValueError(f"[{spec}] is zero-padded, so start and end need the same width")
            return [str(value).zfill(len(start_text)) for value in values]
        return [str(value) for value in values]
    letters = string.ascii_letters
    start, end = letters.index(match.group(3)), letters.index(match.group(4))
    if start > end:
        raise ValueError(f"[{spec}] starts after it ends")
    return list(letters[start:end + 1:step])
