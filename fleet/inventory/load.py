"""Loading an inventory path: a YAML, INI or executable file, or a directory of them, plus group_vars/ and host_vars/."""

from __future__ import annotations

import errno
import os
import shutil
import stat

from fleet.errors import InventoryError
from fleet.inventory import ini_source, script_source, toml_source, yaml_source
from fleet.inventory.resolve import Inventory, resolve
from fleet.inventory.tree import Tree
from fleet.inventory.vars_dirs import load_vars_dirs
from fleet.textfile import decode, read_bytes

YAML_EXTENSIONS = (".yml", ".yaml", ".json")
# Ansible's defaults: INVENTORY_IGNORE_EXTS, and the names it always skips in an inventory directory.
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
IGNORED_NAMES = ("group_vars", "host_vars", "vars_plugins")
ANSIBLE_INVENTORY = "ansible-inventory"


def load_inventory(path: str | os.PathLike, *, script_timeout_s: float = script_source.TIMEOUT_S) -> Inventory:
    """Load an Ansible inventory: a YAML or INI file, an executable dynamic inventory, or a directory of them.

    A directory's files are read in name order and merged; group_vars/ and host_vars/ beside the file
    (or inside the directory) add variables as in Ansible. A dynamic inventory gets `script_timeout_s`
    in all. Raises InventoryError, naming the file and line when known, for anything unreadable or malformed.
    """
    path_str = os.fsdecode(path)
    tree = Tree()
    readers: dict[str, None] = {}
    try:
        if os.path.isdir(path_str):
            if not _load_directory(path_str, tree, script_timeout_s, set(), readers):
                raise InventoryError("inventory directory holds no inventory files (hidden files, group_vars/, "
                                     "host_vars/ and backup, *.retry, *.md, *.txt or *.cfg files are skipped)",
                                     path_str)
            base = path_str
        else:
            _load_file(path_str, tree, script_timeout_s, readers)
            base = os.path.dirname(path_str)
        if tree.is_empty():
            # Ansible reads an empty inventory as one without hosts, and says so.
            tree.warn("inventory is empty: it lists no hosts or groups", path_str)
        if ANSIBLE_INVENTORY not in readers:  # ansible-inventory already applied group_vars/ and host_vars/
            load_vars_dirs(base or os.curdir, tree)
        return resolve(path_str, tree, ", ".join(readers))
    except RecursionError:
        raise InventoryError("inventory is nested too deeply", path_str) from None


def _load_directory(directory: str, tree: Tree, timeout_s: float, seen: set[str], readers: dict[str, None]) -> int:
    """Load every inventory file under `directory`, as Ansible does; returns how many there were."""
    real = os.path.realpath(directory)
    if real in seen:  # a symlink loop
        return 0
    seen.add(real)
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        raise InventoryError(f"cannot read inventory directory: {exc.strerror or exc}", directory) from None
    loaded = 0
    for entry in entries:
        if entry.startswith(".") or entry in IGNORED_NAMES or entry.endswith(IGNORED_SUFFIXES):
            continue
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            loaded += _load_directory(path, tree, timeout_s, seen, readers)
        elif os.path.isfile(path):  # not sockets or FIFOs, where a read could block forever
            _load_file(path, tree, timeout_s, readers)
            loaded += 1
    return loaded


def _load_file(path: str, tree: Tree, timeout_s: float, readers: dict[str, None]) -> None:
    """Add one file to `tree`, noting in `readers` what read it.

    An executable is run; a YAML or TOML inventory-plugin configuration goes to `ansible-inventory
    --list` when that is installed; anything else is read as YAML, TOML or INI by extension and content.
    """
    try:
        readers[_read_file(path, tree, timeout_s)] = None
    except yaml_source.PluginConfig as config:
        program = shutil.which("ansible-inventory")
        if program is None:
            raise InventoryError(f"this configures the Ansible inventory plugin '{config.plugin}', which fleet "
                                 f"resolves with 'ansible-inventory --list'; ansible-inventory is not installed "
                                 f"(pip install ansible-core, with the plugin's collection)", path) from None
        script_source.parse_with_ansible(program, path, tree, timeout_s)
        readers[ANSIBLE_INVENTORY] = None


def _read_file(path: str, tree: Tree, timeout_s: float) -> str:
    """Add one file to `tree` with fleet's own readers; returns which one read it."""
    if _is_executable(path):
        try:
            script_source.parse_inventory(path, tree, timeout_s)
            return "script"
        except OSError as exc:
            # The executable bit on a text file without '#!': Ansible falls back to the static formats too.
            if exc.errno != errno.ENOEXEC:
                raise
    data = read_bytes(path, "inventory file", InventoryError)
    if data.startswith(b"#!"):
        raise InventoryError("starts with '#!' like a dynamic inventory script, but is not executable "
                             "(chmod +x it to have fleet run it)", path)
    extension = os.path.splitext(path)[1].lower()
    if extension in YAML_EXTENSIONS:
        yaml_source.parse_inventory(path, decode(data, path, InventoryError), tree)
        return "yaml"
    if extension == ".toml":
        toml_source.parse_inventory(path, decode(data, path, InventoryError), tree)
        return "toml"
    if extension:
        ini_source.parse_inventory(path, data, tree)
        return "ini"
    return _load_unnamed(path, data, tree)


def _load_unnamed(path: str, data: bytes, tree: Tree) -> str:
    """A file without extension is YAML if its top level is a mapping, else INI, as Ansible tries them in turn."""
    not_yaml: InventoryError | None = None
    try:
        text = decode(data, path, InventoryError)
        is_yaml = yaml_source.is_mapping(path, text)
    except InventoryError as exc:
        is_yaml, not_yaml = False, exc
    if is_yaml:
        # A mapping is a YAML inventory: its errors are YAML errors, never a reason to try INI.
        yaml_source.parse_inventory(path, text, tree)
        return "yaml"
    try:
        ini_source.parse_inventory(path, data, tree)
        return "ini"
    except InventoryError as exc:
        if not_yaml is None:
            raise
        # Both readings failed: say so, since a YAML inventory with a typo would otherwise get INI complaints.
        yaml_where = f"line {not_yaml.line}: " if not_yaml.line else ""
        raise InventoryError(f"{exc.message} (read as INI; as YAML, {yaml_where}{not_yaml.message})",
                             path, exc.line) from None


def _is_executable(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except (OSError, ValueError):
        return False
