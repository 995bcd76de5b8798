"""fleet.memo: identical outputs parsed once, identical rule texts rendered once, never the wrong ones.

Every memo answer is checked against a fresh parse or render of the same input: a memo keyed on
too little (the output but not the parameters, the value but not its type) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.budget import OverBudget, time_budget
from fleet.interpret import interpret
from fleet.memo import LRU, MAX_ENTRY_CHARS, MISSING, ParseMemo, TextMemo, output_digest, typed_key
from fleet.models import Host, ProbeOutput
from fleet.parsers import PARSERS
from fleet.runbook import load_runbook

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"
CASES = sorted(FIXTURES.glob("*/*.txt"))
RUNBOOK = Path(__file__).parent.parent / "fleet" / "runbooks" / "502.yml"

# Parameters the parsers read, each with two values that change facts for some fixture.
VARIANTS = [
    {"port": 8000, "process_pattern": "python main.py", "service": "app", "login_path": "/api/v1/demo-login",
     "proxy_url": "http://localhost", "nginx_log_minutes": 15, "since": 0, "ignore_fstypes": "tmpfs"},
    {"port": 8001, "process_pattern": "nginx", "service": "nginx", "login_path": "/",
     "proxy_url": "http://localhost:8080", "nginx_log_minutes": 1, "since": 1, "ignore_fstypes": ""},
    {},
]


def _output(path: Path) -> ProbeOutput:
    base = path.with_suffix("")
    stderr = base.with_suffix(".stderr")
    code = base.with_suffix(".exit")
    return ProbeOutput(path.stem, int(code.read_text()) if code.exists() else 0, path.read_text(),
                       stderr.read_text() if stderr.exists() else "", 0.1)


def _params(path: Path) -> dict:
    extra = path.with_suffix("").with_suffix(".params.json")
    return json.loads(extra.read_text()) if extra.exists() else {}


def _memo_parse(memo: ParseMemo, parser: str, output: ProbeOutput, params: dict):
    facts, new = memo.parse(parser, PARSERS[parser], output, params)
    memo.store([new] if new else [])
    return facts, new is None


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_memo_gives_what_a_fresh_parse_gives_for_every_fixture_and_parameters(path: Path) -> None:
    memo, parser, output = ParseMemo(), path.parent.name, _output(path)
    for _ in range(3):  # stored on the second round (seen before), answered from the memo on the third
        for variant in VARIANTS:
            params = {**variant, **_params(path)}
            facts, _ = _memo_parse(memo, parser, output, params)
            assert facts == PARSERS[parser](output, params)
            # Shared between hosts, so it must be frozen (its fields are never assigned).
            assert type(facts).__dataclass_params__.frozen


def test_a_hit_returns_the_same_facts_object_and_other_parameters_miss() -> None:
    path = FIXTURES / "processes" / "busybox_ps.txt"
    memo, output = ParseMemo(), _output(path)
    _memo_parse(memo, "processes", output, {"process_pattern": "python main.py"})  # seen once: not held
    first, hit = _memo_parse(memo, "processes", output, {"process_pattern": "python main.py"})
    again, hit_again = _memo_parse(memo, "processes", output, {"process_pattern": "python main.py", "unrelated": 9})
    other, hit_other = _memo_parse(memo, "processes", output, {"process_pattern": "nginx"})
    assert (hit, hit_again, hit_other) == (False, True, False)
    assert again is first  # a parameter the parser never reads does not split the key
    assert other != first and other == PARSERS["processes"](output, {"process_pattern": "nginx"})


def test_an_output_seen_once_is_not_held() -> None:
    """Each host's own `ps` never comes back: holding its facts would only cost memory."""
    memo = ParseMemo()
    one = _output(FIXTURES / "processes" / "busybox_ps.txt")
    for i in range(50):
        unique = ProbeOutput(one.name, 0, one.stdout + f"{90000 + i} root python main.py\n", "", 0.1)
        _, hit = _memo_parse(memo, "processes", unique, {"process_pattern": "python main.py"})
        assert not hit
    assert len(memo.lru) == 0
    _memo_parse(memo, "processes", one, {"process_pattern": "python main.py"})
    _memo_parse(memo, "processes", one, {"process_pattern": "python main.py"})
    assert len(memo.lru) == 1  # the output that came twice


def test_a_different_output_is_parsed_again() -> None:
    memo = ParseMemo()
    one = _output(FIXTURES / "processes" / "busybox_ps.txt")
    two = ProbeOutput(one.name, 0, one.stdout.replace("python", "pythoX"), "", 0.1)
    params = {"process_pattern": "python main.py"}
    _memo_parse(memo, "processes", one, params)
    first, _ = _memo_parse(memo, "processes", one, params)
    second, hit = _memo_parse(memo, "processes", two, params)
    assert not hit and second == PARSERS["processes"](two, params) and second != first
    # Timing is not content: the same output from a slower host is a hit.
    slower = ProbeOutput(one.name, 0, one.stdout, "", 7.5)
    assert output_digest(slower) == output_digest(one)
    assert _memo_parse(memo, "processes", slower, params) == (first, True)


