"""Runbooks as data: loading and checking a runbook file, and rendering its probes (rules: fleet/rules.py).

The format is described in docs/runbook-format.md. Everything that can be checked is checked
at load time (unknown keys, unknown parsers, broken expressions and templates, names a rule
uses that no probe provides), so a broken runbook fails before any host is touched.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Mapping

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleet.errors import RunbookError
from fleet.hostregex import Unsupported, compile_linear
from fleet.params import HostValue, Resolved, resolve
from fleet.parsers import PARSERS
from fleet.probes.catalog import BUILTIN
from fleet.probes.comments import without_comments
from fleet.probes.spec import SHARED
from fleet.redact import holds_secret
from fleet.rules import CONTEXT_NAMES as _CONTEXT_NAMES, REQUIRED_KEYS, RULE_KEYS, Rule, parse as parse_rule
from fleet.script import ProbeCommand, SharedStep
from fleet.trustpath import others_can_write, warn_once
from fleet.yamlfile import LineDict, load_yaml

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DEFAULT_PROBE_TIMEOUT_S = 10.0


class _Hidden(str):
    """A parameter value that is, or holds, a secret. A command gets a reference to the environment
    variable that carries it, never the value: a command line is visible to every user of the host
    (`ps`), a process's environment only to its own user."""

    variable: str

    @classmethod
    def of(cls, name: str, value: Any) -> "_Hidden":
        hidden = cls(value)
        hidden.variable = f"FLEET_P_{name}"
        return hidden


def _shell_quote(value: Any) -> str:
    # A value the host discovers is a variable of the script, expanded in double quotes.
    if isinstance(value, HostValue):
        return value.shell()
    if isinstance(value, _Hidden):
        return f'"${value.variable}"'
    return shlex.quote(str(value))


# Every {{ value }} in a probe command is shell-quoted by the environment itself, so quoting
# never depends on a runbook author remembering to.
_COMMAND_ENV = ImmutableSandboxedEnvironment(finalize=_shell_quote, undefined=jinja2.StrictUndefined,
                                             keep_trailing_newline=True)




@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any
    description: str = ""


@dataclass(frozen=True)
class Binding:
    """What a built-in probe's input is set to: a runbook parameter (`{{ name }}`) or a literal."""

    param: str | None = None
    value: Any = None

    def value_in(self, params: Mapping[str, Any]) -> Any:
        """The input's value for a host with these parameters (None for a parameter it lacks)."""
        return params.get(self.param) if self.param is not None else self.value


@dataclass(frozen=True)
class Probe:
    """A probe of a runbook: a built-in one (`use:`, its shell in fleet/probes/, inputs bound
    to parameters) or the runbook's own (`command:`, a template, plus `parser:`)."""

    name: str
    parser: str
    # The shell as written: a built-in probe's `.sh`, or the runbook's command template.
    command: str
    description: str = ""
    timeout_s: float = _DEFAULT_PROBE_TIMEOUT_S
    # The runbook's own command, compiled; None for a built-in probe (no template in its shell).
    template: jinja2.Template | None = field(compare=False, repr=False, default=None)
    # Parameters this probe may discover on the host (`param NAME=VALUE` lines), for later probes.
    discovers: tuple[str, ...] = ()
    # A built-in probe's inputs, each bound to a parameter or a literal: set as shell variables
    # (but those in `parse_only`) and handed to its parser by name (`parser_inputs`).
    inputs: tuple[tuple[str, Binding], ...] = ()
    parse_only: frozenset[str] = frozenset()
    # Shared shell put before the probe's own when it runs, sent once per script (fleet/script.py).
    libraries: tuple[str, ...] = field(default=(), repr=False)
    # The runbook's `prelude:`, compiled: a runbook's own commands get it, rendered, as their library.
    prelude_template: jinja2.Template | None = field(compare=False, repr=False, default=None)
    # The output of an expensive command run once per script that this probe reads (on fd 6).
    reads: SharedStep | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Runbook:
    name: str
    description: str
    path: str
    parameters: tuple[Parameter, ...]
    probes: tuple[Probe, ...]
    rules: tuple[Rule, ...]
    redact: tuple[str, ...] = ()
    # Shell text put before each of the runbook's own probe commands (shared functions), rendered like a command.
    prelude: str = ""
    # Several runbooks run as one (fleet/runbook_set.py): each judges its own probes' facts.
    parts: tuple["Runbook", ...] = field(compare=False, repr=False, default=())

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def discoverable(self) -> frozenset[str]:
        """Parameters some probe discovers on the host when nobody gave them."""
        return frozenset(name for probe in self.probes for name in probe.discovers)

    def parameter_names(self) -> frozenset[str]:
        """The names the runbook declares as parameters (other inventory variables are not its business)."""
        return frozenset(p.name for p in self.parameters)


