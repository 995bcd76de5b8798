"""`fleet diagnose` through the CLI against a real sshd on loopback: verdicts from the transport."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import needs_root

ROOT = Path(__file__).resolve().parent.parent
UPTIME = ROOT / "tests/fixtures/runbooks/uptime.yml"


def run_fleet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def write_inventory(path: Path, hosts: dict) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def only_report(out: Path) -> dict:
    [report] = out.glob("*.json")
    return json.loads(report.read_text())


@needs_root
def test_transport_verdicts(sshd, silent_port, tmp_path):
    known = tmp_path / "known_hosts"
    wrong_key = sshd.other_key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n"
                     f"[127.0.0.2]:{sshd.port} {wrong_key[0]} {wrong_key[1]}\n")
    key = str(sshd.user_key)
    inventory = write_inventory(tmp_path / "inv.yml", {
        "good": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
                 "ansible_ssh_private_key_file": key},
        "changed": {"ansible_host": "127.0.0.2", "ansible_port": sshd.port, "ansible_user": "root",
                    "ansible_ssh_private_key_file": key},
        "unknown": {"ansible_host": "127.0.0.3", "ansible_port": sshd.port, "ansible_user": "root",
                    "ansible_ssh_private_key_file": key},
        "badkey": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
                   "ansible_ssh_private_key_file": str(sshd.other_key)},
        "closed": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "root",
                   "ansible_ssh_private_key_file": key},
        "silent": {"ansible_host": "127.0.0.1", "ansible_port": silent_port, "ansible_user": "root",
                   "ansible_ssh_private_key_file": key},
    })
    out = tmp_path / "reports"
    started = time.monotonic()
    proc = run_fleet("diagnose", "-i", str(inventory), "--runbook", str(UPTIME), "--known-hosts", str(known),
                     "--ssh-config", "/dev/null", "--connect-timeout", "2", "--timeout", "5", "--out", str(out),
                     cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    hosts = {h["name"]: h for h in only_report(out)["hosts"]}
    assert hosts["good"]["verdict"] == "linux"
    assert hosts["good"]["summary"] == "good runs Linux"
    assert hosts["good"]["probes"]["kernel"]["stdout"] == "Linux\n"
    assert hosts["changed"]["verdict"] == "host_key_rejected"
    assert "CHANGED" in hosts["changed"]["summary"]
    assert hosts["changed"]["probes"] == {}
    assert hosts["unknown"]["verdict"] == "host_key_rejected"
    assert "unknown" in hosts["unknown"]["summary"]
    assert hosts["badkey"]["verdict"] == "auth_failed"
    assert hosts["closed"]["verdict"] == "unreachable"
    assert "refused" in hosts["closed"]["summary"]
    assert hosts["silent"]["verdict"] in ("unreachable", "timeout")
    assert hosts["silent"]["duration_s"] < 2 + 1.5
    # Six hosts in parallel: the silent one is bounded by the connect timeout, not by paramiko's defaults.
    assert elapsed < 20


@needs_root
def test_accept_new_records_unknown_key_and_injection_is_inert(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    marker = tmp_path / "pwned"
    inventory = write_inventory(tmp_path / "inv.yml", {
        "fresh": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
                  "ansible_ssh_private_key_file": str(sshd.user_key),
                  "marker_file": f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"},
    })
    out = tmp_path / "reports"
    proc = run_fleet("diagnose", "-i", str(inventory), "--runbook", str(UPTIME), "--known-hosts", str(known),
                     "--ssh-config", "/dev/null", "--accept-new", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [host] = only_report(out)["hosts"]
    assert host["verdict"] == "linux"
    assert host["evidence"] == [f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"]
    assert not marker.exists()
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n"
    # The recorded key is now trusted: a second run without --accept-new succeeds.
    out2 = tmp_path / "again"
    proc = run_fleet("diagnose", "-i", str(inventory), "--runbook", str(UPTIME), "--known-hosts", str(known),
                     "--ssh-config", "/dev/null", "--out", str(out2), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@needs_root
def test_hashed_known_hosts_entries_are_honoured(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")  # OpenSSH's HashKnownHosts form
    inventory = write_inventory(tmp_path / "inv.yml", {"hashed": {
        "ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(sshd.user_key)}})
    proc = run_fleet("diagnose", "-i", str(inventory), "--runbook", str(UPTIME), "--known-hosts", str(known),
                     "--ssh-config", "/dev/null", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert only_report(tmp_path / "r")["hosts"][0]["verdict"] == "linux"
