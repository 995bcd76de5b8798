"""A runbook's rules: parsing and checking each rule, and walking them to a host's verdict.

A rule is `when` (a Jinja expression over the probes' facts), a verdict and severity, and texts
(summary, evidence) and fix entries rendered only for the host it matched. Everything that can
be checked is checked at load time (broken expressions and templates, names no probe provides,
attributes the facts do not have). fleet/runbook.py loads the runbook and hands each rule here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping, Sequence

import jinja2
import jinja2.meta
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleet import fixes, fixspec
from fleet.errors import RunbookError
from fleet.fix import remedies as remedy_spec
from fleet.memo import RULE_TEXTS
from fleet.models import Diagnosis, ProbeOutput, Severity
from fleet.probes.derived import DERIVED, derived_facts
from fleet.rule_fields import unknown_attributes
from fleet.yamlfile import LineDict

if TYPE_CHECKING:
    from fleet.runbook import Runbook

INCONCLUSIVE = "inconclusive"
#: Names every rule sees besides the probes' facts; no probe may take one of them.
CONTEXT_NAMES = frozenset({"params", "host", "probes", "sources"})
#: A rule's keys, and those it must have.
RULE_KEYS = frozenset({"verdict", "severity", "when", "summary", "evidence", "fix", "remedies"})
REQUIRED_KEYS = frozenset({"verdict", "when", "summary"})
# Worst first: the verdict a host with several runbooks is listed under.
_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.OK: 3}


class _RuleEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox rules run in, with a fast path for the public attributes of frozen dataclasses.

    The sandbox's general check of every attribute (isinstance against the mutable ABCs) was most
    of the CPU of evaluating rules. Facts are frozen dataclasses: their public fields, properties
    and methods cannot change them, and whatever they return is checked again by the sandbox
    when a rule touches its attributes.
    """

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        params = getattr(type(obj), "__dataclass_params__", None)
        if params is not None and params.frozen and not attr.startswith("_"):
            return True
        return super().is_safe_attribute(obj, attr, value)


_RULE_ENV = _RuleEnvironment(undefined=jinja2.StrictUndefined)


class LazyTemplate:
    """A rule text checked when the runbook loads, compiled when a host first matches its rule.

    A run renders the texts of the few rules that matched; compiling all of them (55 in the 502
    runbook) cost more CPU at start-up than evaluating every rule for 150 hosts.
    """

    __slots__ = ("source", "_template", "_names")

    def __init__(self, source: str):
        self.source = source
        self._template: jinja2.Template | None = None
        self._names: tuple[str, ...] = ()

    def render(self, context: Mapping[str, Any]) -> str:
        """The text for this context (compiling it the first time), rendered once per distinct
        value of the names it reads (fleet.memo: hosts with the same facts share the text)."""
        if self._template is None:
            self._names = tuple(sorted(jinja2.meta.find_undeclared_variables(_RULE_ENV.parse(self.source))))
            self._template = _RULE_ENV.from_string(self.source)
        template = self._template
        return RULE_TEXTS.render(self.source, self._names, context, lambda: template.render(context))


class LazyExpression:
    """A rule's expression (`when`, a fix entry's or a remedy's), parsed and checked when the
    runbook loads, compiled when first evaluated.

    Most are never evaluated in a run (a healthy fleet evaluates no fix or remedy expression),
    and compiling (Jinja2's code generation plus Python's compile) is most of their load time.
    The parse is compile_expression's own, so a syntax error is refused at load as before.
    """

    __slots__ = ("source", "_compiled")

    def __init__(self, source: str):
        parser = Parser(_RULE_ENV, source, state="variable")
        parser.parse_expression()
        if not parser.stream.eos:
            raise jinja2.TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
        self.source = source
        self._compiled: TemplateExpression | None = None

    def __call__(self, **context: Any) -> Any:
        if self._compiled is None:
            self._compiled = _RULE_ENV.compile_expression(self.source)
        return self._compiled(**context)


@dataclass(frozen=True)
class Rule:
    verdict: str
    severity: Severity
    when: str
    summary: str
    evidence: tuple[str, ...] = ()
    fix: tuple[fixspec.FixEntry, ...] = field(default=(), compare=False, repr=False)
    line: int = 0
    condition: LazyExpression | None = field(compare=False, repr=False, default=None)
    summary_template: LazyTemplate | None = field(compare=False, repr=False, default=None)
    evidence_templates: tuple[LazyTemplate, ...] = field(compare=False, repr=False, default=())
    # What `fleet fix` may run for this verdict (fleet/fix/remedies.py).
    remedies: tuple[remedy_spec.Remedy, ...] = field(compare=False, repr=False, default=())


