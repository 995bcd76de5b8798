"""Issue 16 through the CLI: where output goes, how it looks off and on a terminal, journals and interrupts.

Terminal behaviour runs under a real pseudo-terminal (util-linux `script`); everything else as a
user would pipe it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from fleet.runbook import load_runbook
from tests.test_cli import fleet

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / "tests/fixtures/runbooks/command.yml"


def local_inventory(path: Path, hosts: dict[str, str]) -> Path:
    """Local-connection hosts, each running `cmd` as the command.yml runbook's probe."""
    path.write_text(yaml.safe_dump({"all": {"hosts": {name: {"ansible_connection": "local", "cmd": cmd}
                                                      for name, cmd in hosts.items()}}}))
    return path


def in_pty(command: str, cwd: Path, timeout: float = 60) -> str:
    """What a terminal shows for `command` (stdout and stderr both), run under a real pseudo-terminal."""
    log = cwd / "tty.log"
    subprocess.run(["script", "-qec", command, str(log)], capture_output=True, timeout=timeout, cwd=cwd,
                   env={**os.environ, "COLUMNS": "100", "LINES": "50"})
    return log.read_text(errors="replace")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG = "backend_not_running-" + "x" * 90  # longer than any terminal default: must never be cut


def test_summary_on_stdout_unwrapped_headline_last_and_retry_named(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", {f"{LONG}-01": "exit 3", f"{LONG}-02": "exit 3", "ok": "true"})
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--out", str(tmp_path / "r"),
                 cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ""  # nothing but progress (none off a terminal) and warnings goes there
    lines = proc.stdout.splitlines()
    # Not wrapped: each host name whole, both on the cause's line, however long.
    assert any(f"{LONG}-01, {LONG}-02" in line for line in lines), proc.stdout
    assert lines[-1] == "2 of 3 hosts have a problem (2 failed)."  # the headline is the last line
    [retry] = (tmp_path / "r").glob("*.retry")
    assert f"retry: {retry} (2 hosts; re-run them with --limit @{retry})" in lines
    assert retry.read_text().split() == [f"{LONG}-01", f"{LONG}-02"]
    assert sum(line.startswith("report: ") for line in lines) == 4  # json, md, html and the journal

    # --json keeps stdout pure JSON; the summary then goes to stderr.
    both = fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--out", str(tmp_path / "j"), "--json",
                 cwd=tmp_path)
    assert json.loads(both.stdout)["summary"]["problems"] == 2
    assert both.stderr.splitlines()[-1] == "2 of 3 hosts have a problem (2 failed)."


