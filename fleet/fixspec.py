"""A rule's `fix:` as declared in a runbook, and how it becomes fix steps for one host.

Every entry of `fix:` is one of (docs/runbook-format.md, "Fixes"):

* a text: prose (a `Note`), rendered as a `#` comment and never as a command;
* `{run: [ARG, ...], pipe: [[ARG, ...], ...], cwd: ARG, explain: TEXT}`: a command. Each ARG is a
  template that renders to exactly one argument (no shell quoting of its own: `fleet.fixes`
  quotes), or `{args: EXPR}` for a list of arguments;
* `{service: {action: start|restart|reload|status|logs, manager: TEXT, name: TEXT}}`: act on a
  service through systemd or docker;
* `{edit: {path: TEXT, line: TEXT, old: TEXT, new: TEXT}}`: edit one line of a file;
* `{steps: EXPR}`: steps built by facts (a step or a list of them);

each optionally with `when: EXPR` (the entry applies only when true) and `for_each: EXPR` (the
entry applies once per element, bound to `item`). Expressions and templates see what rules see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from fleet.fixes import Command, EditFile, Manager, Note, Service, Step, Verb, flatten
from fleet.probes._common import to_int

_KEYS = {"when", "for_each", "explain", "run", "pipe", "cwd", "service", "edit", "steps"}
_ACTIONS = ("run", "service", "edit", "steps")
# Compilers given by the runbook loader: (source, what, extra names) -> compiled, raising its error.
Compile = Callable[[str, str, frozenset], Any]


class FixSpecError(ValueError):
    """A malformed `fix:` entry; the loader adds file and line."""


@dataclass(frozen=True)
class Splice:
    """`{args: EXPR}` in an argv: the expression's list, one argument per element."""

    expression: Any


@dataclass(frozen=True)
class FixEntry:
    """One entry of a rule's `fix:`, compiled."""

    line: int
    text: Any = None  # a prose template (the plain-text form)
    when: Any = None
    for_each: Any = None
    explain: Any = None
    argv: tuple[Any, ...] = ()
    pipe: tuple[tuple[Any, ...], ...] = ()
    cwd: Any = None
    service: tuple[Verb, Any, Any] | None = None
    edit: Mapping[str, Any] = field(default_factory=dict)
    steps: Any = None


def parse_entry(node: Any, line: int, expression: Compile, template: Compile) -> FixEntry:
    """Compile one `fix:` entry (FixSpecError if it is malformed)."""
    if isinstance(node, (str, int, float)) and not isinstance(node, bool):
        return FixEntry(line, text=template(str(node), "fix", frozenset()))
    if not isinstance(node, Mapping):
        raise FixSpecError("a fix entry must be a text or a mapping")
    unknown = sorted(set(node) - _KEYS)
    if unknown:
        raise FixSpecError(f"unknown key {unknown[0]!r} in a fix entry (allowed: {', '.join(sorted(_KEYS))})")
    actions = [key for key in _ACTIONS if key in node]
    if len(actions) > 1:
        raise FixSpecError(f"a fix entry has one of {', '.join(_ACTIONS)}, not {' and '.join(actions)}")
    if not actions and "explain" not in node:
        raise FixSpecError(f"a fix entry needs one of {', '.join(_ACTIONS)} or explain")
    extra = frozenset({"item"}) if "for_each" in node else frozenset()
    expr = lambda key: expression(_text(node[key], key), f"fix {key}", extra) if key in node else None  # noqa: E731
    text = lambda value, what: template(_text(value, what), f"fix {what}", extra)  # noqa: E731
    entry = dict(line=line, when=expr("when"), for_each=expr("for_each"), steps=expr("steps"),
                 explain=text(node["explain"], "explain") if "explain" in node else None)
    if "run" in node:
        entry["argv"] = _argv(node["run"], "run", expression, text, extra)
        pipe = node.get("pipe") or []
        if not isinstance(pipe, list):
            raise FixSpecError("pipe must be a list of argv lists")
        entry["pipe"] = tuple(_argv(argv, "pipe", expression, text, extra) for argv in pipe)
        entry["cwd"] = text(node["cwd"], "cwd") if "cwd" in node else None
    elif "pipe" in node or "cwd" in node:
        raise FixSpecError("pipe and cwd belong to a run entry")
    if "service" in node:
        spec = _mapping(node["service"], "service", {"action", "manager", "name"})
        try:
            verb = Verb(spec["action"])
        except ValueError:
            raise FixSpecError(f"service action must be one of {', '.join(v.value for v in Verb)}") from None
        entry["service"] = (verb, text(spec["manager"], "manager"), text(spec["name"], "name"))
    if "edit" in node:
        spec = _mapping(node["edit"], "edit", {"path", "line", "old", "new"}, required={"path"})
        entry["edit"] = {key: text(value, key) for key, value in spec.items()}
    return FixEntry(**entry)


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FixSpecError(f"fix {what} must be a text")
    return str(value)


