"""ProxyJump: targets reachable only through a bastion, which is logged in to once for all of them.

Topology, all in namespaces this test creates and removes (198.18.250.0/24 is the test range):

    controller (root ns) --- 198.18.250.1/30 --- bastion ns (sshd) --- 198.18.250.5/30 --- target ns (sshd)

The bastion does not forward packets and the controller has no route to 198.18.250.4/30, so the
target can only be reached through an SSH direct-tcpip channel opened by the bastion.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import paramiko
import pytest
from paramiko.common import MSG_CHANNEL_DATA

from tests import sshd as sshd_mod
from fleet.transport.ssh import JumpSocket
from tests.test_ssh_e2e import only_report, write_inventory

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces")
BASTION_NS, TARGET_NS = "fltjb", "fltjt"
CONTROLLER_IP, BASTION_OUT, BASTION_IN, TARGET_IP = "198.18.250.1", "198.18.250.2", "198.18.250.5", "198.18.250.6"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    for ns in (BASTION_NS, TARGET_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # leftovers of a killed run
    subprocess.run(["ip", "link", "del", "fltjv0"], capture_output=True)
    ip("netns", "add", BASTION_NS)
    ip("netns", "add", TARGET_NS)
    servers = []
    try:
        ip("link", "add", "fltjv0", "type", "veth", "peer", "name", "fltjv1")
        ip("link", "set", "fltjv1", "netns", BASTION_NS)
        ip("addr", "add", f"{CONTROLLER_IP}/30", "dev", "fltjv0")
        ip("link", "set", "fltjv0", "up")
        ip("-n", BASTION_NS, "link", "add", "fltjv2", "type", "veth", "peer", "name", "fltjv3")
        ip("-n", BASTION_NS, "link", "set", "fltjv3", "netns", TARGET_NS)
        for ns, dev, addr in ((BASTION_NS, "fltjv1", BASTION_OUT), (BASTION_NS, "fltjv2", BASTION_IN),
                              (TARGET_NS, "fltjv3", TARGET_IP)):
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        route = json.loads(subprocess.run(["ip", "-j", "route", "get", BASTION_OUT], capture_output=True,
                                          text=True, check=True).stdout)
        assert route[0]["dev"] == "fltjv0"  # traffic to the bastion stays on our veth
        bastion_dir, target_dir = tmp_path_factory.mktemp("bastion"), tmp_path_factory.mktemp("target")
        # The bastion's sshd also listens on its inner address, so a chain of two jumps can be
        # built from one bastion: controller -> bastion (outer) -> bastion (inner) -> target.
        bastion, proc = sshd_mod.start(bastion_dir, (BASTION_OUT, BASTION_IN), netns=BASTION_NS, port=22,
                                       log_level="INFO")
        servers.append(proc)
        target, proc = sshd_mod.start(target_dir, (TARGET_IP,), netns=TARGET_NS, port=22)
        servers.append(proc)
        # One key for both, as an operator's agent or key file would serve both.
        (target_dir / "authorized_keys").write_text((bastion_dir / "user_ed25519.pub").read_text())
        yield bastion, target, bastion_dir / "sshd.log"
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "link", "del", "fltjv0"], capture_output=True)
        for ns in (BASTION_NS, TARGET_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


REPO = os.path.dirname(os.path.dirname(__file__))


def diagnose_command(tmp_path, bastion, target, hosts: dict, ssh_config: str = "",
                     runbook: str = "tests/fixtures/runbooks/uptime.yml", timeout: int = 10) -> list[str]:
    """`fleet diagnose` of `hosts`, with known_hosts for the bastion and the target; reports in tmp_path/reports."""
    known = tmp_path / "known_hosts"
    known.write_text(f"{BASTION_OUT} {bastion.host_pub}\n{BASTION_IN} {bastion.host_pub}\n"
                     f"{TARGET_IP} {target.host_pub}\n")
    config = tmp_path / "ssh_config"
    config.write_text(ssh_config)
    inventory = write_inventory(tmp_path / "inv.yml", hosts)
    return [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook", runbook, "--known-hosts",
            str(known), "--ssh-config", str(config), "--out", str(tmp_path / "reports"), "--connect-timeout", "3",
            "--timeout", str(timeout)]


def run(tmp_path, bastion, target, hosts: dict, ssh_config: str = "") -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(diagnose_command(tmp_path, bastion, target, hosts, ssh_config), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)
    return proc, {h["name"]: h for h in only_report(tmp_path / "reports")["hosts"]}


def test_target_is_unreachable_directly(topology, tmp_path):
    bastion, target, _ = topology
    _, hosts = run(tmp_path, bastion, target, {"direct": {
        "ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": str(bastion.user_key)}})
    assert hosts["direct"]["verdict"] == "unreachable"


def test_proxyjump_from_inventory_args_and_from_ssh_config(topology, tmp_path):
    bastion, target, _ = topology
    key = str(bastion.user_key)
    _, hosts = run(tmp_path, bastion, target, {
        "via-args": {"ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": key,
                     "ansible_ssh_common_args": f"-o ProxyJump=root@{BASTION_OUT}"},
        "via-config": {"ansible_user": "root", "ansible_ssh_private_key_file": key},
        "jumper": {"ansible_host": BASTION_OUT, "ansible_user": "root", "ansible_ssh_private_key_file": key},
    }, ssh_config=f"Host via-config\n  HostName {TARGET_IP}\n  ProxyJump root@{BASTION_OUT}:22\n")
    # The controller has no route to the target (test above): only the bastion's channel gets there.
    for name in ("via-args", "via-config", "jumper"):
        assert hosts[name]["verdict"] == "linux", hosts[name]


def test_unreachable_bastion_is_the_targets_verdict(topology, tmp_path):
    bastion, target, _ = topology
    _, hosts = run(tmp_path, bastion, target, {
        "behind": {"ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file":
                   str(bastion.user_key), "ansible_ssh_common_args": f"-J root@{BASTION_OUT}:2"}})
    assert hosts["behind"]["verdict"] == "unreachable"
    assert hosts["behind"]["summary"].startswith(f"jump host {BASTION_OUT}:2:")


def test_targets_behind_a_bastion_share_one_login_to_it(topology, tmp_path):
    bastion, target, bastion_log = topology
    logins = lambda: bastion_log.read_text().count("Accepted publickey")  # noqa: E731
    before = logins()
    key = str(bastion.user_key)
    hosts = {f"t{i}": {"ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": key,
                       "ansible_ssh_common_args": f"-J root@{BASTION_OUT}"} for i in range(5)}
    _, results = run(tmp_path, bastion, target, hosts)
    assert {h["verdict"] for h in results.values()} == {"linux"}, results
    assert logins() - before == 1


def test_accept_new_records_the_bastions_key_too(topology, tmp_path):
    bastion, target, _ = topology
    known = tmp_path / "known_hosts"
    inventory = write_inventory(tmp_path / "inv.yml", {"behind": {
        "ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": str(bastion.user_key),
        "ansible_ssh_common_args": f"-J root@{BASTION_OUT}"}})
    proc = subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                           "tests/fixtures/runbooks/uptime.yml", "--known-hosts", str(known), "--ssh-config",
                           "/dev/null", "--accept-new", "--out", str(tmp_path / "r")], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert sorted(known.read_text().splitlines()) == sorted([f"{BASTION_OUT} {bastion.host_pub}",
                                                             f"{TARGET_IP} {target.host_pub}"])


def test_a_chain_of_two_jumps(topology, tmp_path):
    bastion, target, bastion_log = topology
    before = bastion_log.read_text().count("Accepted publickey")
    _, hosts = run(tmp_path, bastion, target, {"deep": {
        "ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": str(bastion.user_key),
        "ansible_ssh_common_args": f"-J root@{BASTION_OUT},root@{BASTION_IN}"}})
    assert hosts["deep"]["verdict"] == "linux", hosts["deep"]
    # Two logins to the bastion: one per hop of the chain, each made once.
    assert bastion_log.read_text().count("Accepted publickey") - before == 2


def _descendants(pid: int) -> list[int]:
    """PIDs below `pid` (children first), from /proc."""
    try:
        children = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []
    return children + [d for c in children for d in _descendants(c)]


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _end(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # ended on its own meanwhile


def test_a_bastion_lost_mid_run_is_a_verdict_at_once_for_every_host_behind_it(topology, tmp_path):
    bastion, target, _ = topology
    behind = {"ansible_host": TARGET_IP, "ansible_user": "root", "ansible_ssh_private_key_file": str(bastion.user_key),
              "ansible_ssh_common_args": f"-J root@{BASTION_OUT}", "cmd": "sleep 8"}
    # One at a time: `second` starts after the bastion is gone.
    command = diagnose_command(tmp_path, bastion, target, {"first": behind, "second": behind},
                               runbook="tests/fixtures/runbooks/command.yml", timeout=30) + ["--forks", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            cwd=REPO)
    try:
        waited = time.monotonic() + 20
        while not any("sleep 8" in _cmdline(p) for p in _descendants(target.pid)):
            assert time.monotonic() < waited and proc.poll() is None, "the script never started on the target"
            time.sleep(0.05)
        # End the bastion's side of the connection: its per-connection sshd processes, ours by PID.
        lost_at = time.monotonic()
        _end(_descendants(bastion.pid))
        assert proc.wait(timeout=40) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        _end(p for p in _descendants(target.pid) if "sleep 8" in _cmdline(p))  # orphaned by the lost connection
    hosts = {h["name"]: h for h in only_report(tmp_path / "reports")["hosts"]}
    assert hosts["first"]["verdict"] == hosts["second"]["verdict"] == "unreachable", hosts
    assert hosts["first"]["summary"].startswith("connection lost while running")
    assert hosts["second"]["summary"] == f"jump host {BASTION_OUT}:22: its connection was lost during the run"
    assert time.monotonic() - lost_at < 5  # not the 30 s deadline


def test_closing_a_jump_socket_never_puts_data_after_the_channel_close(sshd, silent_port):
    """paramiko sends a channel's data message after releasing the channel's lock; a close slipping
    in between puts data after the CLOSE, and sshd ends the whole bastion connection for it."""
    bastion = paramiko.Transport(socket.create_connection(("127.0.0.1", sshd.port)))
    try:
        bastion.start_client(timeout=10)
        bastion.auth_publickey("root", paramiko.Ed25519Key.from_private_key_file(str(sshd.user_key)))
        jump = JumpSocket(bastion.open_channel("direct-tcpip", ("127.0.0.1", silent_port), ("127.0.0.1", 0)))
        send_user_message = bastion._send_user_message
        built = threading.Event()

        def paused(message):
            # Where a preempted sender thread would stop: data message built, not yet sent.
            if message.asbytes()[0] == MSG_CHANNEL_DATA:
                built.set()
                time.sleep(0.5)
            send_user_message(message)

        bastion._send_user_message = paused
        sender = threading.Thread(target=jump.send, args=(b"x" * 100,))
        sender.start()
        assert built.wait(10)
        jump.close()
        sender.join()
        # sshd reads in order: had the data come after the CLOSE, it would end the connection
        # ("data packet referred to nonexistent channel") before answering this.
        bastion.open_channel("direct-tcpip", ("127.0.0.1", silent_port), ("127.0.0.1", 0), timeout=10).close()
        assert bastion.is_active()
    finally:
        bastion.close()