def parse(node: LineDict, probe_parsers: Mapping[str, str], path: str) -> Rule:
    """One rule of a runbook (its keys already checked against RULE_KEYS), compiled and checked.

    `probe_parsers`: each probe's name and parser, what the rule's expressions may use.
    """
    verdict = node["verdict"]
    if not isinstance(verdict, str) or not re.match(r"^[a-z][a-z0-9_]*$", verdict):
        raise RunbookError(f"bad verdict code {verdict!r} (lower-case letters, digits, _)", path,
                           node.line_of("verdict"))
    try:
        severity = Severity(node.get("severity", "critical"))
    except ValueError:
        raise RunbookError(f"bad severity {node.get('severity')!r} (ok, warning, critical, unknown)", path,
                           node.line_of("severity")) from None
    when = str(node["when"])
    condition = _expression(when, probe_parsers, "when", path, node.line_of("when"))
    summary = str(node["summary"])
    evidence = node.get("evidence") or ()
    if isinstance(evidence, str):
        evidence = (evidence,)
    if not isinstance(evidence, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in evidence):
        raise RunbookError("evidence must be a text or a list of texts", path, node.line_of("evidence"))
    evidence = tuple(str(v) for v in evidence)
    return Rule(verdict, severity, when, summary, evidence,
                _parse_fix(node.get("fix"), probe_parsers, path, node.line_of("fix")), node.line, condition,
                _template(summary, probe_parsers, "summary", path, node.line_of("summary")),
                tuple(_template(text, probe_parsers, "evidence", path, node.line_of("evidence")) for text in evidence),
                _parse_remedies(node.get("remedies"), probe_parsers, path, node.line_of("remedies")))


def _expression(source: str, probe_parsers: Mapping[str, str], what: str, path: str, line: int,
                extra: frozenset = frozenset()) -> LazyExpression:
    """A rule's expression (`when`, a fix entry's condition), checked now, compiled on first use."""
    return _compile(lambda: LazyExpression(source), lambda: _RULE_ENV.parse("{{ " + source + " }}"),
                    probe_parsers, what, path, line, extra, ("expression", source))


def _template(source: str, probe_parsers: Mapping[str, str], what: str, path: str, line: int,
              extra: frozenset = frozenset()) -> LazyTemplate:
    """A rule's text (summary, evidence, a fix entry's text), checked now, compiled on first use."""
    if "{" not in source:  # plain text (`sudo`, `-n`): no Jinja2 construct, nothing to check
        return LazyTemplate(source)
    return _compile(lambda: LazyTemplate(source), lambda: _RULE_ENV.parse(source), probe_parsers, what, path, line,
                    extra, ("template", source))


def _parse_remedies(value: Any, probe_parsers: Mapping[str, str], path: str, line: int) -> tuple[remedy_spec.Remedy, ...]:
    """A rule's `remedies:`, their steps in the grammar of `fix:` (see fleet/fix/remedies.py)."""
    def expression(source: str, what: str, at: int) -> LazyExpression:
        return _expression(source, probe_parsers, what, path, at)

    return remedy_spec.parse(value, path, line, lambda steps, at: _parse_fix(steps, probe_parsers, path, at), expression)


def _parse_fix(value: Any, probe_parsers: Mapping[str, str], path: str, line: int) -> tuple[fixspec.FixEntry, ...]:
    """A rule's `fix:` entries, compiled (see fleet/fixspec.py)."""
    if value is None:
        return ()
    if isinstance(value, (str, LineDict)):
        value = [value]
    if not isinstance(value, list):
        raise RunbookError("fix must be a text or a list of fix entries", path, line)
    entries = []
    for node in value:
        at = getattr(node, "line", 0) or line

        def expression(source: str, what: str, extra: frozenset, at: int = at) -> LazyExpression:
            return _expression(source, probe_parsers, what, path, at, extra)

        def template(source: str, what: str, extra: frozenset, at: int = at) -> LazyTemplate:
            return _template(source, probe_parsers, what, path, at, extra)

        try:
            entries.append(fixspec.parse_entry(node, at, expression, template))
        except fixspec.FixSpecError as exc:
            raise RunbookError(str(exc), path, at) from None
    return tuple(entries)


# Sources already found sound against the same probes and names. A runbook repeats many texts
# (`{{ params.service }}` in 18 fix entries of the 502 runbook: 344 checks of 161 distinct
# sources), and the checks (a parse and two walks of the tree) were most of loading it.
_SOUND: dict[Hashable, None] = {}
_SOUND_MAX = 4096


def _compile(build: Callable[[], Any], ast: Callable[[], jinja2.nodes.Template], probe_parsers: Mapping[str, str],
             what: str, path: str, line: int, extra: frozenset, source: tuple[str, str]) -> Any:
    """Build a rule's expression or template, refusing syntax errors, names nothing provides and
    attributes the probe's facts do not have. `extra`: names a fix entry adds (`item`);
    `source`: its kind and text, what a repeat of an already checked one is known by."""
    key = (source, frozenset(probe_parsers.items()), extra)
    if key in _SOUND:
        return build()
    try:
        parsed, compiled = ast(), build()
    except jinja2.TemplateSyntaxError as exc:
        raise RunbookError(f"broken {what}: {exc.message}", path, line) from None
    derived = {name for name, d in DERIVED.items() if d.available(probe_parsers)}
    unknown = jinja2.meta.find_undeclared_variables(parsed) - set(probe_parsers) - CONTEXT_NAMES - extra - derived
    if unknown:
        raise RunbookError(f"{what} uses {', '.join(sorted(unknown))}, which is neither a probe nor "
                           f"params/host/probes", path, line)
    wrong = unknown_attributes(parsed, probe_parsers)
    if wrong:
        raise RunbookError(f"{what} uses {wrong[0]}", path, line)
    if len(_SOUND) >= _SOUND_MAX:
        _SOUND.clear()
    _SOUND[key] = None
    return compiled


