"""The runbook engine: loading and checking runbooks, rendering probes shell-quoted, walking rules."""

from __future__ import annotations

import textwrap

import pytest

from fleet.errors import RunbookError
from fleet.models import ProbeOutput, Severity
from fleet.parsers.generic import parse_text
from fleet.rules import evaluate
from fleet.runbook import builtin_runbooks, host_params, load_runbook, render_probes

GOOD = """\
name: t
parameters:
  port: {default: 8000}
  path: /health
probes:
  - name: kernel
    parser: text
    command: curl http://127.0.0.1:{{ port }}{{ path }}
rules:
  - verdict: up
    severity: ok
    when: kernel.ok
    summary: "port {{ params.port }} answers"
    evidence: ["{{ kernel.first_line }}"]
    fix: []
"""


def write(tmp_path, text: str):
    path = tmp_path / "rb.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_every_builtin_runbook_loads():
    assert "502" in builtin_runbooks()
    for name in builtin_runbooks():
        assert load_runbook(name).rules


def test_values_are_shell_quoted_in_commands(tmp_path):
    runbook = load_runbook(write(tmp_path, GOOD))
    params = host_params(runbook, {"path": "/x; rm -rf / $(id)"}, {"port": "8001"})
    assert params["port"] == 8001
    [probe] = render_probes(runbook, params)
    assert probe.command == "curl http://127.0.0.1:8001'/x; rm -rf / $(id)'"


@pytest.mark.parametrize("change, message, line", [
    (("parser: text", "parser: nope"), "unknown parser 'nope'", 7),
    (("when: kernel.ok", "when: kernel.ok and ("), "broken when", 12),
    (("when: kernel.ok", "when: kernel.ok }} {{ kernel.ok"), "broken when: chunk after expression", 12),
    (("when: kernel.ok", "when: kernal.ok"), "uses kernal", 12),
    (("severity: ok", "severity: fine"), "bad severity", 11),
    (("    fix: []", "    fixes: []"), "unknown key 'fixes'", 15),
    (("command: curl", "command: curl {% if %}"), "broken command template", 8),
    (("name: kernel", "name: Kernel"), "bad probe name", 6),
])
def test_broken_runbooks_are_rejected_with_file_and_line(tmp_path, change, message, line):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(RunbookError) as err:
        load_runbook(path)
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}:")
    assert err.value.line == line or change[0].startswith("command")


def test_a_text_found_sound_once_is_checked_again_where_the_probes_differ(tmp_path):
    load_runbook(write(tmp_path, GOOD))  # "{{ kernel.first_line }}" is sound here...
    renamed = GOOD.replace("- name: kernel", "- name: kern").replace("when: kernel.ok", "when: kern.ok")
    with pytest.raises(RunbookError, match="evidence uses kernel"):  # ...not where no probe is `kernel`
        load_runbook(write(tmp_path, renamed))
    twice = GOOD.replace('evidence: ["{{ kernel.first_line }}"]', 'evidence: ["{{ kernel.first_line }}", "{{ kernel.nope }}"]')
    with pytest.raises(RunbookError, match="evidence uses kernel.nope"):
        load_runbook(write(tmp_path, twice))


def test_unknown_runbook_name_lists_builtins():
    with pytest.raises(RunbookError, match="unknown runbook .nope.; known: .*502"):
        load_runbook("nope")


def probe(name: str, stdout: str, exit_code: int | None = 0, error: str = "") -> ProbeOutput:
    return ProbeOutput(name, exit_code, stdout, "", 0.01, error=error)


def test_first_matching_rule_wins_and_templates_render(tmp_path):
    runbook = load_runbook(write(tmp_path, GOOD))
    out = probe("kernel", "HTTP/1.1 200 OK\n")
    params = runbook.defaults()
    diagnosis = evaluate(runbook, {"kernel": parse_text(out, params)}, {"kernel": out}, params,
                         {"name": "h", "address": "a"})
    assert (diagnosis.verdict, diagnosis.severity) == ("up", Severity.OK)
    assert diagnosis.summary == "port 8000 answers"
    assert diagnosis.evidence == ("HTTP/1.1 200 OK",)


