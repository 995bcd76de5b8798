"""Turning a Tree into fleet Hosts: Ansible's group hierarchy, 'ungrouped' rule and variable precedence."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from fleet.errors import InventoryError
from fleet.inventory.tree import Tree, Var, Where
from fleet.models import Connection, Host

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

_Vars = Mapping[str, Var]


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory: hosts in file order and every group's hosts (children included)."""

    path: str
    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)


def resolve(path: str, tree: Tree) -> Inventory:
    """Build the Inventory named `path` from everything its sources put in `tree`.

    Variables merge in Ansible's order, later overriding earlier: inventory-source group vars
    (shallow groups first, then by ansible_group_priority, then by name), then group_vars/ files in
    the same group order, then the host's inventory vars, then its host_vars/ files.
    Raises InventoryError for group cycles and unusable connection settings, naming where they were set.
    """
    children = _rooted_children(tree)
    _check_cycles(path, tree.group_order, children)
    parents: dict[str, list[str]] = {group: [] for group in tree.group_order}
    for parent, kids in children.items():
        for child in kids:
            parents[child].append(parent)
    depth: dict[str, int] = {}
    ancestors: dict[str, frozenset[str]] = {}
    for group in tree.group_order:
        _resolve_depth(group, parents, depth, ancestors)
    rank = {group: (depth[group], _priority(group, tree.group_vars[group]), group) for group in tree.group_order}
    position = {group: index for index, group in enumerate(tree.group_order)}

    members: dict[str, list[str]] = {group: [] for group in tree.group_order}
    hosts = []
    for name, listed in tree.host_groups.items():
        direct = set(listed) - {"all"}
        # Ansible's rule: 'ungrouped' holds exactly the hosts in no other group.
        direct = {"ungrouped"} if direct <= {"ungrouped"} else direct - {"ungrouped"}
        groups = direct.union(*(ancestors[group] for group in direct))
        for group in sorted(groups, key=position.__getitem__):
            members[group].append(name)
        ranked = sorted(groups, key=rank.__getitem__)
        merged: dict[str, Var] = {}
        for layer in (tree.group_vars, tree.group_files):
            for group in ranked:
                merged.update(layer.get(group, {}))
        merged.update(tree.host_vars.get(name, {}))
        merged.update(tree.host_files.get(name, {}))
        hosts.append(_make_host(name, tuple(sorted(groups - {"all"})), merged))

    return Inventory(
        path=path,
        hosts=tuple(hosts),
        groups=MappingProxyType({group: tuple(names) for group, names in members.items()}),
    )


def _rooted_children(tree: Tree) -> dict[str, dict[str, Where | None]]:
    """The tree's links plus every parentless group as a child of 'all', as Ansible does after parsing."""
    children: dict[str, dict[str, Where | None]] = {group: dict(tree.children.get(group, {}))
                                                    for group in tree.group_order}
    has_parent = {child for kids in children.values() for child in kids}
    for group in tree.group_order:
        if group != "all" and group not in has_parent:
            children["all"].setdefault(group, None)
    return children


def _check_cycles(path: str, groups: Mapping[str, None], children: Mapping[str, Mapping[str, Where | None]]) -> None:
    done: set[str] = set()
    stack: list[str] = []

    def visit(group: str) -> None:
        stack.append(group)
        for child in children[group]:
            if child in stack:
                cycle = stack[stack.index(child):] + [child]
                # The link that closed the cycle, else any written one ('all' links are implicit).
                links = [children[group][child]] + [children[a][b] for a, b in zip(cycle, cycle[1:])]
                where = next((link for link in links if link is not None), (path, None))
                raise InventoryError(f"groups form a cycle: {' -> '.join(cycle)}", *where)
            if child not in done:
                visit(child)
        stack.pop()
        done.add(group)

    for group in groups:
        if group not in done:
            visit(group)


def _resolve_depth(group: str, parents: Mapping[str, list[str]], depth: dict[str, int],
                   ancestors: dict[str, frozenset[str]]) -> None:
    """Depth is the longest path from 'all', which is what orders group vars in Ansible."""
    if group in depth:
        return
    for parent in parents[group]:
        _resolve_depth(parent, parents, depth, ancestors)
    depth[group] = max((depth[parent] + 1 for parent in parents[group]), default=0)
    ancestors[group] = frozenset(parents[group]).union(*(ancestors[parent] for parent in parents[group]))


def _priority(group: str, variables: _Vars) -> int:
    # Read from inventory sources only: Ansible ignores ansible_group_priority in group_vars/ files.
    var = variables.get("ansible_group_priority")
    if var is None:
        return 1
    value = var.get("ansible_group_priority")
    number = _as_int(value)
    if number is None:
        raise var.fail(f"ansible_group_priority of group '{group}' must be an integer, not {value!r}")
    return number


def _make_host(name: str, groups: tuple[str, ...], merged: _Vars) -> Host:
    address = _text_setting(name, merged, _ADDRESS_VARS) or name
    key_file = _text_setting(name, merged, _KEY_FILE_VARS)
    return Host(
        name=name,
        address=address,
        port=_port(name, merged),
        user=_text_setting(name, merged, _USER_VARS),
        key_file=os.path.expanduser(key_file) if key_file else None,
        connection=_connection(name, merged),
        groups=groups,
        vars={var: entry.get(var) for var, entry in merged.items()
              if not var.startswith("ansible_") or var in KEPT_ANSIBLE_VARS},
    )


def _setting(merged: _Vars, names: tuple[str, ...]) -> tuple[str, Var, Any] | None:
    """The last of `names` that is set, its Var and value; None when unset or set to null."""
    found = [(var, merged[var]) for var in names if var in merged]
    if not found:
        return None
    var, entry = found[-1]
    value = entry.get(var)
    return None if value is None else (var, entry, value)


def _text_setting(host: str, merged: _Vars, names: tuple[str, ...]) -> str | None:
    setting = _setting(merged, names)
    if setting is None:
        return None
    var, entry, value = setting
    # INI reads 'ansible_user=1000' as a number; Ansible would use it as text, and so does fleet.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise entry.fail(f"{var} of host '{host}' must be a non-empty string, not {value!r}")
    return value


def _port(host: str, merged: _Vars) -> int | None:
    setting = _setting(merged, _PORT_VARS)
    if setting is None:
        return None
    var, entry, value = setting
    port = _as_int(value)
    if port is None or not 1 <= port <= 65535:
        raise entry.fail(f"{var} of host '{host}' must be a port number from 1 to 65535, not {value!r}")
    return port


def _connection(host: str, merged: _Vars) -> Connection:
    setting = _setting(merged, ("ansible_connection",))
    if setting is None:
        return Connection.SSH
    _, entry, value = setting
    plugin = value.removeprefix("ansible.builtin.") if isinstance(value, str) else None
    if plugin not in _CONNECTIONS:
        raise entry.fail(f"ansible_connection {value!r} of host '{host}' is not supported: fleet runs "
                         f"over ssh (ssh, paramiko, smart) or local")
    return _CONNECTIONS[plugin]


def _as_int(value: Any) -> int | None:
    """An int from an int or a string of digits, as Ansible's int() would take it; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        return int(value)
    return None
