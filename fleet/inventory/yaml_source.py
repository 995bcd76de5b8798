"""Ansible YAML inventories, and the YAML/JSON variable files of group_vars/ and host_vars/, with line numbers."""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

import yaml

from fleet.errors import InventoryError
from fleet.inventory.hostnames import expand_ranges, split_port
from fleet.inventory.templating import UnsafeText
from fleet.inventory.tree import Tree, Var, plain
from fleet.models import Unusable
from fleet.yamlfile import compose, on_libyaml

GROUP_SECTIONS = ("hosts", "children", "vars")

_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"

_T = TypeVar("_T")


def parse_inventory(path: str, text: str, tree: Tree) -> None:
    """Add a YAML inventory's groups, hosts and variables to `tree`.

    Raises InventoryError naming the file and line for anything malformed.
    """
    _run(path, text, lambda parser: parser.inventory(tree))


def parse_vars(path: str, text: str) -> dict[str, Var]:
    """The variables of a group_vars/ or host_vars/ file: a mapping, or nothing if the file is empty.

    A .json file that YAML cannot read (tab indentation) is read as JSON, as Ansible reads JSON first.
    Raises InventoryError naming the file and line.
    """
    try:
        return _run(path, text, lambda parser: parser.vars_file())
    except InventoryError:
        if not path.endswith(".json"):
            raise
        return _json_vars(path, text)


def is_mapping(path: str, text: str) -> bool:
    """True if the text is YAML with a mapping at the top, how a file without extension is told from INI.

    Raises InventoryError (file and line) if the text is not YAML at all.
    """
    return _run(path, text, lambda parser: isinstance(parser.node, yaml.MappingNode))


def _run(path: str, text: str, action: Callable[[_Parser], _T]) -> _T:
    parser = None
    try:
        parser = _Parser(path, text)
        return action(parser)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path, text) from None
    except RecursionError:
        raise InventoryError("YAML is nested too deeply", path) from None
    finally:
        if parser is not None:
            parser.loader.dispose()


def _json_vars(path: str, text: str) -> dict[str, Var]:
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise InventoryError(f"invalid JSON: {getattr(exc, 'msg', exc)}", path, getattr(exc, "lineno", None)) from None
    if not isinstance(data, dict):
        raise InventoryError(f"variables file must be a mapping of variable names, not {type(data).__name__}", path)
    return {name: Var(value, path, None) for name, value in data.items()}


