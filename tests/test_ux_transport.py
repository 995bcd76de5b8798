"""Issue 16: verdicts from the transport say what to do, and identical causes group, through the CLI
against real sshds on loopback. The fixes are not only read: the commands they give are run."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import sshd as sshd_mod
from tests.conftest import needs_root
from tests.test_cli import fleet

ROOT = Path(__file__).resolve().parent.parent
UPTIME = ROOT / "tests/fixtures/runbooks/uptime.yml"


def diagnose(tmp_path: Path, hosts: dict, known: Path, out: str, *extra: str) -> tuple[subprocess.CompletedProcess,
                                                                                         dict]:
    inventory = tmp_path / f"{out}.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", str(UPTIME), "--known-hosts", str(known),
                 "--ssh-config", "/dev/null", "--connect-timeout", "2", "--timeout", "5", "--out",
                 str(tmp_path / out), *extra, cwd=tmp_path)
    [report] = (tmp_path / out).glob("*.json")
    return proc, json.loads(report.read_text())


def host(address: str, port: int, key: Path) -> dict:
    return {"ansible_host": address, "ansible_port": port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key)}


def command_in(fix: list[str], starts: str) -> str:
    """The shell command a fix line gives, from its first word `starts` on."""
    line = next(f for f in fix if starts in f)
    return line[line.index(starts):]


@needs_root
def test_changed_key_names_file_and_line_and_its_ssh_keygen_command_works(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    wrong = sshd.other_key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n[127.0.0.2]:{sshd.port} {wrong[0]} {wrong[1]}\n")
    proc, doc = diagnose(tmp_path, {"changed": host("127.0.0.2", sshd.port, sshd.user_key)}, known, "r")
    [entry] = doc["hosts"]
    assert entry["verdict"] == "host_key_rejected"
    assert f"the key of 127.0.0.2 is recorded in {known} line 2" in entry["fix"]
    remove = command_in(entry["fix"], "ssh-keygen -R")
    assert remove == f"ssh-keygen -R '[127.0.0.2]:{sshd.port}' -f {known}"
    assert "do not connect" in entry["fix"][-1]
    assert remove in proc.stdout  # the terminal shows the fix too
    subprocess.run(shlex.split(remove), check=True, capture_output=True)
    assert known.read_text().splitlines()[0] == f"[127.0.0.1]:{sshd.port} {sshd.host_pub}"
    assert f"127.0.0.2" not in known.read_text()


@needs_root
def test_unknown_keys_are_one_cause_whose_keyscan_records_them(sshd, tmp_path):
    (tmp_path / "second").mkdir()
    other, proc2 = sshd_mod.start(tmp_path / "second")  # a second sshd: another host key, another port
    try:
        known = tmp_path / "known_hosts"
        known.write_text("")
        hosts = {"u1": host("127.0.0.2", sshd.port, sshd.user_key), "u2": host("127.0.0.3", sshd.port, sshd.user_key),
                 "u3": host("127.0.0.1", other.port, other.user_key)}
        proc, doc = diagnose(tmp_path, hosts, known, "r")
        [cause] = doc["summary"]["causes"]  # three hosts, two keys, three addresses: one cause
        assert (cause["verdict"], cause["count"], cause["hosts"]) == ("host_key_rejected", 3, ["u1", "u2", "u3"])
        assert [line for line in proc.stdout.splitlines() if line[:1].isdigit() and ". " in line[:4]] == \
            ["1. host_key_rejected, 3 hosts: u1, u2, u3"]
        for entry in doc["hosts"]:
            assert f"or let fleet record unknown keys (never changed ones) in {known}: add --accept-new" in entry["fix"]
            keyscan = command_in(entry["fix"], "ssh-keyscan")
            subprocess.run(["sh", "-c", keyscan], check=True, capture_output=True, timeout=30)
        proc, doc = diagnose(tmp_path, hosts, known, "again")
        assert proc.returncode == 0, proc.stdout  # the recorded keys are trusted now
        assert {h["verdict"] for h in doc["hosts"]} == {"linux"}
    finally:
        proc2.terminate()
        proc2.wait(timeout=10)


@needs_root
def test_auth_failed_names_user_and_keys_and_unreachable_says_why(sshd, silent_port, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n")
    hosts = {"badkey": host("127.0.0.1", sshd.port, sshd.other_key),
             "refused": host("127.0.0.1", 1, sshd.user_key),
             "silent": host("127.0.0.1", silent_port, sshd.user_key)}
    proc, doc = diagnose(tmp_path, hosts, known, "r")
    entries = {h["name"]: h for h in doc["hosts"]}
    badkey = entries["badkey"]
    assert badkey["verdict"] == "auth_failed"
    assert badkey["fix"][0] == f"logged in as user 'root' with {sshd.other_key}: none was accepted"
    assert f"~root/.ssh/authorized_keys on 127.0.0.1" in badkey["fix"][1]
    assert badkey["fix"][2] == f"check by hand: ssh -p {sshd.port} -o BatchMode=yes root@127.0.0.1 true"
    assert entries["refused"]["fix"][0].startswith("refusal: 127.0.0.1 answers but nothing accepts connections on "
                                                   "port 1")
    # The port accepts TCP and never sends a banner: silence, after the connection.
    assert entries["silent"]["fix"][0].startswith(f"silence: 127.0.0.1 port {silent_port} accepts connections but "
                                                  "the SSH handshake did not complete")
    for kind in ("refusal:", "silence:"):
        assert kind in proc.stdout


def test_a_name_that_does_not_resolve_is_told_as_dns(tmp_path):
    """In an empty network namespace (as tests/test_faults.py does): no DNS query can leave it."""
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"nodns": {"ansible_host": "no-such-host.invalid",
                                                                     "ansible_user": "root"}}}}))
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory),
                           "--runbook", str(UPTIME), "--known-hosts", "/dev/null", "--ssh-config", "/dev/null",
                           "--connect-timeout", "3", "--out", str(tmp_path / "r")], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    if proc.returncode != 1 and "unshare" in proc.stderr:
        pytest.skip(f"cannot unshare the network namespace: {proc.stderr.strip()}")
    [report] = (tmp_path / "r").glob("*.json")
    [entry] = json.loads(report.read_text())["hosts"]
    assert entry["verdict"] == "unreachable"
    assert entry["fix"] == ["DNS: the name no-such-host.invalid does not resolve here: check it (getent hosts "
                            "no-such-host.invalid) or set ansible_host to its address"]
    assert entry["fix"][0] in proc.stdout
