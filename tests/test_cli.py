"""The command line: every command and option documented, config precedence, exit codes, formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest
import typer.main

from fleet.cli import app

ROOT = Path(__file__).resolve().parent.parent
UPTIME = ROOT / "tests/fixtures/runbooks/uptime.yml"
LOCAL = ROOT / "inventories/local.yml"


def commands(group: click.Group, prefix: str = "fleet"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


ALL = list(commands(typer.main.get_command(app)))


@pytest.mark.parametrize("name, command", ALL, ids=[n for n, _ in ALL])
def test_every_command_and_option_has_help(name, command):
    assert (command.help or "").strip(), name
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "install_completion", "show_completion"):
            assert (param.help or "").strip(), f"{name} {param.opts}"


@pytest.mark.parametrize("name", [n for n, c in ALL if not isinstance(c, click.Group)])
def test_every_command_is_in_the_readme(name):
    assert f"`{name}" in (ROOT / "README.md").read_text() or f"    {name}" in (ROOT / "README.md").read_text()


def fleet(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_version():
    proc = fleet("--version", cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.startswith("fleet ")


def test_config_precedence_is_cli_then_env_then_file(tmp_path):
    (tmp_path / "fleet.toml").write_text('[diagnose]\nforks = 7\ntimeout = 20\nformat = ["json"]\n')
    base = ("diagnose", "-i", str(LOCAL), "--runbook", str(UPTIME), "--json")
    from_file = json.loads(fleet(*base, cwd=tmp_path).stdout)["options"]
    assert (from_file["forks"], from_file["timeout_s"]) == (7, 20)
    assert sorted(p.name.split(".", 1)[1] for p in (tmp_path / "reports").iterdir()) == ["json", "jsonl"]
    from_env = json.loads(fleet(*base, cwd=tmp_path, env={"FLEET_FORKS": "9"}).stdout)["options"]
    assert (from_env["forks"], from_env["timeout_s"]) == (9, 20)
    from_cli = json.loads(fleet(*base, "--forks", "11", cwd=tmp_path, env={"FLEET_FORKS": "9"}).stdout)["options"]
    assert from_cli["forks"] == 11


def test_broken_config_file_is_one_line_naming_file_and_line(tmp_path):
    (tmp_path / "fleet.toml").write_text("[diagnose]\nforks = \n")
    proc = fleet("diagnose", "-i", str(LOCAL), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fleet: error: fleet.toml:2: invalid TOML")
    (tmp_path / "fleet.toml").write_text("[diagnose]\nfork = 3\n")
    assert "unknown key(s) in [diagnose]: fork" in fleet("diagnose", "-i", str(LOCAL), cwd=tmp_path).stderr


@pytest.mark.parametrize("args, message", [
    (("diagnose", "-i", "missing.yml"), "missing.yml: inventory file not found"),
    (("diagnose", "-i", str(LOCAL), "--runbook", "nope"), "unknown runbook 'nope'"),
    (("diagnose", "-i", str(LOCAL), "--limit", "nothing-like-this"), "no host matches 'nothing-like-this'"),
    (("diagnose", "-i", str(LOCAL), "--var", "novalue"), "--var takes KEY=VALUE"),
    (("diagnose", "-i", str(LOCAL), "--format", "pdf"), "--format takes"),
    (("diagnose", "-i", str(LOCAL), "--var", "port=eighty"), "must be a whole number"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = fleet(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_junit_has_one_testcase_per_host(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_connection: local}\n    b: {ansible_connection: local, "
                         "cmd: 'exit 3'}\n")
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", str(ROOT / "tests/fixtures/runbooks/command.yml"),
                 "--format", "junit", cwd=tmp_path)
    assert proc.returncode == 1
    [path] = (tmp_path / "reports").glob("*.junit.xml")
    suite = ET.parse(path).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    failure = suite.find("testcase[@name='b']/failure")
    assert failure is not None and failure.get("type") == "failed" and failure.get("message") == "exit 3"


def test_runbook_test_on_captured_outputs():
    cases = ROOT / "tests/fixtures/runbook-cases"
    for source in (cases / "502", cases / "502-testfleet.json"):
        proc = fleet("runbook", "test", "502", str(source), cwd=ROOT)
        assert proc.returncode == 0, proc.stdout
        assert ", 0 failed" in proc.stdout


def test_runbook_test_fails_when_a_verdict_changes(tmp_path):
    case = tmp_path / "cases" / "healthy"
    case.parent.mkdir()
    source = ROOT / "tests/fixtures/runbook-cases/502/healthy"
    case.mkdir()
    for f in source.iterdir():
        (case / f.name).write_bytes(f.read_bytes())
    (case / "expected").write_text("backend_hanging\n")
    proc = fleet("runbook", "test", "502", str(tmp_path / "cases"), cwd=ROOT)
    assert proc.returncode == 1
    assert "0 passed, 1 failed" in proc.stdout


def test_runbooks_lists_user_runbooks(tmp_path):
    (tmp_path / "mine.yml").write_text(UPTIME.read_text().replace("name: uptime", "name: mine"))
    proc = fleet("runbooks", cwd=ROOT, env={"FLEET_RUNBOOK_PATH": str(tmp_path), "COLUMNS": "200"})
    assert "502" in proc.stdout and "mine" in proc.stdout and "user" in proc.stdout
    shown = fleet("runbook", "show", "mine", cwd=ROOT, env={"FLEET_RUNBOOK_PATH": str(tmp_path), "COLUMNS": "200"})
    assert "kernel.first_line" in shown.stdout and "inconclusive" in shown.stdout


def test_hosts_masks_secrets(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  vars: {db_password: hunter2, api_token: t0k}\n  hosts:\n"
                         "    web1: {ansible_host: 192.0.2.10, ansible_user: deploy, port: 8000}\n")
    rows = json.loads(fleet("hosts", "-i", str(inventory), "--ssh-config", "/dev/null", "--json", cwd=tmp_path).stdout)
    assert rows[0]["address"] == "192.0.2.10" and rows[0]["user"] == "deploy" and rows[0]["port"] == 22
    assert rows[0]["vars"] == {"db_password": "****", "api_token": "****", "port": 8000}


def test_progress_on_a_terminal_and_quiet_off_it(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_connection: local, cmd: 'sleep 1'}\n")
    command = (f"{sys.executable} -m fleet diagnose -i {inventory} --runbook "
               f"{ROOT / 'tests/fixtures/runbooks/command.yml'} --out {tmp_path / 'r'}")
    log = tmp_path / "tty.log"
    subprocess.run(["script", "-qec", command, str(log)], capture_output=True, timeout=60, cwd=tmp_path)
    screen = log.read_text(errors="replace")
    frames = {line.split("hosts")[1].split("s")[0].strip() for line in screen.replace("\r", "\n").splitlines()
              if line.lstrip("\x1b[2K").startswith("0/1 hosts")}
    assert len(frames) >= 3  # the clock moves while the host runs
    assert "The host is healthy." in screen
    piped = fleet("diagnose", "-i", str(inventory), "--runbook", str(ROOT / "tests/fixtures/runbooks/command.yml"),
                  cwd=tmp_path)
    # Issue 16: the summary is the command's result, on stdout; progress (none off a terminal) on stderr.
    assert "0/1 hosts" not in piped.stderr + piped.stdout and "The host is healthy." in piped.stdout


def test_the_example_inventory_resolves(tmp_path):
    rows = json.loads(fleet("hosts", "-i", str(ROOT / "inventories/example.yml"), "--ssh-config", "/dev/null",
                            "--json", cwd=tmp_path).stdout)
    by_name = {r["name"]: r for r in rows}
    assert len(rows) == 12 + 1 + 3 + 1
    assert by_name["web07.example.com"]["jump"] == ["deploy@bastion.example.com:22"]
    assert by_name["web-canary.example.com"]["vars"]["port"] == 8001
    assert by_name["api-b.example.com"]["vars"]["ansible_become"] is True
    assert by_name["bastion.example.com"]["address"] == "203.0.113.10"
