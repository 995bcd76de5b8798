"""The built-in 502 runbook against a fleet of real test hosts, one per scenario, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from tests.test_report import schema

testfleet = pytest.importorskip("testfleet")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
PREFIX = os.environ.get("FLEET_E2E_PREFIX", "flte")
SUBNET = os.environ.get("FLEET_E2E_SUBNET", "198.18.210.0/24")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleet502")
    try:
        with testfleet.TestFleet(workdir / "tf", scenarios="all", prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            yield tf
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))


def snapshot(fleet) -> dict[str, tuple]:
    """Every file of every test host's private tree, with size, mode and mtime.

    /var/log is left out: the services themselves log the requests the probes make. So is
    /run/sudo: `sudo -n` keeps its own timestamp records there even when it refuses.
    """
    files = {}
    for host in fleet.hosts.values():
        root = host.hostdir / "root"
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            if rel.parts[:2] not in (("var", "log"), ("run", "sudo")) and not path.is_symlink():
                info = path.lstat()
                # A directory's own mtime only says an entry came or went, and entries are compared.
                mtime = None if path.is_dir() else info.st_mtime_ns
                files[f"{host.name}/{rel}"] = (info.st_size if mtime else None, info.st_mode, mtime)
    return files


@pytest.fixture(scope="module")
def run(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    before = snapshot(fleet)
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(fleet.inventory_path), "--known-hosts",
         str(fleet.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--timeout", "30"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    return proc, json.loads(report.read_text()), out, before, snapshot(fleet)


def hosts(run) -> dict:
    return {h["name"]: h for h in run[1]["hosts"]}


def test_every_scenario_gets_its_verdict(fleet, run):
    proc, doc, *_ = run
    assert proc.returncode == 1, proc.stderr
    got = {name: h["verdict"] for name, h in hosts(run).items()}
    assert got == fleet.expected
    jsonschema.validate(doc, schema())


def evidence(run, name: str) -> str:
    return "\n".join(hosts(run)[name]["evidence"])


def test_backend_not_running_names_the_missing_module(run):
    assert "ModuleNotFoundError: No module named 'jwt'" in evidence(run, "backend_not_running")
    assert any("pip install -r requirements.txt" in f for f in hosts(run)["backend_not_running"]["fix"])


def test_upstream_mismatch_evidence_names_both_addresses_with_file_and_line(run):
    for name, wrong in (("nginx_upstream_mismatch", "127.0.0.1:8001"), ("nginx_upstream_wrong_ip", "198.18.9.9:8000")):
        host = hosts(run)[name]
        assert wrong in host["summary"] and "127.0.0.1:8000" in host["summary"]
        assert f"/etc/nginx/sites-enabled/backend:2: server {wrong};" in evidence(run, name)
        assert "code=502" in evidence(run, name)


def test_refusing_backend_is_seen_listening_on_ipv6_only(run):
    assert "::1:8000" in evidence(run, "backend_refusing")
    assert "exit=7" in evidence(run, "backend_refusing")  # connection refused on nginx's address


def test_hanging_backend_is_told_apart_from_refusing(run):
    assert "exit=28" in evidence(run, "backend_hanging")  # connected, then timed out


def test_invalid_config_names_file_and_line(run):
    assert "/etc/nginx/sites-enabled/backend:" in hosts(run)["nginx_config_invalid"]["summary"]


def test_degraded_hosts_still_get_the_right_verdict(run):
    assert "privilege: user" in hosts(run)["sudo_password"]["notes"]
    for name in ("no_netstat", "no_tools"):
        assert hosts(run)[name]["facts"]["listen"]["source"] == {"no_netstat": "ss", "no_tools": "proc"}[name]


def test_no_fix_suggests_forbidden_commands(run):
    fixes = "\n".join(f for h in hosts(run).values() for f in h["fix"])
    for forbidden in ("kill -9", "pkill", "killall", "drop_caches"):
        assert forbidden not in fixes


def test_healthy_hosts_get_no_fix(run):
    for name, host in hosts(run).items():
        if host["verdict"] == "healthy":
            assert host["fix"] == [], name


def test_limit_and_var_reach_the_runbook(fleet, tmp_path):
    out = tmp_path / "r"
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(fleet.inventory_path), "--known-hosts",
         str(fleet.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--limit", "healthy",
         "--var", "port=8001", "--json", "--format", "json"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    doc = json.loads(proc.stdout)
    [host] = doc["hosts"]
    assert host["name"] == "healthy"
    assert host["verdict"] != "healthy"  # nothing listens on 8001 there
    assert doc["parameters"]["port"] == 8001
    assert proc.returncode == 1


def test_diagnose_changes_nothing_on_the_hosts(run):
    *_, before, after = run
    assert len(before) > 100
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], changed


def become_run(fleet, tmp_path, password: str | None):
    import yaml

    doc = yaml.safe_load(fleet.inventory_path.read_text())
    inventory = tmp_path / "become.yml"
    host = {**_find_host(doc, "sudo_password"), "ansible_become": True}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"sudo_password": host}}}))
    args = []
    if password is not None:
        (tmp_path / "pw").write_text(password + "\n")
        args = ["--become-password-file", str(tmp_path / "pw")]
    out = tmp_path / "r"
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--known-hosts", str(fleet.known_hosts_path),
         "--ssh-config", "/dev/null", "--out", str(out), *args], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    everything = proc.stdout + proc.stderr + "".join(p.read_text() for p in out.iterdir())
    return json.loads(report.read_text())["hosts"][0], everything


def _find_host(group: dict, name: str) -> dict:
    for key, value in (group or {}).items():
        if key == "hosts" and name in (value or {}):
            return value[name] or {}
        if isinstance(value, dict):
            found = _find_host(value, name)
            if found is not None:
                return found
    return None


def test_become_with_the_right_password_runs_as_root(fleet, tmp_path):
    password = (fleet.workdir / "fleetops.password").read_text().strip()
    host, everything = become_run(fleet, tmp_path, password)
    assert host["verdict"] == "healthy"
    assert "privilege: root" in host["notes"]
    assert host["facts"]["listen"]["pids_visible"] is True  # no longer degraded
    assert password not in everything


def test_become_with_a_wrong_or_missing_password_is_auth_failed(fleet, tmp_path):
    (tmp_path / "wrong").mkdir()
    host, everything = become_run(fleet, tmp_path / "wrong", "not-the-password")
    assert host["verdict"] == "auth_failed"
    assert "sudo: incorrect password" in host["summary"]
    assert "not-the-password" not in everything
    (tmp_path / "none").mkdir()
    host, _ = become_run(fleet, tmp_path / "none", None)
    assert host["verdict"] == "auth_failed"
    assert "sudo needs a password" in host["summary"]


def test_ask_become_pass_prompts_once_on_the_terminal(fleet, tmp_path):
    import time

    import yaml

    doc = yaml.safe_load(fleet.inventory_path.read_text())
    host = {**_find_host(doc, "sudo_password"), "ansible_become": True}
    inventory = tmp_path / "become.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"sudo_password": host, "again": host}}}))
    out, log = tmp_path / "r", tmp_path / "tty.log"
    command = (f"{sys.executable} -m fleet diagnose -i {inventory} --known-hosts {fleet.known_hosts_path} "
               f"--ssh-config /dev/null --out {out} --ask-become-pass")
    proc = subprocess.Popen(["script", "-qefc", command, str(log)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while "BECOME password:" not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, "no become prompt"
        time.sleep(0.05)
    password = (fleet.workdir / "fleetops.password").read_text().strip()
    proc.stdin.write(password.encode() + b"\n")
    proc.stdin.flush()
    assert proc.wait(timeout=120) == 0, log.read_text(errors="replace")
    assert log.read_text(errors="replace").count("BECOME password:") == 1  # once, for both hosts
    [report] = out.glob("*.json")
    assert [h["verdict"] for h in json.loads(report.read_text())["hosts"]] == ["healthy", "healthy"]
    assert password not in log.read_text(errors="replace")  # never echoed