def test_expressions_are_compiled_when_first_evaluated_and_agree_with_jinja(tmp_path):
    from fleet.rules import _RULE_ENV

    runbook = load_runbook(write(tmp_path, GOOD.replace("when: kernel.ok", "when: kernel.ok and params.port > 7999")))
    [rule] = runbook.rules
    assert rule.condition._compiled is None  # checked at load, not compiled
    out = probe("kernel", "HTTP/1.1 200 OK\n")
    facts = {"kernel": parse_text(out, runbook.defaults())}
    assert evaluate(runbook, facts, {"kernel": out}, runbook.defaults(), {"name": "h", "address": "a"}).verdict == "up"
    assert rule.condition._compiled is not None
    for params in ({"port": 8000}, {"port": 7000}):
        assert rule.condition(kernel=facts["kernel"], params=params) == \
            _RULE_ENV.compile_expression(rule.when)(kernel=facts["kernel"], params=params)


def test_absent_facts_never_read_as_false(tmp_path):
    runbook = load_runbook(write(tmp_path, GOOD.replace("when: kernel.ok", "when: not kernel.ok")))
    out = probe("kernel", "", None, "cut off by the deadline")
    diagnosis = evaluate(runbook, {}, {"kernel": out}, runbook.defaults(), {"name": "h", "address": "a"})
    assert diagnosis.verdict == "inconclusive"
    assert diagnosis.evidence == ("kernel: cut off by the deadline",)


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                     st.sampled_from(["text", "kernel.ok", "{{ x", "{% if %}", "critical", "p"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                       max_leaves=20)
_probe = st.fixed_dictionaries({"name": st.sampled_from(["p", "p", "p", "Bad", "params"]),
                                "parser": st.sampled_from(["text", "text", "nope"]),
                                "command": st.one_of(st.just("echo {{ p }}"), _scalars)},
                               optional={"timeout": _scalars, "extra": _scalars})
_rule = st.fixed_dictionaries({"verdict": st.sampled_from(["ok", "ok", "Bad!"]),
                               "when": st.one_of(st.just("p.ok"), _scalars), "summary": _scalars},
                              optional={"severity": _scalars, "evidence": _values, "fix": _values})
_runbook = st.fixed_dictionaries({"name": _scalars, "probes": st.lists(_probe, max_size=3),
                                  "rules": st.lists(_rule, max_size=3)},
                                 optional={"parameters": _values, "redact": _values, "description": _scalars})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(_runbook, _values))
def test_fuzzed_runbooks_load_or_fail_cleanly(tmp_path, doc):
    import yaml

    path = tmp_path / "fuzz.yml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_runbook(str(path))
    except RunbookError as err:
        assert str(err).startswith(str(path))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_fuzzed_runbook_text_fails_cleanly(tmp_path, text):
    path = tmp_path / "fuzz.yml"
    path.write_text(text)
    try:
        load_runbook(str(path))
    except RunbookError:
        pass


_paths = st.sampled_from([("name",), ("parameters",), ("parameters", "port"), ("parameters", "port", "default"),
                          ("probes",), ("probes", 0), ("probes", 0, "name"), ("probes", 0, "parser"),
                          ("probes", 0, "timeout"), ("probes", 0, "command"), ("rules",), ("rules", 0),
                          ("rules", 0, "when"), ("rules", 0, "severity"), ("rules", 0, "evidence"),
                          ("rules", 0, "fix"), ("rules", 0, "summary"), ("rules", 0, "verdict"), ("redact",)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=_paths, value=_values)
def test_a_good_runbook_with_one_field_broken_fails_cleanly(tmp_path, where, value):
    import yaml

    doc = yaml.safe_load(GOOD)
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path / "mutant.yml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_runbook(str(path))
    except RunbookError as err:
        assert str(err).startswith(str(path))
