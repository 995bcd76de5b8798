"""group_vars/ and host_vars/ beside an inventory, found and merged as Ansible's host_group_vars plugin does."""

from __future__ import annotations

import os
from typing import Iterable

from fleet.errors import InventoryError
from fleet.inventory import yaml_source
from fleet.inventory.tree import Tree, Var
from fleet.textfile import read_text

VARS_EXTENSIONS = (".yml", ".yaml", ".json")


def load_vars_dirs(base: str, tree: Tree) -> None:
    """Read `base`/group_vars/ and `base`/host_vars/ for the groups and hosts in `tree`.

    For each name the first that exists of `name` (a file, or a directory whose files are merged in
    name order), `name.yml`, `name.yaml`, `name.json` is used; files for unknown names are ignored.
    A file that is wholly Ansible Vault encrypted is skipped with a warning: fleet cannot decrypt it.
    Raises InventoryError naming the variables file and line.
    """
    tree.group_files.update(_load(os.path.join(base, "group_vars"), tree.group_order, tree))
    tree.host_files.update(_load(os.path.join(base, "host_vars"), tree.host_groups, tree))


def _load(directory: str, names: Iterable[str], tree: Tree) -> dict[str, dict[str, Var]]:
    # Names are looked up among the directory's entries, never joined blindly onto a path, so a
    # host called '../../etc/passwd' (say, from a dynamic inventory) cannot reach outside it.
    entries = _list(directory, missing_ok=True)
    found: dict[str, dict[str, Var]] = {}
    if not entries:
        return found
    for name in names:
        merged: dict[str, Var] = {}
        for path in _files_for(directory, entries, name):
            merged.update(_read(path, tree))
        if merged:
            found[name] = merged
    return found


def _files_for(directory: str, entries: set[str], name: str) -> list[str]:
    for candidate in (name, *(name + extension for extension in VARS_EXTENSIONS)):
        path = os.path.join(directory, candidate)
        if candidate in entries and os.path.exists(path):
            return _directory_files(path, set()) if os.path.isdir(path) else [path]
    return []


def _directory_files(directory: str, seen: set[str]) -> list[str]:
    """The vars files under a group_vars/<name>/ directory, recursively, in name order."""
    real = os.path.realpath(directory)
    if real in seen:  # a symlink loop
        return []
    seen.add(real)
    found: list[str] = []
    for entry in sorted(_list(directory)):
        if entry.startswith(".") or entry.endswith("~"):  # hidden files and editor backups
            continue
        path = os.path.join(directory, entry)
        extension = os.path.splitext(entry)[1]
        if os.path.isdir(path):
            if not extension:
                found += _directory_files(path, seen)
        elif os.path.isfile(path) and (not extension or extension in VARS_EXTENSIONS):
            found.append(path)
    return found


def _list(directory: str, missing_ok: bool = False) -> set[str]:
    try:
        return set(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok:  # no group_vars/ at all, or a file by that name: Ansible skips it
            return set()
        raise InventoryError("variables directory not found", directory) from None
    except OSError as exc:
        raise InventoryError(f"cannot read variables directory: {exc.strerror or exc}", directory) from None


def _read(path: str, tree: Tree) -> dict[str, Var]:
    text = read_text(path, "variables file", InventoryError)
    if text.lstrip().startswith("$ANSIBLE_VAULT;"):
        tree.warn("skipped: the whole file is encrypted with Ansible Vault, which fleet cannot decrypt; "
                  "its variables are not set (encrypt single values with !vault to keep the others)", path)
        return {}
    return yaml_source.parse_vars(path, text)
