"""One host cannot stall the run: capped lines, linear patterns, RE2 for the host's regexes, a time budget.

And one interpretation path: `fleet runbook test` sees what a live run sees (redaction included).
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from pathlib import Path

import pytest

from fleet.budget import OverBudget, time_budget
from fleet.diagnose import RunOptions, prepare, run
from fleet.interpret import interpret, sources_of
from fleet.limits import MAX_LINE_CHARS
from fleet.models import Connection, Host, ProbeOutput, Unusable
from fleet.probes import nginx as nginx_state
from fleet.runbook import Probe, Runbook, load_runbook, resolve_params
from fleet.runbook_cases import Case, run_case

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / "tests/fixtures/runbooks/command.yml"


def _bench():
    spec = importlib.util.spec_from_file_location("adversarial", ROOT / "bench/adversarial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


@pytest.mark.parametrize("parser", sorted(BENCH.SECTIONS))
def test_every_parser_takes_adversarial_input_in_bounded_time(parser):
    # The benchmark's inputs (1 MiB each: blanks after Authorization:, a 300 KB config line
    # without `;`, 30,000 nested locations, long words where key=value is read, ...) under
    # every section the parser reads. Before the fixes the worst took minutes; now each is
    # well under a second, far from the budget that would otherwise cut it.
    for name, build in BENCH.INPUTS.items():
        figures = BENCH.measure(parser, BENCH.payload(parser, build), budget_s=30)
        assert not figures["over_budget"], name
        assert sum(figures["cpu_s"].values()) < 1, (name, figures)  # CPU: the machine may be busy


def test_thirty_thousand_nested_locations_are_read_in_linear_time():
    config = ("== nginx-T ==\nhttp { server { listen 80;\n" + "location /a {\n" * 30_000
              + "proxy_pass http://127.0.0.1:1;\n" + "}\n" * 30_000 + "}}\n")
    started = time.process_time()
    facts = nginx_state.parse(ProbeOutput("nginx", 0, config, "", 0.1), {"login_path": "/a"})
    assert time.process_time() - started < 1.5  # 12 s when every statement searched the block stack
    assert facts.login_location is not None and facts.login_location.path == "/a"


def _nginx(locations: str) -> str:
    return f"== nginx-T ==\nhttp {{ server {{ listen 80;\n{locations}\nlocation / {{ proxy_pass http://127.0.0.1:1; }}\n}}}}\n"


def test_the_configs_own_regex_runs_on_re2_in_linear_time():
    # Python's re takes exponential time on this pattern and path; RE2 answers at once.
    config = _nginx("location ~ ^/(a+)+$ { proxy_pass http://127.0.0.1:2; }")
    started = time.monotonic()
    facts = nginx_state.parse(ProbeOutput("nginx", 0, config, "", 0.1), {"login_path": "/" + "a" * 5000 + "!"})
    assert time.monotonic() - started < 1
    assert [t.port for t in facts.backend] == [1]  # the regex did not match, the prefix did
    facts = nginx_state.parse(ProbeOutput("nginx", 0, config, "", 0.1), {"login_path": "/aaa"})
    assert [t.port for t in facts.backend] == [2]


def test_a_regex_re2_refuses_is_cannot_evaluate_not_a_guess():
    config = _nginx("location ~ ^/(api)/\\1 { proxy_pass http://127.0.0.1:2; }")
    facts = nginx_state.parse(ProbeOutput("nginx", 0, config, "", 0.1), {"login_path": "/api/api"})
    assert facts.backend == () and facts.login_location is None
    assert any(n.startswith("cannot evaluate location ~ ^/(api)/\\1") for n in facts.notes)


def test_lines_are_capped_before_any_pattern_and_the_host_is_told():
    book = Runbook("t", "", "<t>", (), (Probe("p", "text", "true"),), ())
    text = "Authorization:" + " " * 300_000 + "x\nshort\n"
    result = interpret(book, Host("h", ""), {"p": ProbeOutput("p", 0, text, "", 0.1)}, {})
    assert result.probes["p"].stdout.split("\n")[0] == ("Authorization:" + " " * 300_000)[:MAX_LINE_CHARS]
    assert f"1 output line(s) longer than {MAX_LINE_CHARS} characters were cut there" in result.notes


def test_the_budget_interrupts_a_backtracking_regex_on_the_main_thread():
    started = time.monotonic()
    with pytest.raises(OverBudget):
        with time_budget(0.3):
            re.match(r"(a+)+b", "a" * 40)  # years, uninterrupted
    assert time.monotonic() - started < 2


def test_the_budget_interrupts_python_work_on_another_thread():
    outcome = {}

    def work():
        started = time.monotonic()
        try:
            with time_budget(0.3):
                while True:
                    pass
        except OverBudget:
            outcome["after"] = time.monotonic() - started

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert 0.25 < outcome["after"] < 2


def test_overbudget_is_not_swallowed_by_a_parser_or_rules_except_exception():
    assert not issubclass(OverBudget, Exception)


def test_a_host_over_its_budget_is_inconclusive_and_the_others_go_on(tmp_path):
    # Real processes through the local connection: one host prints 1 MiB that takes longer
    # than a tiny budget to interpret; the other prints one line.
    book = load_runbook(str(COMMAND))
    # 1 MB of secrets to redact: about a second of CPU, linear but well past the budget.
    big = "yes 'pwd=hunter2' | head -c 1000000"
    hosts = [Host("big", "localhost", connection=Connection.LOCAL, vars={"cmd": big}),
             Host("small", "localhost", connection=Connection.LOCAL, vars={"cmd": "echo ok"})]
    options = RunOptions(timeout_s=30, interpret_budget_s=0.3)
    results = {r.host.name: r for r in run(prepare(hosts, book, options), book, options)}
    assert results["small"].diagnosis.verdict == "ran"
    slow = results["big"].diagnosis
    assert slow.verdict == "inconclusive"
    assert "longer than its 0.3 s budget" in slow.summary and "other hosts were not held up" in slow.summary
    # Whatever stage it stopped in, no unredacted secret reaches the result.
    assert "hunter2" not in results["big"].probes["run"].stdout


def test_runbook_test_redacts_like_a_live_run():
    # `fleet runbook test` once parsed captured outputs without redaction: a logged password
    # reached the offline facts, not the live ones.
    book = load_runbook(str(COMMAND))
    case = Case("leaky", "ran", {"run": ProbeOutput("run", 0, "login password=hunter2 ok\n", "", 0.1)})
    result = run_case(book, case)
    assert result.passed
    live = interpret(book, Host("leaky", ""), case.probes, {"cmd": "true"})
    assert live.facts["run"].text == "login password=[REDACTED] ok\n"
    assert result.diagnosis == live.diagnosis


def test_discovered_parameters_are_applied_inside_the_one_path():
    # The discovery probe's `param` lines set the open parameters before parsing, for a live run
    # and for `fleet runbook test` alike; a value the user gave is never replaced.
    book = load_runbook("502")
    probes = {"discover": ProbeOutput("discover", 0, "param port=9100\nparam service=shop\n", "", 0.1)}
    found = interpret(book, Host("h", ""), probes, resolve_params(book, {}, {}))
    assert found.params.values["port"] == 9100 and found.params.values["service"] == "shop"
    assert sources_of(found.params)["port"] == "discovered"
    given = interpret(book, Host("h", ""), probes, resolve_params(book, {"port": 8001}, {}))
    assert given.params.values["port"] == 8001 and sources_of(given.params)["port"] == "inventory"
    case = run_case(book, Case("h", None, probes))
    assert case.diagnosis == found.diagnosis


def test_an_unusable_runbook_parameter_is_the_inventory_s_problem_in_every_path():
    book = load_runbook("502")
    vault = Unusable("Ansible Vault ciphertext")
    result = interpret(book, Host("h", ""), {}, resolve_params(book, {"port": vault, "unrelated": vault}, {}))
    assert result.diagnosis.verdict == "inventory_error"
    assert result.diagnosis.summary == "parameter 'port' is Ansible Vault ciphertext"
    assert result.params.values["port"] == str(vault) and not result.facts


def test_a_rule_that_raises_is_noted_and_skipped(tmp_path):
    path = tmp_path / "raises.yml"
    path.write_text(COMMAND.read_text().replace("when: run.ok", "when: 1 // run.exit_code > 0", 1))
    book = load_runbook(str(path))
    result = interpret(book, Host("h", ""), {"run": ProbeOutput("run", 0, "one\n", "", 0.1)}, {})
    assert result.diagnosis.verdict == "inconclusive"
    assert any(n.startswith("rule ran (") and "raised" in n for n in result.notes)