def evaluate(runbook: Runbook, facts: Mapping[str, Any], probes: Mapping[str, ProbeOutput],
             params: Mapping[str, Any], host: Mapping[str, Any],
             sources: Mapping[str, str] | None = None,
             on_error: Callable[[Rule, Exception], None] | None = None) -> Diagnosis:
    """Walk the rules, first match wins. Rules naming absent facts do not match; none matching is inconclusive.

    Facts whose parser read nothing from an output in a format it does not know (`unread`) count
    as absent: no rule may conclude from them that, say, no process runs. `sources` says where
    each parameter came from (default, discovered, inventory, --var); a parameter missing from it
    counts as given.

    A rule that raises is skipped and handed to `on_error`. Only Exceptions are caught: a
    BaseException (SIGTERM, the time budget) ends the walk.
    """
    if runbook.parts:
        return _worst_of(runbook.parts, facts, probes, params, host, sources, on_error)
    usable = {name: value for name, value in facts.items() if not getattr(value, "unread", None)}
    # Facts several probes make together (fleet/probes/derived.py), computed once for all rules.
    derived = derived_facts(usable, {p.name: p.parser for p in runbook.probes})
    context = {**usable, **derived, "params": params, "host": host, "probes": probes,
               "sources": {name: (sources or {}).get(name, "given") for name in params}}
    for rule in runbook.rules:
        try:
            matched = bool(rule.condition(**context))
        except jinja2.UndefinedError:
            continue  # the rule needs facts this host could not give
        except Exception as exc:  # noqa: BLE001 - a rule tripping on odd facts must not cost the host its verdict
            if on_error is not None:
                on_error(rule, exc)
            continue
        if matched:
            summary = _render(rule.summary_template, context)
            evidence = (_render(t, context) for t in rule.evidence_templates)
            # A step two entries give (two log signatures asking for the same check) is kept once.
            steps = tuple(dict.fromkeys(step for entry in rule.fix for step in fixspec.build(entry, context)))
            return Diagnosis(rule.verdict, rule.severity, " ".join(summary).strip(),
                             tuple(line for block in evidence for line in block), fixes.render_all(steps), steps)
    missing = [f"{p.name}: {p.error or getattr(facts.get(p.name), 'unread', None) or 'no facts'}"
               for p in probes.values() if p.name not in usable]
    summary = "no rule of the runbook matched what was found"
    if missing:
        summary += f"; {len(missing)} probe(s) gave no facts"
    return Diagnosis(INCONCLUSIVE, Severity.UNKNOWN, summary, tuple(missing))


def _worst_of(books: Sequence[Runbook], facts: Mapping[str, Any], probes: Mapping[str, ProbeOutput],
              params: Mapping[str, Any], host: Mapping[str, Any], sources: Mapping[str, str] | None,
              on_error: Callable[[Rule, Exception], None] | None) -> Diagnosis:
    """Several runbooks run as one: each walks its rules on its own probes' facts, and the host's
    diagnosis is the worst of theirs, with every runbook's evidence and each problem's fix."""
    verdicts = []
    for book in books:
        own = {p.name for p in book.probes}
        verdicts.append((book.name, evaluate(book, {k: v for k, v in facts.items() if k in own},
                                             {k: v for k, v in probes.items() if k in own}, params, host, sources,
                                             on_error)))
    name, worst = min(verdicts, key=lambda nv: _RANK[nv[1].severity])
    problems = [(n, d) for n, d in verdicts if d.problem]
    others = [f"{n}: {d.verdict}" for n, d in problems if d is not worst]
    summary = worst.summary + (f" (also {', '.join(others)})" if others else "")
    return Diagnosis(worst.verdict, worst.severity, summary,
                     tuple(f"[{n}] {line}" for n, d in verdicts for line in d.evidence),
                     # a comment line names each runbook's part: the fix stays safe to paste whole
                     tuple(line for n, d in problems for line in (f"# [{n}]", *d.fix)),
                     tuple(step for _, d in problems for step in d.steps), tuple(verdicts))


def _render(template: LazyTemplate, context: Mapping[str, Any]) -> list[str]:
    try:
        text = template.render(context)
    except Exception as exc:  # noqa: BLE001 - evidence that cannot be shown must not hide the verdict
        return [f"(not available: {' '.join(str(exc).split())[:200]})"]
    return [line.rstrip() for line in text.split("\n") if line.strip()]
