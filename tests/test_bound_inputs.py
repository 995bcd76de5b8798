"""A built-in probe's parser reads its own inputs, whatever the runbook calls the parameters bound to them.

The built-in runbooks are rewritten with every parameter renamed (`port` -> `app_port`) and
every input of every probe bound to it by `with:`; on the same captured outputs, with values
the parsers' defaults do not hold, they must give the facts and verdicts of the originals.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.interpret import interpret, parse_facts
from fleet.memo import ParseMemo, RecordingParams
from fleet.models import Host, ProbeOutput
from fleet.parsers import PARSERS
from fleet.probes.catalog import BUILTIN
from fleet.runbook import Runbook, load_runbook
from fleet.runbook_cases import load_cases

RUNBOOKS = Path(__file__).parent.parent / "fleet" / "runbooks"
PARSER_FIXTURES = Path(__file__).parent / "fixtures" / "parsers"
CASES = Path(__file__).parent / "fixtures" / "runbook-cases"
# Values no parser has as its default: a parser reading the runbook's parameter names (absent
# from the renamed runbook) instead of its inputs would fall back to its default and differ.
ODD_VALUES = {"port": 9100, "process_pattern": "main.py", "login_path": "/health", "service": "backend",
              "proxy_url": "http://127.0.0.1", "nginx_log_minutes": 1, "since": 4102444800,
              "ignore_fstypes": "tmpfs"}


def _renamed(name: str, tmp_path: Path) -> tuple[Runbook, Runbook]:
    """The built-in runbook `name`, and a copy whose parameters are all renamed `app_<name>`."""
    source = RUNBOOKS / f"{name}.yml"
    data = yaml.safe_load(source.read_text())
    names = list(data["parameters"])
    data["parameters"] = {f"app_{n}": spec for n, spec in data["parameters"].items()}
    for probe in data["probes"]:
        spec = BUILTIN[probe["use"]]
        probe["with"] = {i.name: f"{{{{ app_{i.name} }}}}" for i in spec.inputs if i.name in names}
    reference = re.compile(r"\b(params|sources)\.(" + "|".join(map(re.escape, names)) + r")\b")

    def rename(node: Any) -> Any:
        if isinstance(node, str):
            return reference.sub(r"\1.app_\2", node)
        if isinstance(node, list):
            return [rename(v) for v in node]
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        return node

    data["rules"] = rename(data["rules"])
    path = tmp_path / f"{name}-renamed.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_runbook(str(source)), load_runbook(str(path))


def _values(runbook: Runbook) -> dict[str, Any]:
    """The runbook's parameters, with the odd values for those that have one."""
    return {p.name: ODD_VALUES.get(p.name, p.default) for p in runbook.parameters}


def _fixture_cases() -> list[Path]:
    return sorted(PARSER_FIXTURES.glob("*/*.txt"))


@pytest.mark.parametrize("runbook_name", ["502", "host"])
def test_renamed_parameters_give_the_same_facts_on_every_parser_fixture(runbook_name: str, tmp_path: Path) -> None:
    original, renamed = _renamed(runbook_name, tmp_path)
    params = _values(original)
    params_renamed = {f"app_{n}": v for n, v in params.items()}
    compared = 0
    for stdout in _fixture_cases():
        probe = next((p for p in original.probes if p.parser == stdout.parent.name), None)
        if probe is None:
            continue
        outputs = {probe.name: ProbeOutput(probe.name, 0, stdout.read_text(), "", None)}
        want, _ = parse_facts(original, outputs, params, [], ParseMemo())
        got, failed = parse_facts(renamed, outputs, params_renamed, [], ParseMemo())
        assert not failed
        assert got == want, stdout
        compared += 1
    assert compared >= 10


def test_the_parsers_see_the_values_bound_not_their_defaults(tmp_path: Path) -> None:
    """The values reach the parsers: the odd values change the facts of some fixtures."""
    original, renamed = _renamed("502", tmp_path)
    changed = set()
    for stdout in _fixture_cases():
        probe = next((p for p in renamed.probes if p.parser == stdout.parent.name), None)
        if probe is None:
            continue
        outputs = {probe.name: ProbeOutput(probe.name, 0, stdout.read_text(), "", None)}
        odd, _ = parse_facts(renamed, outputs, {f"app_{n}": v for n, v in _values(original).items()}, [], ParseMemo())
        plain, _ = parse_facts(renamed, outputs, {f"app_{p.name}": p.default for p in original.parameters}, [],
                               ParseMemo())
        if odd != plain:
            changed.add(probe.parser)
    assert {"processes", "service_state", "http_checks", "log_signatures", "nginx_state", "nginx_errors"} <= changed


@pytest.mark.parametrize("source", ["502", "502-testfleet.json"])
def test_renamed_parameters_give_the_same_verdicts_on_captured_cases(source: str, tmp_path: Path) -> None:
    original, renamed = _renamed("502", tmp_path)
    cases = load_cases(str(CASES / source))
    assert cases
    for values in ({}, ODD_VALUES):
        for case in cases:
            params = {**{p.name: p.default for p in original.parameters}, **case.params,
                      **{k: v for k, v in values.items() if k in original.parameter_names()}}
            want = interpret(original, Host(case.name, ""), case.probes, params)
            got = interpret(renamed, Host(case.name, ""), case.probes, {f"app_{k}": v for k, v in params.items()})
            assert got.facts == want.facts, case.name
            assert dataclasses.astuple(got.diagnosis) == dataclasses.astuple(want.diagnosis), case.name


def test_each_builtin_parser_reads_only_its_inputs() -> None:
    """No parser reaches for a runbook parameter its probe does not declare as an input."""
    params = {**{name: "x" for spec in BUILTIN.values() for name in spec.input_names()}, **ODD_VALUES,
              "unrelated": 1}
    for spec in BUILTIN.values():
        cases = sorted((PARSER_FIXTURES / spec.parser).glob("*.txt"))
        assert cases, spec.parser
        for stdout in cases:
            recorder = RecordingParams(params)
            PARSERS[spec.parser](ProbeOutput(spec.name, 0, stdout.read_text(), "", None), recorder)
            # `inputs or {}` asks whether there are any (recorded as "<nonempty>"), reading none.
            assert set(recorder.reads) - {"<nonempty>"} <= set(spec.input_names()), (spec.parser, stdout.name)