def _yaml_error(exc: yaml.YAMLError, path: str, text: str) -> InventoryError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        return InventoryError(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return InventoryError(f"invalid YAML: {exc.reason} (character #x{exc.character:04x})", path, line)
    return InventoryError(f"invalid YAML: {exc}", path)


class PluginConfig(Exception):
    """The file configures an Ansible inventory plugin (aws_ec2, netbox...) rather than listing hosts."""

    def __init__(self, path: str, plugin: Any):
        super().__init__(f"{path}: inventory plugin configuration (plugin: {plugin})")
        self.path, self.plugin = path, str(plugin)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads the tags Ansible adds to YAML."""


def _construct_unsafe(loader: _Loader, node: yaml.Node) -> Any:
    # !unsafe switches off Jinja templating of the text it marks, in a list or mapping too.
    if isinstance(node, yaml.ScalarNode):
        return UnsafeText(loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return [UnsafeText(v) if isinstance(v, str) else v for v in loader.construct_sequence(node, deep=True)]
    return {k: UnsafeText(v) if isinstance(v, str) else v for k, v in loader.construct_mapping(node, deep=True).items()}


def _construct_vault(loader: _Loader, node: yaml.Node) -> Any:
    # Kept encrypted, as Ansible keeps it until used: it fails only the hosts that need it.
    return Unusable(f"encrypted with Ansible Vault (line {node.start_mark.line + 1}), which fleet cannot decrypt")


_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)
_FastLoader = on_libyaml(_Loader)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _is_text(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value[:40]!r}"


class _Parser:
    """One file: walks the YAML node tree, which keeps line numbers that constructed data would lose."""

    def __init__(self, path: str, text: str):
        self.path = path
        # Both parsers refuse control characters; what libyaml refuses, PyYAML reads again to word it.
        self.loader, self.node = compose(text, _Loader, _FastLoader)
        # YAML aliases can share one node between groups; parse each (group, node) once so
        # aliases neither loop forever nor blow up exponentially.
        self.parsed: set[tuple[str, yaml.Node]] = set()

    def error(self, message: str, node: yaml.Node | None = None) -> InventoryError:
        return InventoryError(message, self.path, _line(node) if node is not None else None)

    def root(self) -> yaml.Node | None:
        """The document's top node, or None for an empty document ('', comments, '~', '{}')."""
        root = self.node
        if root is None or _is_null(root) or (isinstance(root, yaml.MappingNode) and not root.value):
            return None
        return root

    def inventory(self, tree: Tree) -> None:
        root = self.root()
        if root is None:
            return
        if not isinstance(root, yaml.MappingNode):
            raise self.error(f"inventory must be a mapping of group names at the top level, not {_describe(root)}", root)
        items = self.items(root)
        for key, value in items:
            # Ansible checks for a plugin configuration before it reads any group.
            if isinstance(key, yaml.ScalarNode) and key.value == "plugin" and not _is_null(value):
                raise PluginConfig(self.path, self.loader.construct_object(value, deep=True))
        for key, value in items:
            self.group(tree, self.name_of(key, "group"), value)

    def vars_file(self) -> dict[str, Var]:
        root = self.root()
        return {} if root is None else self.variables(root, "variables file")

    def items(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        # Resolves '<<: *anchor' merge keys, which Ansible users rely on to share host vars.
        self.loader.flatten_mapping(node)
        return node.value

    def name_of(self, key: yaml.Node, what: str) -> str:
        if not isinstance(key, yaml.ScalarNode) or _is_null(key) or not key.value.strip():
            raise self.error(f"{what} name must be a non-empty string, not {_describe(key)}", key)
        if key.tag != _STR_TAG:
            # Ansible refuses a name YAML reads as a number, boolean or date: 1234 is not the host '1234'.
            raise self.error(f"{what} name {key.value} must be a string: YAML reads it as "
                             f"{key.tag.rsplit(':', 1)[-1]}; enclose it in quotation marks", key)
        return key.value

    def group(self, tree: Tree, name: str, node: yaml.Node) -> None:
        if not _is_null(node) and not isinstance(node, yaml.MappingNode):
            # Ansible skips such an entry with a warning; it declares no group.
            tree.warn(f"skipped '{name}': a group must be a mapping with hosts, children or vars, not "
                      f"{_describe(node)}", self.path, _line(node))
            return
        tree.add_group(name)
        if _is_null(node) or (name, node) in self.parsed:
            return
        self.parsed.add((name, node))
        for key, value in self.items(node):
            section = key.value if isinstance(key, yaml.ScalarNode) else None
            known = section in GROUP_SECTIONS
            if _is_null(value):
                continue
            if known and not (isinstance(value, yaml.MappingNode) or _is_text(value)):
                raise self.error(f"'{section}' of group '{name}' must be a mapping of names, not {_describe(value)} "
                                 f"(write each name as a key ending in ':')", value)
            if not known:
                shown = repr(section) if section is not None else _describe(key)
                tree.warn(f"skipped unknown key {shown} in group '{name}': only hosts, children and vars are read",
                          self.path, _line(key))
                continue
            if section == "vars":
                # A bare name under vars sets that variable to null, as in Ansible.
                variables = ({self.var_name(value, name): Var(None, self.path, _line(value))} if _is_text(value)
                             else self.variables(value, f"vars of group '{name}'"))
                tree.set_group_vars(name, variables)
            elif section == "hosts":
                for host_key, host_value in self.entries(value, "hosts", name):
                    self.host(tree, name, host_key, host_value)
            else:
                for child_key, child_value in self.entries(value, "children", name):
                    child = self.name_of(child_key, "group")
                    if not _is_null(child_value) and not isinstance(child_value, yaml.MappingNode):
                        # Ansible skips it, then fails to link the group it did not declare.
                        raise self.error(f"group '{child}' must be a mapping with hosts, children or vars, not "
                                         f"{_describe(child_value)}", child_value)
                    tree.add_child(name, child, (self.path, _line(child_key)))
                    self.group(tree, child, child_value)

    def entries(self, node: yaml.Node, section: str, group: str) -> list[tuple[yaml.Node, yaml.Node]]:
        """The name -> value pairs of a hosts/children section; Ansible also takes one bare name."""
        if isinstance(node, yaml.ScalarNode):
            return [(node, yaml.ScalarNode(_NULL_TAG, "", node.start_mark, node.end_mark))]
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"'{section}' of group '{group}' must be a mapping of names, not {_describe(node)} "
                             f"(write each name as a key ending in ':')", node)
        return self.items(node)

    def variables(self, node: yaml.Node, what: str) -> dict[str, Var]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"{what} must be a mapping, not {_describe(node)}", node)
        found: dict[str, Var] = {}
        for key, value in self.items(node):
            name = self.var_name(key, what)
            found[name] = self.var(name, key, value)
        return found

    def var_name(self, key: yaml.Node, what: str) -> str:
        """A variable's name; Ansible also takes a number or boolean (7.2: bar), named as JSON writes it."""
        if not isinstance(key, yaml.ScalarNode) or _is_null(key) or not key.value:
            raise self.error(f"variable names must be strings, not {_describe(key)} (in {what})", key)
        if key.tag == _STR_TAG:
            return key.value
        try:
            value = self.loader.construct_object(key, deep=True)
            return next(iter(json.loads(json.dumps({plain(value): None}))))
        except Exception:  # noqa: BLE001 - any key JSON cannot name is refused below
            raise self.error(f"variable names must be strings, not {_describe(key)} (in {what})", key) from None

    def var(self, name: str, key: yaml.Node, node: yaml.Node) -> Var:
        """A variable's value; a value YAML cannot build (an unknown tag, '!!int lots') refuses the file, as in Ansible."""
        line = _line(key)
        try:
            return Var(plain(self.loader.construct_object(node, deep=True)), self.path, line)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise InventoryError(f"variable '{name}': {exc.problem or exc}", self.path,
                                 mark.line + 1 if mark else line) from None
        except Exception as exc:  # SafeConstructor lets ValueError & co. out for tagged scalars like '!!int x'
            raise InventoryError(f"variable '{name}': cannot read its value ({exc})", self.path, line) from None

    def host(self, tree: Tree, group: str, key: yaml.Node, value: yaml.Node) -> None:
        pattern, port = split_port(self.name_of(key, "host"))
        try:
            names = expand_ranges(pattern)
        except ValueError as exc:
            raise self.error(f"bad host range in '{pattern}': {exc}", key) from None
        host_vars = {} if _is_null(value) else self.variables(value, f"vars of host '{pattern}'")
        if port is not None:
            # host:port is shorthand for ansible_port; the host's own vars may still override it.
            host_vars = {"ansible_port": Var(port, self.path, _line(key)), **host_vars}
        if not names:
            tree.warn(f"host range '{pattern}' counts down, so it names no host", self.path, _line(key))
        for name in names:
            tree.add_host(name, group, host_vars)
