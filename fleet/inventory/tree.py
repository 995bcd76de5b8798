"""The intermediate form every inventory source fills in: groups, links, hosts and variables, not yet resolved."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Mapping

from fleet.errors import InventoryError

# (file, line) of an entry; line is None when the source has no lines (a script's JSON output).
Where = tuple[str, int | None]


def plain(value: Any) -> Any:
    """Dates and times as the ISO text Ansible's JSON shows, so every value stays JSON-serialisable."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Var:
    """One variable's value and where it was set.

    An inline `!vault` value is an Unusable: Ansible keeps it encrypted until used, and fleet fails
    only the hosts that need it.
    """

    value: Any
    path: str
    line: int | None

    def fail(self, message: str) -> InventoryError:
        """An error about this variable, placed where it was set."""
        return InventoryError(message, self.path, self.line)


@dataclass
class Tree:
    """Everything the sources said, in the order they said it; several sources add to one Tree."""

    group_order: dict[str, None] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Var]] = field(default_factory=dict)
    # parent -> child -> where the link was written.
    children: dict[str, dict[str, Where]] = field(default_factory=dict)
    host_groups: dict[str, dict[str, None]] = field(default_factory=dict)  # host -> groups it is listed in
    group_hosts: dict[str, dict[str, None]] = field(default_factory=dict)  # group -> hosts listed in it, in order
    host_vars: dict[str, dict[str, Var]] = field(default_factory=dict)
    # group_vars/ and host_vars/ files: Ansible ranks every one of them above all inventory-source vars.
    group_files: dict[str, dict[str, Var]] = field(default_factory=dict)
    host_files: dict[str, dict[str, Var]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # 'all' and 'ungrouped' always exist and come first, as in Ansible.
        self.add_group("all")
        self.add_group("ungrouped")

    def add_group(self, name: str) -> None:
        """Declare a group (declaring it again is harmless)."""
        self.group_order.setdefault(name, None)
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, {})

    def has_group(self, name: str) -> bool:
        return name in self.group_order

    def add_child(self, parent: str, child: str, where: Where) -> None:
        """Make `child` a child of `parent`, declaring both; the first place a link is written is kept."""
        self.add_group(parent)
        self.add_group(child)
        self.children[parent].setdefault(child, where)

    def set_group_vars(self, group: str, variables: Mapping[str, Var]) -> None:
        """Set group variables; a later source overrides an earlier one, variable by variable."""
        self.add_group(group)
        self.group_vars[group].update(variables)

    def add_host(self, name: str, group: str, variables: Mapping[str, Var]) -> None:
        """List a host in a group with variables; a host listed again keeps one entry and merges its vars."""
        self.add_group(group)
        self.host_groups.setdefault(name, {})[group] = None
        self.group_hosts.setdefault(group, {})[name] = None
        self.host_vars.setdefault(name, {}).update(variables)

    def set_host_vars(self, name: str, variables: Mapping[str, Var]) -> None:
        """Set variables of a host already listed in a group; they override what was set before."""
        self.host_vars.setdefault(name, {}).update(variables)

    # Sources add what they noticed but read past, as Ansible warns and goes on.
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str, path: str, line: int | None = None) -> None:
        """Record a warning about `path` (and line), for the command to print."""
        self.warnings.append(f"{path}:{line}: {message}" if line else f"{path}: {message}")

    def is_empty(self) -> bool:
        """True when no source declared a host, a group of its own or any variable."""
        return (not self.host_groups and len(self.group_order) == 2
                and not any(self.group_vars.values()) and not any(self.children.values()))
