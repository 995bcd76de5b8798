"""Bad input elsewhere (issue 12 §6): each is one clear line with exit 2, or a correct result; memory stays bounded."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from fleet.diagnose import RunOptions, prepare, run
from fleet.executor import Deadline
from fleet.limits import REPORT_OUTPUT_CHARS
from fleet.models import Connection, Host
from fleet.report import document
from fleet.runbook import load_runbook
from fleet.script import DEFAULT_PROBE_CAP
from fleet.transport import SSHOptions
from tests.conftest import needs_root
from tests.test_faults import known_hosts, ssh_host
from tests.test_report import sample_doc

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / "tests/fixtures/runbooks/command.yml"
# Nine levels of nine aliases: a few hundred bytes standing for 387 million values.
BOMB = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]'] + [
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]


def fleet(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("fleet: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr


def test_yaml_alias_bombs_are_refused_at_once(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  vars:\n" + "".join(f"    {line}\n" for line in BOMB)
                         + "  hosts:\n    h1:\n      ansible_connection: local\n")
    assert len(inventory.read_bytes()) < 700
    runbook = tmp_path / "bomb.yml"
    runbook.write_text(COMMAND.read_text().replace("description: Runs", "x:\n" + "".join(f"  {line}\n" for line in BOMB)
                                                   + "description: Runs"))
    for args in (("hosts", "-i", str(inventory)), ("runbook", "show", str(runbook)),
                 ("diagnose", "-i", str(inventory), "--out", str(tmp_path / "out"))):
        started = time.monotonic()
        proc = fleet(*args, cwd=tmp_path)
        one_line_exit_2(proc, "an alias bomb")
        assert time.monotonic() - started < 10  # it hung for ever


def test_ordinary_aliases_still_load(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  vars:\n    base: &base {port: 8001, user: app}\n  hosts:\n"
                         "    h1: {ansible_connection: local, <<: *base}\n    h2: {ansible_connection: local, <<: *base}\n")
    rows = json.loads(fleet("hosts", "-i", str(inventory), "--json", cwd=tmp_path).stdout)
    assert [r["vars"]["port"] for r in rows] == [8001, 8001]


def _local(name: str, cmd: str) -> Host:
    return Host(name, "localhost", connection=Connection.LOCAL, vars={"cmd": cmd})


def test_stderr_of_the_local_connection_is_capped(tmp_path):
    # 384 MiB on stderr once gave a 400 MB report and 2 GB of memory.
    book = load_runbook(str(COMMAND))
    options = RunOptions(timeout_s=60)
    started = time.monotonic()
    [result] = run(prepare([_local("flood", "yes eeeeeee | head -c 402653184 >&2; echo done")], book,
                           options), book, options)
    assert time.monotonic() - started < 30
    probe = result.probes["run"]
    # Capped on the host at a probe's cap (the flooding command dies of SIGPIPE there), kept in
    # the report at REPORT_OUTPUT_CHARS.
    assert probe.stderr.startswith("eeeeeee\n" * (REPORT_OUTPUT_CHARS // 8))
    assert f"({DEFAULT_PROBE_CAP - REPORT_OUTPUT_CHARS} more characters not kept" in probe.stderr
    assert probe.stdout == "done\n"


def test_local_transport_keeps_at_most_its_cap_whatever_the_script_writes():
    from fleet.transport.local import LocalTransport

    execution = LocalTransport(output_cap=1 << 20).execute(
        _local("raw", ""), b"head -c 50000000 /dev/zero >&2; echo after", Deadline(30))
    assert len(execution.stdout) + len(execution.stderr) == 1 << 20 and execution.truncated


@needs_root
def test_probe_stderr_is_capped_on_the_host_over_ssh(sshd, tmp_path):
    from fleet.models import TransportStatus

    book = load_runbook(str(COMMAND))
    host_vars = ssh_host(sshd, cmd="head -c 300000000 /dev/zero | tr '\\0' e >&2; echo done")
    host = Host("flood", "127.0.0.1", port=sshd.port, user="root", key_file=str(sshd.user_key),
                vars={"cmd": host_vars["cmd"]})
    options = RunOptions(timeout_s=60, ssh=SSHOptions(known_hosts=(str(known_hosts(sshd, tmp_path / "known")),),
                                                      ssh_config="/dev/null"))
    prepared = prepare([host], book, options)
    try:
        execution = prepared.transports[Connection.SSH].execute(host, prepared.scripts["flood"], Deadline(60))
    finally:
        prepared.transports[Connection.SSH].close()
    assert execution.status is TransportStatus.OK
    # One probe's cap (plus the marker lines) crossed the network, not the controller's 16 MiB.
    assert DEFAULT_PROBE_CAP < len(execution.stderr) < DEFAULT_PROBE_CAP + 1000


@pytest.mark.parametrize("value", ["nan", "inf"])  # (-inf fails click's own range check)
def test_timeouts_that_are_not_numbers_of_seconds(tmp_path, value):
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"h": {"ansible_connection": "local"}}}}))
    for option in ("--timeout", "--connect-timeout"):
        one_line_exit_2(fleet("diagnose", "-i", str(inventory), option, value, "--out", str(tmp_path / "o"),
                              cwd=tmp_path), option)


ODD = [None, 1, 1.5, "x", [], {}, True, [1], {"a": 1}, -1, float("nan"), "<script>"]


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


def test_report_on_odd_json_values_renders_or_is_one_line(tmp_path):
    # Every field of a real report set to every odd value: `fleet report` renders it or says, in
    # one line, what is wrong (it once raised TypeError, ValueError, AttributeError, UndefinedError).
    from fleet.errors import InputError
    from fleet.report.render import RENDERERS

    original = sample_doc()
    path = tmp_path / "odd.json"
    tried = 0
    for where in _paths(original):
        for value in ODD:
            doc = json.loads(json.dumps(original))
            target = doc
            for key in where[:-1]:
                target = target[key]
            target[where[-1]] = value
            path.write_text(json.dumps(doc))
            try:
                loaded = document.load(str(path))
            except InputError:
                continue
            for render in RENDERERS.values():
                render(loaded)
            tried += 1
    assert tried > 100  # many odd values are fine (any text, any parameters) and did render


def test_report_command_on_an_odd_value_is_one_line(tmp_path):
    doc = json.loads(json.dumps(sample_doc()))
    doc["hosts"][0]["probes"] = "not probes"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    one_line_exit_2(fleet("report", str(path), cwd=tmp_path), "hosts[0].probes must be object")


def test_memory_held_per_host_stays_bounded_when_hosts_send_a_lot(tmp_path):
    # Three probes of 1 MiB per host. The run holds each host's report entry to its end: that
    # used to be about 3.6 MB per host; now outputs and facts are kept to REPORT_OUTPUT_CHARS each.
    book_path = tmp_path / "three.yml"
    book_path.write_text(COMMAND.read_text().replace("probes:\n  - name: run", "probes:\n"
                                                     "  - name: one\n    parser: text\n    command: sh -c {{ cmd }}\n"
                                                     "  - name: two\n    parser: text\n    command: sh -c {{ cmd }}\n"
                                                     "  - name: run"))
    book = load_runbook(str(book_path))
    cmd = "yes 'a line of output that a host sends' | head -c 1048576"
    hosts = [_local(f"h{i}", cmd) for i in range(6)]
    options = RunOptions(timeout_s=60)
    prepared = prepare(hosts, book, options)
    gc.collect()
    tracemalloc.start()
    try:
        entries = [document.host_entry(result) for result in run(prepared, book, options)]
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(entries) == 6 and all(len(e["probes"]) == 3 for e in entries)
    per_host = held / len(entries)
    # 3 x 1 MiB arrived per host; kept: 3 x 64 KiB of output, 3 x 64 KiB of `text` fact, 3 x 1,000 lines.
    assert per_host < 1_000_000, per_host
