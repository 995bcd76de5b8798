"""Turning a Tree into fleet Hosts: Ansible's group hierarchy, 'ungrouped' rule and variable precedence."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from fleet.errors import InventoryError
from fleet.inventory import sshargs
from fleet.inventory.templating import Renderer, TemplateFailed, is_template
from fleet.inventory.tree import Tree, Var, Where
from fleet.models import SSH_ARG_VARS, Connection, Host, HostProblem, TransportStatus, Unusable

# ansible_* variables are connection settings, not runbook parameters; these few are kept
# because fleet decides later whether to escalate privileges and how to call ssh.
KEPT_ANSIBLE_VARS = frozenset({"ansible_become", "ansible_become_user", *SSH_ARG_VARS})

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
    """A loaded inventory: hosts in file order and every group's hosts in Ansible's order."""

    path: str
    hosts: tuple[Host, ...]
    # Each group's hosts as Ansible lists them: the group's own hosts first, then its children's.
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)
    # What the sources read past with a warning, as Ansible does, and which reader read the inventory.
    warnings: tuple[str, ...] = ()
    reader: str = ""


def resolve(path: str, tree: Tree, reader: str = "") -> Inventory:
    """Build the Inventory named `path` from everything its sources put in `tree`.

    Variables merge in Ansible's order, later overriding earlier: inventory-source group vars
    (shallow groups first, then by ansible_group_priority, then by name), then group_vars/ files in
    the same group order, then the host's inventory vars, then its host_vars/ files. Templates are
    rendered as Ansible renders them. A host whose connection settings fleet cannot use (an
    unsupported plugin, Vault ciphertext, a failed template) gets a HostProblem instead of failing
    the inventory. Raises InventoryError for group cycles and malformed literal settings.
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

    host_groups: dict[str, tuple[str, ...]] = {}
    raw_vars: dict[str, dict[str, Any]] = {}
    merged_vars: dict[str, dict[str, Var]] = {}
    for name, listed in tree.host_groups.items():
        direct = set(listed) - {"all"}
        # Ansible's rule: 'ungrouped' holds exactly the hosts in no other group (but see _rooted_children).
        direct = {"ungrouped"} if direct <= {"ungrouped"} else direct - {"ungrouped"}
        if not listed.keys() - {"all"} and name in children["ungrouped"]:
            direct = set()
        groups = direct.union(*(ancestors[group] for group in direct))
        ranked = sorted(groups, key=rank.__getitem__)
        merged: dict[str, Var] = {}
        for layer in (tree.group_vars, tree.group_files):
            for group in ranked:
                merged.update(layer.get(group, {}))
        merged.update(tree.host_vars.get(name, {}))
        merged.update(tree.host_files.get(name, {}))
        host_groups[name] = tuple(sorted(groups - {"all"}))
        merged_vars[name] = merged
        raw_vars[name] = {var: entry.value for var, entry in merged.items()}

    tree.warnings += [f"{name} is both a host and a group; in a pattern it means the host, after '!' or '&' the group"
                      for name in tree.host_groups if name in tree.group_order]
    members = _members(tree, children, host_groups)
    # What Ansible sets for a host of a file inventory (for a directory, each file's own: not tracked here).
    where = {"inventory_file": os.path.abspath(path), "inventory_dir": os.path.dirname(os.path.abspath(path))} \
        if os.path.isfile(path) else {}
    renderer = Renderer(raw_vars, host_groups, members, where)
    hosts = tuple(_make_host(name, host_groups[name], merged_vars[name], renderer) for name in tree.host_groups)
    return Inventory(path=path, hosts=hosts, groups=MappingProxyType(members), warnings=tuple(tree.warnings),
                     reader=reader)