def _mapping(node: Any, what: str, allowed: set[str], required: set[str] | None = None) -> Mapping[str, Any]:
    required = allowed if required is None else required
    if not isinstance(node, Mapping) or set(node) - allowed or required - set(node):
        raise FixSpecError(f"{what} must be a mapping with {', '.join(sorted(required))}"
                           f"{' (and optionally ' + ', '.join(sorted(allowed - required)) + ')' if allowed - required else ''}")
    return node


def _argv(node: Any, what: str, expression: Compile, text: Callable, extra: frozenset) -> tuple[Any, ...]:
    if not isinstance(node, list) or not node:
        raise FixSpecError(f"{what} must be a non-empty list of arguments")
    argv = []
    for arg in node:
        if isinstance(arg, Mapping):
            if set(arg) != {"args"}:
                raise FixSpecError(f"an argument of {what} is a text or {{args: EXPR}}")
            argv.append(Splice(expression(_text(arg["args"], "args"), "fix args", extra)))
        else:
            argv.append(text(arg, what))
    return tuple(argv)


def build(entry: FixEntry, context: Mapping[str, Any]) -> tuple[Step, ...]:
    """The steps of one entry for one host's facts; a failure becomes a note saying what is missing."""
    try:
        if entry.when is not None and not entry.when(**context):
            return ()
        items = list(entry.for_each(**context) or ()) if entry.for_each is not None else [None]
        steps: list[Step] = []
        for item in items:
            steps.extend(_one(entry, {**context, "item": item} if entry.for_each is not None else context))
        return tuple(steps)
    except Exception as exc:  # noqa: BLE001 - a fix that cannot be built must not hide the verdict
        return (Note(f"(not available: {' '.join(str(exc).split())[:200]})"),)


def _one(entry: FixEntry, context: Mapping[str, Any]) -> tuple[Step, ...]:
    explain = entry.explain.render(context) if entry.explain is not None else ""
    if entry.text is not None:
        return tuple(Note(line.strip()) for line in entry.text.render(context).split("\n") if line.strip())
    if entry.steps is not None:
        return ((Note(explain),) if explain else ()) + flatten(entry.steps(**context))
    if entry.argv:
        argv = _args(entry.argv, context)
        pipe = tuple(_args(p, context) for p in entry.pipe)
        cwd = entry.cwd.render(context) if entry.cwd is not None else None
        return (Command(argv, explain, pipe, cwd),)
    if entry.service is not None:
        verb, manager, name = entry.service
        said = manager.render(context)
        if said not in {m.value for m in Manager}:
            raise ValueError(f"service manager {said!r} is neither systemd nor docker")
        return (Service(Manager(said), verb, name.render(context), explain),)
    if entry.edit:
        values = {key: value.render(context) for key, value in entry.edit.items()}
        if not values["path"]:
            return (Note(f"{explain}: the file is not known" if explain else "the file to edit is not known"),)
        old, new = values.get("old"), values.get("new")
        if old is not None and old == new:  # nothing to replace: say where, not a no-op edit
            old = new = None
        return (EditFile(values["path"], to_int(values.get("line")), old, new, explain),)
    return (Note(explain),) if explain else ()


def _args(argv: tuple[Any, ...], context: Mapping[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for arg in argv:
        if isinstance(arg, Splice):
            value = arg.expression(**context)
            out.extend(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        else:
            out.append(arg.render(context))
    return tuple(out)