def test_a_huge_output_is_parsed_each_time_and_never_held() -> None:
    memo = ParseMemo()
    big = ProbeOutput("run", 0, "x" * (MAX_ENTRY_CHARS + 1), "", 0.1)
    assert _memo_parse(memo, "text", big, {}) == (PARSERS["text"](big, {}), True)  # nothing to store
    assert len(memo.lru) == 0


def test_values_are_keyed_with_their_types() -> None:
    assert typed_key(1) != typed_key(True) != typed_key(1.0)
    assert typed_key(0.0) != typed_key(-0.0)
    assert typed_key("8000") != typed_key(8000)
    assert typed_key(None) != typed_key(MISSING)
    assert typed_key({"a": (1, [2])}) == typed_key({"a": (1, [2])})
    with pytest.raises(TypeError):
        typed_key(object())


def test_the_lru_is_bounded_by_entries_and_by_bytes() -> None:
    lru = LRU(max_entries=3, max_bytes=100)
    for i in range(5):
        lru.put(i, f"v{i}", 10)
    assert len(lru) == 3 and lru.get(0) is MISSING and lru.get(4) == "v4"
    lru.get(2)  # used: survives the next eviction
    lru.put("big", "x", 85)
    assert lru.get(2) == "v2" and lru.get(3) is MISSING and lru.bytes <= 100
    lru.put("huge", "x", 101)  # larger than the whole memo: not kept
    assert lru.get("huge") is MISSING


def test_rule_texts_are_rendered_once_per_distinct_input() -> None:
    memo, calls = TextMemo(), []

    def render(context):
        return memo.render("tpl", ("nginx", "params"), context,
                           lambda: calls.append(1) or f"{context['nginx']} {context['params']}")

    for host in "abc":  # rendered the first time and the second (when it is stored), then reused
        assert render({"nginx": 1, "params": {"port": 8000}, "host": host}) == "1 {'port': 8000}"
    assert render({"nginx": True, "params": {"port": 8000}}) == "True {'port': 8000}"
    assert render({"nginx": 1, "params": {"port": 8001}}) == "1 {'port': 8001}"
    assert len(calls) == 4 and len(memo.lru) == 1


def test_interpret_gives_each_host_its_own_facts_from_shared_output() -> None:
    """Two hosts with byte-identical output but another process pattern: each gets its own facts."""
    runbook = load_runbook(str(RUNBOOK))
    name = next(p.name for p in runbook.probes if p.parser == "processes")
    ps = _output(FIXTURES / "processes" / "busybox_ps.txt")
    raw = {name: ProbeOutput(name, 0, ps.stdout, "", 0.1)}
    host = Host(name="h", address="127.0.0.1")
    seen = []
    for pattern in ("python main.py", "nginx", "python main.py", "python main.py"):
        result = interpret(runbook, host, raw, {**runbook.defaults(), "process_pattern": pattern})
        assert result.facts[name] == PARSERS["processes"](result.probes[name], {"process_pattern": pattern})
        seen.append(result.facts[name])
    assert seen[0] != seen[1] and seen[3] is seen[2]  # the fourth host was a hit (stored by the third)


def test_a_parse_the_budget_stops_stores_nothing() -> None:
    memo = ParseMemo()
    output = ProbeOutput("slow", 0, "x\n" * 10, "", 0.1)

    def slow_parser(out, params):
        params.get("port")
        while True:
            pass

    new = []
    with pytest.raises(OverBudget):
        with time_budget(0.05):
            new.append(memo.parse("slow", slow_parser, output, {"port": 1}))
    memo.store([n for _, n in new if n])
    assert len(memo.lru) == 0


def test_a_text_that_never_repeats_stops_being_keyed_and_one_that_repeats_keeps_its_memo() -> None:
    memo, calls = TextMemo(), []

    def render(template: str, value: object) -> str:
        return memo.render(template, ("http",), {"http": value}, lambda: calls.append(template) or f"{template}={value}")

    # Every host's evidence differs (timings): after its probation it is rendered without a key.
    for i in range(TextMemo.PROBATION + 10):
        assert render("evidence", i) == f"evidence={i}"
    assert calls.count("evidence") == TextMemo.PROBATION + 10
    assert len(memo.lru) == 0  # never held: each came once (the doorkeeper), and none is keyed after the probation
    assert memo._tally["evidence"][0] == TextMemo.PROBATION  # looked up during the probation only
    # A summary shared by the fleet keeps being looked up, and rendered twice per distinct input
    # (seen, then stored), then taken from the memo.
    for i in range(TextMemo.PROBATION + 10):
        assert render("summary", i % 2) == f"summary={i % 2}"
    assert calls.count("summary") == 4 and len(memo.lru) == 2
