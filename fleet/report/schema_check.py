"""Checking a report read back from disk against fleet's own schema (fleet/schema/report-1.json).

`fleet report`, `fleet diff` and `fleet runbook test` read JSON that may have been edited, cut or
forged; the renderers trust its shape. Only the schema keywords that file uses are implemented:
type, enum, const, required, properties, additionalProperties, items, $ref, minimum, pattern.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

_TYPES = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float) and v == v and v not in (float("inf"), float("-inf")),
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


@functools.cache
def report_schema() -> dict[str, Any]:
    """The report schema shipped with fleet."""
    return json.loads((resources.files("fleet") / "schema/report-1.json").read_text(encoding="utf-8"))


def first_error(value: Any, schema: dict[str, Any] | None = None, where: str = "the report") -> str | None:
    """Where and how `value` first departs from `schema` (the report schema by default); None if it does not."""
    root = report_schema()
    return _check(value, root if schema is None else schema, root, where)


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](value) for k in kinds):
            return f"{where} must be {' or '.join(kinds)}, not {_kind(value)}"
    if "const" in schema and value != schema["const"]:
        return f"{where} must be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {', '.join(map(str, schema['enum']))}"
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        return f"{where} must be at least {schema['minimum']}"
    if "pattern" in schema and type(value) is str and not re.search(schema["pattern"], value):
        return f"{where} does not match {schema['pattern']}"
    if type(value) is dict:
        return _check_object(value, schema, root, where)
    if type(value) is list and "items" in schema:
        for i, item in enumerate(value):
            error = _check(item, schema["items"], root, f"{where}[{i}]")
            if error:
                return error
    return None


def _check_object(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    for key in schema.get("required", ()):
        if key not in value:
            return f"{where} lacks {key!r}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            error = _check(item, properties[key], root, f"{where}.{key}")
        elif extra is False:
            error = f"{where} has an unknown key {key!r}"
        elif isinstance(extra, dict):
            error = _check(item, extra, root, f"{where}.{key}")
        else:
            error = None
        if error:
            return error
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