def test_terminal_shows_running_hosts_and_ends_with_the_headline(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", {"quick": "true", "slow-one": "sleep 2", "slow-two": "sleep 2"})
    screen = in_pty(f"{sys.executable} -m fleet diagnose -i {inventory} --runbook {COMMAND} --out {tmp_path / 'r'}",
                    tmp_path)
    frames = screen.replace("\r", "\n").splitlines()
    running = [f for f in frames if "running: " in f]
    assert running and any("slow-one" in f and "slow-two" in f for f in running), screen[-2000:]
    # The names come with how long each has been running.
    assert any("slow-one 1s" in f or "slow-one 2s" in f for f in running)
    shown = [t for t in (ANSI.sub("", f).strip() for f in frames) if t and not t.startswith("Script ")]
    assert shown[-1] == "All 3 hosts healthy."
    assert "\x1b[1;32mAll 3 hosts healthy." in screen  # in colour on a terminal


def test_new_host_keys_are_counted_with_their_file(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    hosts = {f"h{n}": {"ansible_host": f"127.0.0.{n}", "ansible_port": sshd.port, "ansible_user": "root",
                       "ansible_ssh_private_key_file": str(sshd.user_key), "cmd": "true"} for n in (1, 2)}
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--known-hosts", str(known),
                 "--ssh-config", "/dev/null", "--accept-new", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"2 new host keys recorded in {known}" in proc.stdout
    assert len(known.read_text().splitlines()) == 2


def test_report_of_a_finished_runs_journal_is_the_run(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", {"a": "sleep 0.3", "b": "exit 2"})
    out = tmp_path / "r"
    assert fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--limit", "a,b", "--out", str(out),
                 cwd=tmp_path).returncode == 1
    [original] = out.glob("*.json")
    [journal] = out.glob("*.jsonl")
    rebuilt_dir = tmp_path / "again"
    proc = fleet("report", str(journal), "--format", "json,md", "--out", str(rebuilt_dir), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("report: ")  # paths on stdout
    first, rebuilt = json.loads(original.read_text()), json.loads(next(rebuilt_dir.glob("*.json")).read_text())
    assert rebuilt["partial"] is False and rebuilt["not_diagnosed"] == []
    assert rebuilt["inventory"] == str(inventory) and rebuilt["limit"] == "a,b"
    assert rebuilt["duration_s"] == first["duration_s"] >= 0.3  # the run's wall time, not a sum of hosts
    assert rebuilt["runbook"] == first["runbook"] and rebuilt["options"] == first["options"]
    assert rebuilt["summary"]["headline"] == first["summary"]["headline"]
    assert "interrupted" not in next(rebuilt_dir.glob("*.md")).read_text().lower()


def test_ctrl_c_lists_and_counts_the_hosts_never_diagnosed(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", {"first": "exit 1", "second": "sleep 30", "third": "sleep 30"})
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                             str(COMMAND), "--forks", "1", "--format", "json,md,html,junit", "--out", str(out)],
                            cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not list(out.glob("*.jsonl")) or len(next(out.glob("*.jsonl")).read_text().splitlines()) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)  # the run line and the first host's line are in: "second" is running
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    headline = "Interrupted: 2 of 3 hosts never diagnosed. 1 of 1 host has a problem (1 failed)."
    assert stdout.splitlines()[-1] == headline
    [retry] = out.glob("*.retry")
    assert retry.read_text().split() == ["first", "second", "third"]  # the problem host, then the undiagnosed
    doc = json.loads(next(out.glob("*.json")).read_text())
    assert doc["partial"] and doc["not_diagnosed"] == ["second", "third"]
    assert doc["summary"]["headline"] == headline
    assert "second, third" in next(out.glob("*.md")).read_text()
    assert "never diagnosed (2): second, third" in next(out.glob("*.html")).read_text()
    suite = ET.parse(next(out.glob("*.junit.xml"))).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "2")
    assert [c.get("name") for c in suite.iter("testcase") if c.find("skipped") is not None] == ["second", "third"]
    # The journal alone (as after a SIGKILL) tells the same.
    rebuilt = fleet("report", str(next(out.glob("*.jsonl"))), "--format", "json", "--out", str(tmp_path / "j"),
                    cwd=tmp_path)
    assert rebuilt.returncode == 0
    assert json.loads(next((tmp_path / "j").glob("*.json")).read_text())["not_diagnosed"] == ["second", "third"]


def test_diff_refuses_reports_of_different_runbooks(tmp_path):
    inventory = local_inventory(tmp_path / "inv.yml", {"a": "true"})
    uptime = ROOT / "tests/fixtures/runbooks/uptime.yml"
    for runbook, out in ((COMMAND, "one"), (uptime, "two")):
        fleet("diagnose", "-i", str(inventory), "--runbook", str(runbook), "--out", str(tmp_path / out), cwd=tmp_path)
    [one], [two] = (tmp_path / "one").glob("*.json"), (tmp_path / "two").glob("*.json")
    proc = fleet("diff", str(one), str(two), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "different runbooks ('command' and 'uptime')" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    same = fleet("diff", str(one), str(one), cwd=tmp_path)
    assert same.returncode == 0 and "1 still healthy" in same.stdout


def test_help_lists_every_command_untruncated():
    proc = fleet("--help", cwd=ROOT, env={"COLUMNS": "80"})
    text = " ".join(proc.stdout.split())
    assert not [line for line in proc.stdout.splitlines()[1:] if line.rstrip().endswith("...")]
    assert ("Re-render a report from its JSON, or rebuild one from a run's .jsonl journal (finished or killed)."
            in text)
    assert "List the built-in runbooks and the user's ($FLEET_RUNBOOK_PATH, ./runbooks, ~/.config/fleet/runbooks)." \
        in text
    sub = " ".join(fleet("runbook", "--help", cwd=ROOT, env={"COLUMNS": "80"}).stdout.split())
    assert "Evaluate a runbook offline on captured probe outputs: no fleet needed." in sub


def test_runbook_show_prints_shell_as_written():
    proc = fleet("runbook", "show", "502", cwd=ROOT, env={"COLUMNS": "80"})
    assert proc.returncode == 0
    shown = proc.stdout.splitlines()
    # Every line of every command and of the shared shell is there whole, indented, on a line of its own.
    for text in [(ROOT / "fleet/probes/common.sh").read_text(), *(p.command for p in load_runbook("502").probes)]:
        for line in text.strip("\n").splitlines():
            assert f"    {line}" in shown, line
    assert "│" not in "\n".join(s for s in shown if "fleet_nginx_master()" in s)  # not in a folded table cell


def test_pyproject_names_a_free_distribution_and_keeps_the_command():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "fleet-diagnose"  # "fleet" on PyPI is an unrelated 2015 project
    assert project["scripts"] == {"fleet": "fleet.cli:main"}
    readme = (ROOT / "README.md").read_text()
    assert "pip install ." in readme and "fleet-diagnose" in readme
