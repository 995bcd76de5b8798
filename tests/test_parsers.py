"""Parsers against real captured probe output, and against arbitrary text.

Each case under tests/fixtures/parsers/<parser>/ is `<case>.txt` (the probe's stdout as
captured), optional `<case>.stderr` / `<case>.exit` / `<case>.params.json` / `<case>.probe.json`
(the probe and the sha256 of its shell when captured), and `<case>.json` (the expected facts,
`dataclasses.asdict`). See tests/fixtures/parsers/README.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.models import ProbeOutput
from fleet.parsers import PARSERS
from fleet.probes.catalog import BUILTIN
from fleet.rules import INCONCLUSIVE, evaluate
from fleet.runbook import load_runbook

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"
RUNBOOK = Path(__file__).parent.parent / "fleet" / "runbooks" / "502.yml"
DEFAULTS = {name: spec["default"] for name, spec in yaml.safe_load(RUNBOOK.read_text())["parameters"].items()}
CASES = sorted(FIXTURES.glob("*/*.txt"))


def _optional(path: Path, default: str) -> str:
    return path.read_text() if path.exists() else default


@pytest.mark.parametrize("stdout_file", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_parser_matches_captured_fixture(stdout_file: Path) -> None:
    base = stdout_file.with_suffix("")
    output = ProbeOutput(
        name=stdout_file.stem,
        exit_code=int(_optional(base.with_suffix(".exit"), "0")),
        stdout=stdout_file.read_text(),
        stderr=_optional(base.with_suffix(".stderr"), ""),
        duration_s=None,
    )
    params = {**DEFAULTS, **json.loads(_optional(base.with_suffix(".params.json"), "{}"))}
    facts = PARSERS[stdout_file.parent.name](output, params)
    assert json.loads(json.dumps(dataclasses.asdict(facts))) == json.loads(base.with_suffix(".json").read_text())
    # A fixture captured from a built-in probe records its shell's digest: an edit of the shell
    # (which may change what it prints) fails here until the fixture is captured again.
    recorded = json.loads(_optional(base.with_suffix(".probe.json"), "null"))
    if recorded is not None:
        probe = BUILTIN[recorded["probe"]]
        assert probe.parser == stdout_file.parent.name
        assert probe.digest == recorded["sh_sha256"], (
            f"fleet/probes/{probe.name}.sh changed since {base.name} was captured: re-capture it with the "
            "capture tool (testfleet/capture.py: python -m testfleet realhost capture) and check the facts by hand")


# Real output in formats a parser does not read (`ps -eo pid,lstart,args`, `lsof`, `df -h`).
NOT_UNDERSTOOD = sorted(FIXTURES.glob("*/*_not_understood.txt"))
ITEMS = {"processes": "matching", "listeners": "listeners", "filesystems": "filesystems"}


@pytest.mark.parametrize("stdout_file", NOT_UNDERSTOOD, ids=[f"{p.parent.name}/{p.stem}" for p in NOT_UNDERSTOOD])
def test_a_format_not_understood_gives_a_note_and_no_facts(stdout_file: Path) -> None:
    parser = stdout_file.parent.name
    facts = PARSERS[parser](ProbeOutput(stdout_file.stem, 0, stdout_file.read_text(), "", None), DEFAULTS)
    assert getattr(facts, ITEMS[parser]) == ()
    assert any("not understood" in note for note in facts.notes), facts.notes


def test_facts_from_a_format_not_understood_are_no_facts_to_the_rules() -> None:
    # Read as an empty process list, a `ps -eo pid,comm,args` table would make the 502 runbook
    # say "backend_not_running"; its facts count as absent, so the host is inconclusive.
    def output(probe: str, parser: str, case: str) -> ProbeOutput:
        return ProbeOutput(probe, 0, (FIXTURES / parser / f"{case}.txt").read_text(), "", 0.1)

    probes = {"process": output("process", "processes", "procps_comm_not_understood"),
              "unit": output("unit", "service_state", "no_systemd_no_docker")}
    facts = {"process": PARSERS["processes"](probes["process"], DEFAULTS),
             "unit": PARSERS["service_state"](probes["unit"], DEFAULTS)}
    diagnosis = evaluate(load_runbook("502"), facts, probes, DEFAULTS, {"name": "h", "address": "10.0.0.1"})
    assert diagnosis.verdict == INCONCLUSIVE
    assert diagnosis.evidence == ("process: ps output format not understood (source=ps): PID COMMAND         COMMAND",)


_HOSTILE = {
    "nginx_state": "== nginx-T ==\nhttp {" + " " * 200_000 + "\n" + '"a\n' * 5_000 + "a ${" * 50_000,
    "filesystems": "== df source=gnu exit=0 ==\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
    + "a" + " " * 100_000 + "x\n" + "dev " + "1 " * 50_000 + "/\n",
    "listeners": "== listen source=ss ==\nNetid State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
    + "tcp LISTEN 0 5 " + ":" * 100_000 + " *:*\n",
    "processes": "== ps source=ps ==\nUID PID PPID C STIME TTY TIME CMD\n" + "0 " * 100_000 + "\n",
}


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_hostile_lines_are_parsed_in_bounded_time(name: str) -> None:
    # Each input takes minutes with a pattern that backtracks quadratically; a generous bound
    # keeps the test steady on a busy machine.
    started = time.monotonic()
    facts = PARSERS[name](ProbeOutput(name, 0, _HOSTILE[name], "", None), DEFAULTS)
    assert time.monotonic() - started < 5
    assert dataclasses.is_dataclass(facts)


def test_every_502_parser_has_fixtures() -> None:
    used = {probe.parser for probe in load_runbook("502").probes}
    fixture_dirs = {p.parent.name for p in CASES}
    assert used <= fixture_dirs <= set(PARSERS)


# Text that looks like probe output often enough to reach deep branches: our section headers,
# key=value attempt lines, tool output fragments, nginx syntax, tracebacks.
_FRAGMENTS = st.sampled_from(
    [
        "== ps source=ps-etimes ==", "== ps source=ps-user ==", "== cwd ==", "PID USER COMMAND",
        "== systemd ==", "== docker exit=1 ==", "== docker exit=0 ==", "LoadState=loaded", "ExecStart={ argv[]=x ;",
        "== listen source=netstat ==", "== listen source=ss ==", "== listen source=proc-tcp6 ==",
        "tcp6 0 0 :::8000 :::* LISTEN -", "LISTEN 0 5 [::1]:8000 [::]:* users:((\"p\",pid=1,fd=3))",
        "0: 0100007F:1F40 00000000:0000 0A", "== http client=curl ==", "== http client=wget ==",
        "target=127.0.0.1:8000 path=/health method=GET code=200 connect=0.1 total=0.2 exit=0",
        "target=proxy path=/ method=POST code=000 connected=1 exit=143 error=timed out",
        "== logs source=file ==", "Traceback (most recent call last):", '  File "/a/venv/lib/python3.11/site-packages/x.py"',
        "KeyError: 'X'", "ModuleNotFoundError: No module named 'x'", "Address already in use",
        "== nginx-ps ==", "1 nginx: master process nginx", "== nginx-t exit=1 priv=user ==",
        "[emerg] 1#1: bad in /etc/nginx/x:3", "== nginx-T ==", "== nginx-files ==", "# configuration file /x:",
        "upstream u { server 127.0.0.1:1; }", "server { listen 80; location / { proxy_pass http://u; } }",
        "location ~ ( {", "proxy_pass http://[::1", "}", "{", ";", "'", '"', "python main.py", "sh -c python main.py",
    ]
)
_TEXT = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=40)), max_size=40).map("\n".join)
_PARAMS = st.one_of(
    st.just(DEFAULTS),
    st.dictionaries(st.sampled_from(sorted(DEFAULTS)), st.one_of(st.none(), st.integers(), st.text(max_size=10))),
)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(stdout=_TEXT, stderr=st.text(max_size=50), exit_code=st.one_of(st.none(), st.integers(-1, 255)), params=_PARAMS)
def test_parser_never_raises(name: str, stdout: str, stderr: str, exit_code: int | None, params: dict) -> None:
    facts = PARSERS[name](ProbeOutput(name, exit_code, stdout, stderr, None), params)
    assert dataclasses.is_dataclass(facts)
    json.dumps(dataclasses.asdict(facts))
