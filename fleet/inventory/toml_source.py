"""Ansible TOML inventories (*.toml), read as Ansible's toml plugin reads them."""

from __future__ import annotations

import tomllib
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.hostnames import expand_ranges, split_port
from fleet.inventory.tree import Tree, Var, plain
from fleet.inventory.yaml_source import PluginConfig


def parse_inventory(path: str, text: str, tree: Tree) -> None:
    """Add a TOML inventory's groups, hosts and variables to `tree`.

    Raises InventoryError naming the file (and the line of a TOML syntax error), and PluginConfig
    for a file that configures an inventory plugin.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise InventoryError(f"invalid TOML: {str(exc).split(' (at line')[0]}", path, line) from None
    if data.get("plugin"):
        raise PluginConfig(path, data["plugin"])
    for name, group in data.items():
        _group(path, tree, name, group)


def _group(path: str, tree: Tree, name: str, data: Any) -> None:
    if not isinstance(data, dict):
        tree.warn(f"skipped '{name}': a group must be a table with hosts, children or vars", path)
        return
    tree.add_group(name)
    for key, value in data.items():
        if key == "vars":
            if not isinstance(value, dict):
                raise InventoryError(f"'vars' of group '{name}' must be a table", path)
            tree.set_group_vars(name, _vars(path, value))
        elif key == "children":
            if not isinstance(value, list) or not all(isinstance(child, str) and child for child in value):
                raise InventoryError(f"'children' of group '{name}' must be a list of group names", path)
            for child in value:
                tree.add_child(name, child, (path, None))
        elif key == "hosts":
            if not isinstance(value, dict):
                raise InventoryError(f"'hosts' of group '{name}' must be a table of host names", path)
            for entry, host_vars in value.items():
                _host(path, tree, name, entry, host_vars)
        else:
            tree.warn(f"skipped unknown key '{key}' in group '{name}': only hosts, children and vars are read", path)


def _host(path: str, tree: Tree, group: str, entry: str, data: Any) -> None:
    pattern, port = split_port(entry)
    try:
        names = expand_ranges(pattern)
    except ValueError as exc:
        raise InventoryError(f"bad host range in '{pattern}': {exc}", path) from None
    if not isinstance(data, dict):
        raise InventoryError(f"the variables of host '{entry}' must be a table", path)
    variables = _vars(path, data)
    if port is not None:
        variables = {"ansible_port": Var(port, path, None), **variables}
    if not names:
        tree.warn(f"host range '{pattern}' counts down, so it names no host", path)
    for name in names:
        tree.add_host(name, group, variables)


def _vars(path: str, data: dict[str, Any]) -> dict[str, Var]:
    return {name: Var(plain(value), path, None) for name, value in data.items()}
