"""Checking, when a runbook loads, that its rules name attributes the facts really have.

Facts are frozen dataclasses, and a rule touching a missing attribute (`nginx.runing`) is
undefined, which evaluation treats as "this host could not give that fact": the rule would load
and silently never match. Each parser's return annotation names its facts' type, so
`probe.attr` chains are checked against it, through fields and properties whose own type is a
dataclass (`nginx.login_location.path`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Iterator, Mapping

from jinja2 import nodes

from fleet.parsers import PARSERS


@functools.cache
def fact_type(parser: str) -> type | None:
    """The facts dataclass a parser returns, from its annotation (None when it names none)."""
    return _dataclass_of(typing.get_type_hints(PARSERS[parser]).get("return"))


def unknown_attributes(tree: nodes.Node, probe_parsers: Mapping[str, str]) -> list[str]:
    """`probe.attr` chains in an expression or template that the facts' type does not have, with a hint."""
    problems = []
    for chain in _chains(tree):
        root, attrs = chain[0], chain[1:]
        kind = fact_type(probe_parsers[root]) if root in probe_parsers else None
        for depth, attr in enumerate(attrs):
            if kind is None:
                break
            if not hasattr(kind, attr) and attr not in _field_names(kind):
                known = sorted(n for n in {*_field_names(kind), *dir(kind)} if not n.startswith("_"))
                close = difflib.get_close_matches(attr, known, n=1)
                hint = f" (did you mean {'.'.join([*chain[:depth + 1], close[0]])}?)" if close else ""
                problems.append(f"{'.'.join(chain[:depth + 2])}: {kind.__name__} has no {attr!r}{hint}")
                break
            kind = _member_type(kind, attr)
    return problems


def _chains(tree: nodes.Node) -> Iterator[list[str]]:
    """Each outermost `name.a.b` chain of plain attribute access in the tree."""
    inner: set[int] = set()
    for node in tree.find_all(nodes.Getattr):
        if id(node) in inner:
            continue
        chain, current = [], node
        while isinstance(current, nodes.Getattr):
            inner.add(id(current))
            chain.append(current.attr)
            current = current.node
        if isinstance(current, nodes.Name):
            yield [current.name, *reversed(chain)]


def _field_names(kind: type) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


def _member_type(kind: type, attr: str) -> type | None:
    """The dataclass a field or property holds, when it holds one (a method or a plain value: None)."""
    member = getattr(kind, attr, None)
    try:
        if isinstance(member, property):
            return _dataclass_of(typing.get_type_hints(member.fget).get("return"))
        return _dataclass_of(typing.get_type_hints(kind).get(attr))
    except (NameError, TypeError):
        return None


def _dataclass_of(annotation: Any) -> type | None:
    """`X`, `X | None` or `Optional[X]` for a dataclass X: X; anything else: None."""
    if isinstance(annotation, (types.UnionType,)) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    return annotation if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) else None
