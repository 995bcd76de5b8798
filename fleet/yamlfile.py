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


def load_yaml(path: str | os.PathLike, error: type[InputError] = InputError) -> Any:
    """Read and parse a YAML file; every failure becomes `error` naming the file (and line)."""
    path = os.fspath(path)
    text = read_text(path, "file", error)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, RecursionError, TypeError, ValueError) as exc:
        raise error(f"invalid YAML: {' '.join(str(exc).split())[:200]}", path) from None
    if data is None:
        raise error("file is empty", path)
    return data
