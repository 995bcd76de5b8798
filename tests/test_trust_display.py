"""What reaches a terminal or a chat (issue 12 §5): data is never markup, invisible characters show."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.conftest import needs_root

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ROOT / "tests/fixtures/runbooks/command.yml"
# The first output line becomes the verdict's summary, so host text reaches every view.
ECHO = COMMAND.read_text().replace('summary: "exit {{ run.exit_code }}"', 'summary: "{{ run.first_line }}"')


def fleet(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120,
                          stdin=subprocess.DEVNULL)


def inventory(path: Path, hosts: dict) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def test_inventory_text_is_never_rich_markup(tmp_path):
    inv = inventory(tmp_path / "inv.yml", {"web1": {"ansible_connection": "local",
                                                     "note": "[link=https://evil.example]click[/link] [bold]x"}})
    proc = fleet("hosts", "-i", str(inv), cwd=tmp_path, env={"FORCE_COLOR": "1", "COLUMNS": "300"})
    assert "\x1b]8;" not in proc.stdout  # no OSC 8 hyperlink
    assert "[link=https://evil.example]click[/link] [bold]x" in proc.stdout


def test_error_messages_lose_their_control_characters(tmp_path):
    proc = fleet("diagnose", "-i", str(tmp_path / "no\x1b[31mred\x07such.yml"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "noredsuch.yml: inventory file not found" in proc.stderr


def _run_hostile(tmp_path: Path, line: str) -> tuple[subprocess.CompletedProcess, Path]:
    book = tmp_path / "echo.yml"
    book.write_text(ECHO)
    inv = inventory(tmp_path / "inv.yml", {"evil": {"ansible_connection": "local", "cmd": f"printf '%s\\n' '{line}'; exit 1"}})
    out = tmp_path / "out"
    proc = fleet("diagnose", "-i", str(inv), "--runbook", str(book), "--out", str(out), "--format", "json,md,html,junit",
                 cwd=tmp_path, env={"COLUMNS": "300"})
    return proc, out


def test_bidi_overrides_and_zero_width_characters_show_in_terminal_markdown_and_html(tmp_path):
    # Displayed raw, U+202E reverses what follows: "sudo rm -rf /\u202e#\u200b" would hide its tail.
    proc, out = _run_hostile(tmp_path, "restart: systemctl restart app\u202e; rm -rf ~ #\u200b")
    assert proc.returncode == 1, proc.stderr
    markdown = next(out.glob("*.md")).read_text()
    html = next(out.glob("*.html")).read_text()
    # The summary (causes and fixes) is on stdout, warnings and progress on stderr.
    for view in (proc.stdout, proc.stderr, markdown, html):
        assert "\u202e" not in view and "\u200b" not in view
    assert "app<U+202E>; rm -rf ~ #<U+200B>" in proc.stdout
    assert "app\\<U+202E\\>; rm -rf \\~ \\#\\<U+200B\\>" in markdown  # in the cause and table
    # (Markdown no longer holds raw probe outputs: they are in the JSON and HTML reports.)
    assert "app&lt;U+202E&gt;; rm -rf ~ #&lt;U+200B&gt;" in html
    # the raw output the page shows from its data block
    assert "\\u003cU+202E>" in html
    # The JSON keeps the text as it came (it is data, not display).
    [report] = out.glob("*.json")
    assert "\u202e" in json.loads(report.read_text())["hosts"][0]["summary"]


def test_markdown_defuses_mentions_and_autolinks(tmp_path):
    proc, out = _run_hostile(tmp_path, "@channel @here see https://evil.example/login and www.evil.example")
    markdown = next(out.glob("*.md")).read_text()
    summary_lines, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")  # code blocks are inert already
        if not fenced and "evil.example" in line:
            summary_lines.append(line)
    # The cause, the host's row, and the host's parameters line (the inventory's `cmd` holds the text).
    cause, row, parameters = summary_lines
    for line in (cause, row):
        assert "`@channel`" in line and "`@here`" in line
        assert "`https://evil.example/login`" in line and "`www.evil.example`" in line
    for line in summary_lines:
        bare = re.sub(r"`[^`]*`", "", line)  # what is left outside code spans
        assert "@" not in bare and "https://" not in bare and "www." not in bare
    assert parameters.startswith("Parameters: cmd=")


def test_junit_stays_valid_xml_with_control_characters_in_runbook_and_verdict(tmp_path):
    book = tmp_path / "ctl.yml"
    book.write_text(ECHO.replace("name: command", 'name: "bad\\x01\\x1bname"'))
    inv = inventory(tmp_path / "inv.yml", {"h": {"ansible_connection": "local", "cmd": "printf 'a\\001b\\n'; exit 1"}})
    out = tmp_path / "out"
    proc = fleet("diagnose", "-i", str(inv), "--runbook", str(book), "--out", str(out), "--format", "junit",
                 cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    [junit] = out.glob("*.junit.xml")
    suite = ET.fromstring(junit.read_text())
    assert suite.get("name") == "fleet badname"


@needs_root
def test_paramiko_never_writes_on_the_terminal_and_the_verdict_says_what_happened(tmp_path, silent_port):
    inv = inventory(tmp_path / "inv.yml", {"mute": {"ansible_host": "127.0.0.1", "ansible_port": silent_port,
                                                    "ansible_user": "root"}})
    out = tmp_path / "out"
    proc = fleet("diagnose", "-i", str(inv), "--connect-timeout", "1", "--known-hosts", "/dev/null",
                 "--ssh-config", "/dev/null", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr
    assert "Error reading SSH protocol banner" not in proc.stderr  # paramiko's own log record
    [report] = out.glob("*.json")
    [host] = json.loads(report.read_text())["hosts"]
    assert host["verdict"] == "unreachable"
    assert host["summary"] == f"127.0.0.1:{silent_port}: port {silent_port} accepts connections but sent no SSH " \
                              f"banner within 1 s"