def builtin_runbooks() -> dict[str, str]:
    """Names of the runbooks shipped in the package, with their paths."""
    folder = resources.files("fleet") / "runbooks"
    return {os.path.splitext(f.name)[0]: str(f) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yml")}


def user_runbook_dirs() -> list[str]:
    """Where users keep runbooks: $FLEET_RUNBOOK_PATH (colon list), ./runbooks, ~/.config/fleet/runbooks."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    listed = [d for d in os.environ.get("FLEET_RUNBOOK_PATH", "").split(os.pathsep) if d]
    return [*listed, "runbooks", os.path.join(config, "fleet", "runbooks")]


def available_runbooks() -> dict[str, tuple[str, str]]:
    """Every runbook by name: (path, "built-in" or "user"). A user's cannot shadow a built-in's name."""
    found = {name: (path, "built-in") for name, path in builtin_runbooks().items()}
    for folder in user_runbook_dirs():
        if not os.path.isdir(folder):
            continue
        reason = others_can_write(folder, in_shared_dir_ok=False)
        if reason:
            # Another user could put a runbook (its probes run on every host) where this one looks.
            warn_once(f"ignoring runbooks in {folder}: {reason}")
            continue
        for entry in sorted(os.listdir(folder)):
            name, ext = os.path.splitext(entry)
            if ext in (".yml", ".yaml") and name not in found:
                found[name] = (os.path.join(folder, entry), "user")
    return found


def load_runbook(name_or_path: str) -> Runbook:
    """Load a runbook by name (built-in or user) or from a path; RunbookError if it is not sound."""
    known = available_runbooks()
    if name_or_path in known:
        path = known[name_or_path][0]
    elif os.path.sep in name_or_path or name_or_path.endswith((".yml", ".yaml")):
        path = name_or_path
    else:
        raise RunbookError(f"unknown runbook {name_or_path!r}; known: {', '.join(sorted(known))}, "
                           "or give a path to a .yml file")
    return _parse(load_yaml(path, RunbookError), path)


def _expect(node: Any, kind: type, what: str, path: str, line: int) -> Any:
    if not isinstance(node, kind):
        raise RunbookError(f"{what} must be a {kind.__name__ if kind is not LineDict else 'mapping'}", path, line)
    return node


def _keys(node: LineDict, allowed: set[str], required: set[str], what: str, path: str) -> None:
    for key in node:
        if key not in allowed:
            raise RunbookError(f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})",
                               path, node.line_of(key))
    for key in sorted(required - set(node)):
        raise RunbookError(f"{what} is missing {key!r}", path, node.line)


def _parse(doc: Any, path: str) -> Runbook:
    doc = _expect(doc, LineDict, "a runbook", path, 1)
    _keys(doc, {"name", "description", "parameters", "prelude", "probes", "rules", "redact"},
          {"name", "probes", "rules"}, "the runbook", path)
    params = _parse_parameters(doc.get("parameters") or LineDict(), path)
    prelude = str(doc.get("prelude") or "")
    try:
        prelude_template = _COMMAND_ENV.from_string(prelude) if prelude else None
    except jinja2.TemplateSyntaxError as exc:
        raise RunbookError(f"broken prelude template: {exc.message}", path,
                           doc.line_of("prelude") + (exc.lineno or 1)) from None
    probes = _parse_probes(_expect(doc["probes"], list, "probes", path, doc.line_of("probes")), path,
                           {p.name for p in params}, prelude_template)
    parsers = {p.name: p.parser for p in probes}
    rules = tuple(_parse_rule(node, parsers, path) for node in _expect(doc["rules"], list, "rules", path,
                                                                        doc.line_of("rules")))
    redact = doc.get("redact") or []
    if not isinstance(redact, list) or not all(isinstance(r, str) for r in redact):
        raise RunbookError("redact must be a list of regular expressions", path, doc.line_of("redact"))
    for pattern in redact:
        try:
            compile_linear(pattern)
        except Unsupported as exc:
            raise RunbookError(f"bad redact pattern: {exc}", path, doc.line_of("redact")) from None
    return Runbook(str(doc["name"]), str(doc.get("description", "")), path, params, probes, rules, tuple(redact),
                   prelude)


def _parse_parameters(node: Any, path: str) -> tuple[Parameter, ...]:
    node = _expect(node, LineDict, "parameters", path, getattr(node, "line", 1))
    params = []
    for name, spec in node.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise RunbookError(f"bad parameter name {name!r}", path, node.line_of(name))
        if isinstance(spec, LineDict):
            _keys(spec, {"default", "description"}, {"default"}, f"parameter {name!r}", path)
            params.append(Parameter(name, spec["default"], str(spec.get("description", ""))))
        else:
            params.append(Parameter(name, spec))
    return tuple(params)


def _parse_probes(nodes: list, path: str, param_names: set[str],
                  prelude: jinja2.Template | None) -> tuple[Probe, ...]:
    probes: list[Probe] = []
    for node in nodes:
        node = _expect(node, LineDict, "a probe", path, getattr(nodes, "line", 1))
        probe = _use_probe(node, path, param_names) if "use" in node else _own_probe(node, path, prelude)
        if probe.name in {p.name for p in probes}:
            raise RunbookError(f"duplicate probe name {probe.name!r}", path, node.line_of("use" if "use" in node else "name"))
        taken = {n for p in probes for n in p.discovers}
        if "use" in node:
            again = sorted(set(probe.discovers) & taken)
            if again:
                raise RunbookError(f"parameter {again[0]!r} is discovered by two probes", path, node.line_of("use"))
            probes.append(probe)
        else:
            probes.append(replace(probe, discovers=_discovers(node, param_names, taken, path)))
    return tuple(probes)


def _timeout(node: LineDict, default: float, path: str) -> float:
    timeout = node.get("timeout", default)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise RunbookError("timeout must be a positive number of seconds", path, node.line_of("timeout"))
    return float(timeout)


def _own_probe(node: LineDict, path: str, prelude: jinja2.Template | None) -> Probe:
    """A probe the runbook declares itself: `name`, `command` (a template) and `parser`."""
    _keys(node, {"name", "description", "parser", "timeout", "command", "discovers"},
          {"name", "parser", "command"}, "a probe", path)
    name = node["name"]
    if not isinstance(name, str) or not _NAME.match(name) or name in _CONTEXT_NAMES:
        raise RunbookError(f"bad probe name {name!r} (lower-case letters, digits, _; not params/host/probes/sources)",
                           path, node.line_of("name"))
    if not isinstance(node["parser"], str) or node["parser"] not in PARSERS:
        raise RunbookError(f"unknown parser {node['parser']!r} (known: {', '.join(sorted(PARSERS))})",
                           path, node.line_of("parser"))
    command = str(node["command"])
    try:
        template = _COMMAND_ENV.from_string(command)
    except jinja2.TemplateSyntaxError as exc:
        raise RunbookError(f"probe {name!r}: broken command template: {exc.message}", path,
                           node.line_of("command") + (exc.lineno or 1)) from None
    return Probe(name, node["parser"], command, str(node.get("description", "")),
                 _timeout(node, _DEFAULT_PROBE_TIMEOUT_S, path), template, prelude_template=prelude)


# `with:` binds an input to a parameter by naming it alone in a template: `port: "{{ port }}"`.
_PARAM_REF = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}$")


def _use_probe(node: LineDict, path: str, param_names: set[str]) -> Probe:
    """A built-in probe (`use: NAME`), its inputs bound by `with:` or to the parameters of their names."""
    _keys(node, {"use", "with", "timeout"}, {"use"}, "a probe", path)
    spec = BUILTIN.get(node["use"]) if isinstance(node["use"], str) else None
    if spec is None:
        raise RunbookError(f"unknown probe {node['use']!r} (built-in probes: {', '.join(BUILTIN)})",
                           path, node.line_of("use"))
    given = node.get("with") or LineDict()
    if not isinstance(given, dict):
        raise RunbookError("with must be a mapping of the probe's inputs", path, node.line_of("with"))
    inputs = spec.input_names()
    for key in given:
        if key not in inputs:
            raise RunbookError(f"probe {spec.name!r} has no input {key!r} (inputs: {', '.join(inputs) or 'none'})",
                               path, given.line_of(key) if isinstance(given, LineDict) else node.line_of("with"))
    bound = []
    parse_only = spec.parse_only_inputs()
    for name in inputs:
        at = given.line_of(name) if isinstance(given, LineDict) and name in given else node.line_of("use")
        if name not in given:
            if name in parse_only and name not in param_names:
                continue  # the parser's default
            if name not in param_names:
                raise RunbookError(f"probe {spec.name!r} needs input {name!r}: declare a parameter {name!r} or "
                                   f"bind it with `with: {{{name}: ...}}`", path, at)
            bound.append((name, Binding(param=name)))
            continue
        value = given[name]
        ref = _PARAM_REF.match(value) if isinstance(value, str) else None
        if ref:
            if ref.group(1) not in param_names:
                raise RunbookError(f"input {name!r} of probe {spec.name!r} names {ref.group(1)!r}, which is not "
                                   "a parameter", path, at)
            bound.append((name, Binding(param=ref.group(1))))
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and "{" + "{" not in str(value) \
                and "{%" not in str(value):
            bound.append((name, Binding(value=value)))
        else:
            raise RunbookError(f"input {name!r} of probe {spec.name!r}: give a parameter (\"{{{{ name }}}}\") or a "
                               "plain text or number", path, at)
    shared = SHARED[spec.reads] if spec.reads else None
    reads = SharedStep(shared.name, shared.function, shared.timeout_s,
                       tuple(map(without_comments, shared.library_texts()))) if shared else None
    return Probe(spec.name, spec.parser, spec.shell, spec.description, _timeout(node, spec.timeout_s, path),
                 discovers=tuple(n for n in spec.discovers if n in param_names), inputs=tuple(bound),
                 parse_only=parse_only, libraries=spec.library_texts(), reads=reads)


def _discovers(node: LineDict, param_names: set[str], taken: set[str], path: str) -> tuple[str, ...]:
    """A probe's `discovers`: parameters of the runbook, each discovered by one probe only."""
    value = node.get("discovers") or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RunbookError("discovers must be a list of parameter names", path, node.line_of("discovers"))
    for name in value:
        if name not in param_names:
            raise RunbookError(f"discovers names {name!r}, which is not a parameter", path, node.line_of("discovers"))
        if name in taken:
            raise RunbookError(f"parameter {name!r} is discovered by two probes", path, node.line_of("discovers"))
    return tuple(dict.fromkeys(value))


def _parse_rule(node: Any, probe_parsers: Mapping[str, str], path: str) -> Rule:
    node = _expect(node, LineDict, "a rule", path, 1)
    _keys(node, RULE_KEYS, REQUIRED_KEYS, "a rule", path)
    return parse_rule(node, probe_parsers, path)


def resolve_params(runbook: Runbook, host_vars: Mapping[str, Any], overrides: Mapping[str, str]) -> Resolved:
    """Parameters for one host with their sources; those nobody gave and a probe discovers stay open."""
    return resolve(runbook.defaults(), runbook.discoverable(), host_vars, overrides)


def host_params(runbook: Runbook, host_vars: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Parameters for one host: runbook defaults < inventory variables < --var.

    A value given as text for a numeric default is converted, so `--var port=8001` is a number.
    """
    return dict(resolve(runbook.defaults(), frozenset(), host_vars, overrides).values)


def render_probes(runbook: Runbook, params: Mapping[str, Any] | Resolved) -> list[ProbeCommand]:
    """The runbook's probes with this host's parameters filled in, shell-quoted: a built-in probe's
    inputs as shell variables set before its shell, a runbook's own command by its template.

    With `Resolved` parameters, the open ones are left to the host: the discovering probe
    exports them, later probes read them from the script's variables.

    A parameter that is or holds a secret (by its name, or a value such as a URL with
    `user:password@`) is not written into the command: the command reads it from an environment
    variable the script sets (`"$FLEET_P_<name>"`), so it never shows in a process's arguments.
    Only a plain `{{ name }}` keeps it hidden; a value computed from it is an ordinary string.
    """
    defaults = {n: str(params.values[n]) for n in params.open} if isinstance(params, Resolved) else {}
    if isinstance(params, Resolved):
        params = params.for_commands()
    rendered = []
    # A value the host discovers is already a script variable, never on a command line.
    hidden = {name: _Hidden.of(name, value) for name, value in params.items()
              if not isinstance(value, HostValue) and holds_secret(name, value)}
    env = tuple((value.variable, str(value)) for value in hidden.values())
    params = {**params, **hidden}
    try:
        for probe in runbook.probes:
            if probe.template is None:
                command, libraries = _with_inputs(probe, params), tuple(map(without_comments, probe.libraries))
            else:
                command = probe.template.render(params, params=params)
                libraries = (probe.prelude_template.render(params, params=params),) if probe.prelude_template else ()
            exports = tuple((n, defaults[n]) for n in probe.discovers if n in defaults)
            rendered.append(ProbeCommand(probe.name, command, probe.timeout_s, exports=exports, env=env,
                                         libraries=libraries, reads=probe.reads))
    except jinja2.UndefinedError as exc:
        raise RunbookError(f"a probe or the prelude uses an undefined parameter: {exc.message}",
                           runbook.path) from None
    return rendered


def parser_inputs(probe: Probe, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a probe's parser reads for a host with these parameters (discovered values applied):
    a built-in probe's parser, the values of its bound inputs by input name; a runbook's own
    command's parser, all the parameters."""
    if probe.template is not None:
        return params
    return {name: binding.value_in(params) for name, binding in probe.inputs}


def _with_inputs(probe: Probe, params: Mapping[str, Any]) -> str:
    """A built-in probe's shell after one line setting its inputs, each value shell-quoted here
    and only here (a list, such as `paths`, is one word of its items separated by blanks)."""
    words = []
    for name, binding in probe.inputs:
        if name in probe.parse_only:
            continue
        value = binding.value_in(params)
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        words.append(f"{name}={_shell_quote(value)};")
    shell = without_comments(probe.command)
    return f"{' '.join(words)}\n{shell}" if words else shell
