"""`fleet hosts` on the inventories Ansible reads: warnings, dates, per-host problems, plugin configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "fixtures" / "inventories" / "plugin"


def fleet(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_dates_unknown_keys_and_unsupported_hosts_are_listed(tmp_path):
    inventory = write(tmp_path / "hosts.yml", """
        all:
          vars:
            since: 2024-01-02
          children:
            web:
              hosts:
                web1:
                  ansible_host: "{{ inventory_hostname }}.lan"
              host:
                web2:
            windows:
              hosts:
                win1: {ansible_connection: winrm}
    """)
    proc = fleet("hosts", "--json", "-i", str(inventory), "--ssh-config", "/dev/null", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["web1"]["vars"] == {"since": "2024-01-02"}
    assert (rows["web1"]["address"], rows["web1"]["problem"]) == ("web1.lan", None)
    assert rows["win1"]["connection"] == "winrm"
    assert rows["win1"]["problem"].startswith("unsupported_connection: ansible_connection is 'winrm'")
    assert proc.stderr == (f"fleet: warning: {inventory}:9: skipped unknown key 'host' in group 'web': only hosts, "
                           f"children and vars are read\n")
    table = fleet("hosts", "-i", str(inventory), "--ssh-config", "/dev/null", cwd=tmp_path)
    assert "not run: unsupported_connection" in table.stdout


def test_limit_that_excludes_an_unsupported_host_never_mentions_it(tmp_path):
    inventory = write(tmp_path / "hosts.ini", "[linux]\nweb1\n[windows]\nwin1 ansible_connection=winrm\n")
    proc = fleet("hosts", "--json", "-i", str(inventory), "--limit", "linux", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [row["name"] for row in json.loads(proc.stdout)] == ["web1"]
    assert "win1" not in proc.stdout + proc.stderr


def test_plugin_config_without_ansible_inventory_is_one_clear_line(tmp_path):
    proc = fleet("hosts", "-i", str(PLUGIN / "inventory.yml"), cwd=tmp_path, path="/nonexistent")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "Ansible inventory plugin 'ansible.builtin.generator'" in proc.stderr
    assert "ansible-inventory is not installed" in proc.stderr


def fake_ansible_inventory(tmp_path: Path, body: str) -> str:
    """A directory with an `ansible-inventory` that logs its argv and then runs `body` (Python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "ansible-inventory"
    program.write_text(f"#!{sys.executable}\nimport sys, time\n"
                       f"open({str(tmp_path / 'argv.json')!r}, 'w').write(__import__('json').dumps(sys.argv[1:]))\n"
                       f"{body}\n")
    program.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def test_plugin_config_is_resolved_by_ansible_inventory(tmp_path):
    # list.json is what ansible-core 2.19's ansible-inventory --list printed for this configuration.
    path = fake_ansible_inventory(tmp_path, f"sys.stdout.write(open({str(PLUGIN / 'list.json')!r}).read())")
    proc = fleet("hosts", "--json", "-i", str(PLUGIN / "inventory.yml"), "--limit", "prod", cwd=tmp_path, path=path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(row["name"] for row in json.loads(proc.stdout)) == ["db-prod", "web-prod"]
    assert json.loads((tmp_path / "argv.json").read_text()) == ["-i", str(PLUGIN / "inventory.yml"), "--list"]
    assert proc.stderr == f"fleet: {PLUGIN / 'inventory.yml'}: resolved with ansible-inventory --list\n"


def test_ansible_inventory_is_bounded_in_time(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_ansible_inventory(tmp_path, "time.sleep(30)"))
    started = time.monotonic()
    with pytest.raises(InventoryError, match="ansible-inventory: --list did not finish within 0.5 s"):
        load_inventory(PLUGIN / "inventory.yml", script_timeout_s=0.5)
    assert time.monotonic() - started < 5


def test_a_limit_that_selects_nothing_is_an_error_as_in_ansible(tmp_path):
    inventory = write(tmp_path / "hosts.ini", "[web]\nweb1\n")
    for pattern in ("nosuch", "web[5]"):
        proc = fleet("hosts", "-i", str(inventory), "--limit", pattern, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
