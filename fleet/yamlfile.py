"""YAML files that remember line numbers, so an error can name the file and line."""

from __future__ import annotations

import os
from typing import Any

import yaml

from fleet.errors import InputError
from fleet.textfile import read_text


class LineDict(dict):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML hook
        mapping = LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                mapping.key_lines[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: construct_mapping above already refused it
                pass
        return mapping

    def construct_sequence(self, node, deep=False):  # noqa: D102 - PyYAML hook
        seq = LineList(super().construct_sequence(node, deep=True))
        seq.line = node.start_mark.line + 1
        return seq


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def on_libyaml(loader: type[yaml.SafeLoader]) -> type[yaml.SafeLoader] | None:
    """`loader` with libyaml's parser in place of PyYAML's pure-Python one; None without libyaml.

    Same constructors, same nodes and line marks, ten times less CPU (a 150-host inventory:
    30 ms -> 3 ms). Callers fall back to `loader` itself when this one refuses a document, so
    an error is always worded, and located, by PyYAML.
    """
    try:
        from yaml.cyaml import CParser
    except ImportError:
        return None

    class Fast(CParser, loader):  # type: ignore[misc, valid-type]
        def __init__(self, stream):
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    Fast.__name__ = Fast.__qualname__ = f"Fast{loader.__name__}"
    return Fast


# libyaml composes nested nodes by C recursion and dies of SIGSEGV somewhere past 20,000 levels,
# which a hostile file of a few bytes per level reaches: such files go to PyYAML, whose recursion
# ends in a RecursionError.
_LIBYAML_MAX_NESTING = 2000


def libyaml_can_take(text: str) -> bool:
    """Whether `text` cannot nest deeper than libyaml safely composes.

    A bound, not a parse: every level opens with a flow bracket, a block entry ('- '), an
    explicit key ('? ') or more indentation than the level above, which the longest line bounds.
    """
    openers = sum(text.count(s) for s in ("[", "{", "- ", "-\n", "? ", "?\n"))
    return openers + max(map(len, text.splitlines()), default=0) < _LIBYAML_MAX_NESTING


# Nodes that aliases may add to a document beyond those written in it. Aliases of aliases grow
# exponentially (a 500-byte "billion laughs" file stands for 387 million values); everything that
# later walks the values (variables per host, JSON, reports) would take that long.
MAX_ALIAS_EXPANSION = 100_000


def check_aliases(node: yaml.Node | None) -> None:
    """Refuse a document whose aliases expand to more than MAX_ALIAS_EXPANSION extra nodes.

    Counts in one pass over the distinct nodes (each alias target's size is remembered), without
    recursion; a recursive alias counts as one node.
    """
    if node is None:
        return
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in size and not children_done:
            continue
        children = _children(current)
        if children_done:
            size[id(current)] = 1 + sum(size.get(id(c), 1) for c in children)
            continue
        size[id(current)] = 1  # in progress: a recursive alias back to it counts as one node
        stack.append((current, True))
        stack.extend((child, False) for child in children if id(child) not in size)
    expanded = size[id(node)]
    if expanded - len(size) > MAX_ALIAS_EXPANSION:
        raise yaml.composer.ComposerError(
            None, None, f"aliases expand this document to {expanded:,} values, more than "
            f"{MAX_ALIAS_EXPANSION:,} beyond what is written (an alias bomb?)", node.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def compose(text: str, loader: type[yaml.SafeLoader],
            fast: type[yaml.SafeLoader] | None) -> tuple[yaml.SafeLoader, yaml.Node | None]:
    """The document's node tree, and the loader that built it (it constructs the values).

    `fast` (`on_libyaml(loader)`) composes when it can take the text safely; a document it
    refuses is composed again by `loader`, so PyYAML words and locates every syntax error.
    The caller disposes of the returned loader.
    """
    if fast is not None and libyaml_can_take(text):
        parser = fast(text)
        try:
            node = parser.get_single_node()
        except yaml.YAMLError:
            parser.dispose()
        else:
            try:
                check_aliases(node)
            except BaseException:
                parser.dispose()
                raise
            return parser, node
    parser = loader(text)
    try:
        node = parser.get_single_node()
        check_aliases(node)
        return parser, node
    except BaseException:
        parser.dispose()
        raise


_FastLoader = on_libyaml(_Loader)


def _load(text: str) -> Any:
    parser, node = compose(text, _Loader, _FastLoader)
    try:
        return None if node is None else parser.construct_document(node)
    finally:
        parser.dispose()


def load_yaml(path: str | os.PathLike, error: type[InputError] = InputError) -> Any:
    """Read and parse a YAML file; every failure becomes `error` naming the file (and line)."""
    path = os.fspath(path)
    text = read_text(path, "file", error)
    try:
        data = _load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, RecursionError, TypeError, ValueError) as exc:
        raise error(f"invalid YAML: {' '.join(str(exc).split())[:200]}", path) from None
    if data is None:
        raise error("file is empty", path)
    return data