def _members(tree: Tree, children: Mapping[str, Mapping[str, Where | None]],
             host_groups: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Every group's hosts in Ansible's order (what `web[0]` and `groups['web']` count on).

    A group lists its own hosts in the order they were added, then walks its descendants level by
    level, each child's own hosts in turn. 'ungrouped' holds the hosts listed in it that stayed
    ungrouped, then those that had no group at all; 'all' has 'ungrouped' as its first child.
    """
    own: dict[str, list[str]] = {group: [h for h in tree.group_hosts.get(group, {})
                                         if group == "all" or group in host_groups[h]]
                                 for group in tree.group_order}
    own["ungrouped"] += [h for h, groups in host_groups.items() if groups == ("ungrouped",)
                         and h not in tree.group_hosts.get("ungrouped", {})]
    ordered_children = {group: list(kids) for group, kids in children.items()}
    ordered_children["all"] = ["ungrouped"] + [g for g in ordered_children["all"] if g != "ungrouped"]
    members: dict[str, tuple[str, ...]] = {}
    for group in tree.group_order:
        found: dict[str, None] = {}
        level, seen = [group], {group}
        while level:
            for current in level:
                found.update(dict.fromkeys(own[current]))
            following = []
            for current in level:
                for child in ordered_children[current]:
                    if child not in seen:
                        seen.add(child)
                        following.append(child)
            level = following
        members[group] = tuple(found)
    return members


def _rooted_children(tree: Tree) -> dict[str, dict[str, Where | None]]:
    """The tree's links plus every parentless group as a child of 'all', as Ansible does after parsing."""
    children: dict[str, dict[str, Where | None]] = {group: dict(tree.children.get(group, {}))
                                                    for group in tree.group_order}
    has_parent = {child for kids in children.values() for child in kids}
    for group in tree.group_order:
        if group != "all" and group not in has_parent:
            children["all"].setdefault(group, None)
    for host, listed in tree.host_groups.items():
        if host in tree.group_order and host not in ("all", "ungrouped") and set(listed) <= {"all"}:
            # Ansible files a host of no group under 'ungrouped' by name, and a group of that name wins:
            # the group becomes a child of 'ungrouped' and the host stays in no group.
            children["ungrouped"].setdefault(host, None)
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
    value = var.value
    number = _as_int(value)
    if number is None:
        raise var.fail(f"ansible_group_priority of group '{group}' must be an integer, not {value!r}")
    return number


def _make_host(name: str, groups: tuple[str, ...], merged: _Vars, renderer: Renderer) -> Host:
    settings = _Settings(name, merged, renderer)
    shown = [var for var in merged if not var.startswith("ansible_") or var in KEPT_ANSIBLE_VARS]
    variables, templates = {}, {}
    for var in shown:
        raw = merged[var].value
        try:
            variables[var] = raw if isinstance(raw, Unusable) else renderer.value(name, var)
        except TemplateFailed as exc:
            variables[var] = Unusable(f"template {_short(raw)} failed: {exc}")
        if is_template(raw):
            templates[var] = raw
    host = Host(name=name, address=name, groups=groups, vars=variables, templates=templates)
    try:
        connection, plugin = settings.connection()
        if connection is Connection.UNSUPPORTED:
            return replace(host, connection=connection, plugin=plugin, problem=HostProblem(
                TransportStatus.UNSUPPORTED_CONNECTION,
                f"ansible_connection is '{plugin}': fleet runs only over ssh (ssh, paramiko, smart) or local"))
        key_file = settings.text(_KEY_FILE_VARS)
        _check_kept(name, variables)
        return replace(host, connection=connection, address=settings.text(_ADDRESS_VARS) or name,
                       port=settings.port(), user=settings.text(_USER_VARS),
                       key_file=os.path.expanduser(key_file) if key_file else None,
                       become_user=sshargs.become_user(variables), jump=sshargs.jump(variables))
    except _Unusable as exc:
        return replace(host, problem=HostProblem(TransportStatus.INVENTORY_ERROR, str(exc)))


def _check_kept(host: str, variables: Mapping[str, Any]) -> None:
    """The ansible_* settings fleet acts on (become, ssh arguments) must be usable, and ssh arguments,
    where ProxyJump and ProxyCommand are read from, must split like a shell's."""
    for var in sorted(KEPT_ANSIBLE_VARS & variables.keys()):
        value = variables[var]
        if isinstance(value, Unusable):
            raise _Unusable(f"{var} of host '{host}' is {value.reason}")
        try:
            if var in SSH_ARG_VARS:
                shlex.split(str(value or ""))
        except ValueError as exc:
            raise _Unusable(f"{var} of host '{host}' cannot be split into arguments: {exc}") from None


class _Unusable(Exception):
    """A connection setting of one host that fleet cannot use; it becomes that host's verdict."""


class _Settings:
    """One host's connection settings, rendered. Ansible's ssh plugin reads each from several
    variables, and the last name set wins, whatever level it was set at.

    A literal value that makes no sense refuses the inventory (a typo to fix); a value fleet cannot
    have (Vault ciphertext, a failed template, what a template rendered to) fails only this host.
    """

    def __init__(self, host: str, merged: _Vars, renderer: Renderer):
        self.host, self.merged, self.renderer = host, merged, renderer

    def get(self, names: tuple[str, ...]) -> tuple[str, Var, Any, bool] | None:
        """The last of `names` that is set: its name, Var, rendered value and whether it was a template."""
        found = [var for var in names if var in self.merged]
        if not found:
            return None
        var = found[-1]
        entry = self.merged[var]
        raw = entry.value
        if isinstance(raw, Unusable):
            raise _Unusable(f"{var} of host '{self.host}' is {raw.reason}")
        try:
            value = self.renderer.value(self.host, var)
        except TemplateFailed as exc:
            raise _Unusable(f"{var} of host '{self.host}': template {_short(raw)} failed: {exc}") from None
        return None if value is None else (var, entry, value, is_template(raw))

    def bad(self, setting: tuple[str, Var, Any, bool], wanted: str) -> Exception:
        var, entry, value, templated = setting
        if templated:
            return _Unusable(f"{var} of host '{self.host}' rendered to {_short(value)}, which is not {wanted}")
        return entry.fail(f"{var} of host '{self.host}' must be {wanted}, not {value!r}")

    def text(self, names: tuple[str, ...]) -> str | None:
        setting = self.get(names)
        if setting is None:
            return None
        value = setting[2]
        # INI reads 'ansible_user=1000' as a number; Ansible would use it as text, and so does fleet.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.bad(setting, "a non-empty string")
        return value

    def port(self) -> int | None:
        setting = self.get(_PORT_VARS)
        if setting is None:
            return None
        port = _as_int(setting[2])
        if port is None or not 1 <= port <= 65535:
            raise self.bad(setting, "a port number from 1 to 65535")
        return port

    def connection(self) -> tuple[Connection, str]:
        """fleet's transport for the host, and the plugin name as written."""
        setting = self.get(("ansible_connection",))
        if setting is None:
            return Connection.SSH, "ssh"
        value = setting[2]
        if not isinstance(value, str) or not value.strip():
            raise self.bad(setting, "the name of a connection plugin")
        plugin = value.removeprefix("ansible.builtin.")
        return _CONNECTIONS.get(plugin, Connection.UNSUPPORTED), plugin


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_int(value: Any) -> int | None:
    """An int from an int or a string of digits, as Ansible's int() would take it; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        return int(value)
    return None
