"""Jinja templates in inventory variables, rendered as Ansible renders them, in a sandbox.

Ansible renders a variable when it is used, with every variable of the host in scope (already
merged by precedence) plus the magic ones: `inventory_hostname`, `inventory_hostname_short`,
`group_names`, `groups` and `hostvars`. A template that is one expression keeps the expression's
type (`"{{ 8000 + 1 }}"` is the number 8001) and anything else is text, as in ansible-core 2.19.
A value marked `!unsafe` is never rendered. Lookups and Ansible's own filters do not exist here: a template using one
fails, and with it only the hosts that need that variable.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Mapping

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from fleet.addresses import is_ip
from fleet.models import Unusable

TEMPLATE = re.compile(r"\{\{|\{%|\{#")
# The expression inside a template that is only '{{ ... }}' (the parser has checked it is one expression).
_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
# Bounds on what one template may build, so a hostile inventory cannot exhaust memory or CPU.
_MAX_POWER = 1000
_MAX_REPEAT = 100_000
_WIDE_FIELD = re.compile(r"[%:][^%:{}]*?[0-9]{6,}")


class UnsafeText(str):
    """A value written with Ansible's `!unsafe` tag: text, never a template."""


class TemplateFailed(Exception):
    """A template could not be rendered; the message says why, for that host's verdict."""


class _Environment(ImmutableSandboxedEnvironment):
    """A sandbox: no attribute escapes, no mutation, bounded repetition and powers."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_POWER:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > _MAX_REPEAT:
                    raise SecurityError("a repetition builds too large a value")
        if operator == "%" and isinstance(left, str):
            _check_widths(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_widths(value.__self__)
        return wrapped


def _check_widths(text: str) -> None:
    """Refuse a format ('%9999999d', '{:>9999999}') whose field width alone would exhaust memory."""
    if _WIDE_FIELD.search(text):
        raise SecurityError("a format field builds too large a value")


def _bounded(name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    def call(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > _MAX_REPEAT:
            raise SecurityError(f"{name}({width}) builds too large a value")
        return filter_(value, width, *args, **kwargs)
    return call


def _only_in_ansible(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise TemplateFailed(f"{name}() runs only inside Ansible, which fleet does not call")
    return call


_ENV = _Environment(undefined=jinja2.StrictUndefined)
_ENV.filters.update({name: _bounded(name, _ENV.filters[name]) for name in ("center", "indent")})
_ENV.globals.update({name: _only_in_ansible(name) for name in ("lookup", "query", "q")})


def _data(value: Any) -> Any:
    """A rendered value as plain data: an undefined name fails, anything exotic becomes its text."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (list, tuple)):
        return [_data(item) for item in value]
    if isinstance(value, dict):
        return {key: _data(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def is_template(value: Any) -> bool:
    """True if rendering could change `value`: a string with Jinja markers, or a list or mapping holding one."""
    if isinstance(value, UnsafeText):
        return False
    if isinstance(value, str):
        return TEMPLATE.search(value) is not None
    if isinstance(value, (list, tuple)):
        return any(is_template(item) for item in value)
    if isinstance(value, dict):
        return any(is_template(item) for item in value.values())
    return False


class HostVars(Mapping[str, Any]):
    """One host's variables as templates see them: rendered on first use, cycles and failures reported."""

    def __init__(self, name: str, raw: Mapping[str, Any], magic: Mapping[str, Any], renderer: "Renderer"):
        self.name = name
        self.raw = raw
        self.magic = magic
        self.renderer = renderer
        self.done: dict[str, Any] = {}
        self.busy: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self.magic:
            return self.magic[key]
        if key in self.done:
            return self.done[key]
        if key not in self.raw:
            if key in _ENV.globals:
                return _ENV.globals[key]
            raise KeyError(key)
        value = self.raw[key]
        if isinstance(value, Unusable):
            raise TemplateFailed(f"'{key}' is {value.reason}")
        if key in self.busy:
            raise TemplateFailed(f"'{key}' refers to itself (a template loop)")
        self.busy.add(key)
        try:
            rendered = self.render(value)
        finally:
            self.busy.discard(key)
        self.done[key] = rendered
        return rendered

    def __contains__(self, key: object) -> bool:
        return key in self.magic or key in self.raw or key in _ENV.globals

    def __iter__(self) -> Iterator[str]:
        return iter({**self.raw, **self.magic})

    def __len__(self) -> int:
        return len({**self.raw, **self.magic})

    def render(self, value: Any) -> Any:
        """`value` with every template in it rendered in this host's scope; raises TemplateFailed."""
        if isinstance(value, UnsafeText) or not is_template(value):
            return value
        if isinstance(value, (list, tuple)):
            return [self.render(item) for item in value]
        if isinstance(value, dict):
            return {key: self.render(item) for key, item in value.items()}
        try:
            return _data(self._evaluate(value))
        except TemplateFailed:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateFailed(f"template syntax error: {exc.message}") from None
        except (jinja2.TemplateError, SecurityError) as exc:
            raise TemplateFailed(str(exc.message if isinstance(exc, jinja2.TemplateError) else exc)) from None
        except RecursionError:
            raise TemplateFailed("templates nest too deeply") from None
        except Exception as exc:  # noqa: BLE001 - any error inside a template is that template's failure
            raise TemplateFailed(f"{type(exc).__name__}: {exc}") from None


    def _evaluate(self, text: str) -> Any:
        """A template that is one expression keeps the expression's value; any other renders to text."""
        template = _ENV.parse(text)
        body = template.body
        if len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1 \
                and not isinstance(body[0].nodes[0], nodes.TemplateData):
            expression = _ENV.compile_expression(_EXPRESSION.fullmatch(text).group(1), undefined_to_none=False)
            context = expression._template.new_context(self, shared=True)
            for _ in expression._template.root_render_func(context):
                pass
            return context.vars["result"]
        compiled = _ENV.from_string(template)
        return "".join(compiled.root_render_func(compiled.new_context(self, shared=True)))


class Renderer:
    """Renders the variables of every host of one inventory, sharing `groups` and `hostvars` between them."""

    def __init__(self, raw_vars: Mapping[str, Mapping[str, Any]], host_groups: Mapping[str, tuple[str, ...]],
                 groups: Mapping[str, tuple[str, ...]], extra: Mapping[str, Any]):
        group_map = {group: list(names) for group, names in groups.items()}
        self.hosts: dict[str, HostVars] = {}
        for name, raw in raw_vars.items():
            magic = {
                **extra,
                "inventory_hostname": name,
                "inventory_hostname_short": name if is_ip(name) else name.split(".")[0],
                "group_names": sorted(host_groups[name]),
                "groups": group_map,
                "hostvars": self.hosts,
            }
            self.hosts[name] = HostVars(name, raw, magic, self)

    def value(self, host: str, key: str) -> Any:
        """The rendered value of `key` for `host`; raises TemplateFailed saying why it cannot be had."""
        return self.hosts[host][key]


def shown(value: Any) -> Any:
    """A variable as `fleet hosts --json` shows it, in ansible-inventory's JSON: `!unsafe` text as
    {"__ansible_unsafe": text}, a value fleet cannot use as its reason."""
    if isinstance(value, UnsafeText):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, Unusable):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [shown(item) for item in value]
    if isinstance(value, dict):
        return {key: shown(item) for key, item in value.items()}
    return value
