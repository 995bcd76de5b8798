"""`fleet diagnose` on an inventory as Ansible users write them, against a real sshd on loopback.

Per-host verdicts decided from the inventory (an unsupported connection, a Vault value the runbook
needs), and ProxyCommand from the inventory's ssh arguments and from ssh_config: the host names
here do not resolve, so a host that answers was reached through its proxy and nothing else.
"""

from __future__ import annotations

import sys
import textwrap

from tests.conftest import needs_root
from tests.test_ssh_e2e import UPTIME, only_report, run_fleet

VAULT = '!vault "$ANSIBLE_VAULT;1.1;AES256\\n6231336539666234306139346433616338376437376461363365363430623138"'

# A ProxyCommand: relays stdin/stdout to HOST PORT and notes that it ran.
RELAY = """
import socket, sys, threading
open(sys.argv[3], "a").write(sys.argv[4] + "\\n")
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def pump():
    while data := sock.recv(65536):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
threading.Thread(target=pump, daemon=True).start()
while data := sys.stdin.buffer.read1(65536):
    sock.sendall(data)
"""


@needs_root
def test_inventory_verdicts_and_proxy_command(sshd, tmp_path):
    relay, log = tmp_path / "relay.py", tmp_path / "relay.log"
    relay.write_text(RELAY)
    proxy = f"{sys.executable} {relay} 127.0.0.1 {sshd.port} {log}"
    (tmp_path / "known_hosts").write_text("".join(f"[{name}]:{sshd.port} {sshd.host_pub}\n"
                                                  for name in ("inventory.invalid", "config.invalid")))
    # ssh_config's ProxyCommand uses shell syntax, so it runs under sh -c like OpenSSH's.
    (tmp_path / "ssh_config").write_text(f"Host viaconfig\n  HostName config.invalid\n"
                                         f"  ProxyCommand {proxy} viaconfig 2>/dev/null\n")
    (tmp_path / "hosts.yml").write_text(textwrap.dedent(f"""
        all:
          vars:
            ansible_port: {sshd.port}
            ansible_user: root
            ansible_ssh_private_key_file: {sshd.user_key}
            unused_secret: {VAULT}
          children:
            linux:
              hosts:
                viaargs:
                  ansible_host: inventory.invalid
                  ansible_ssh_common_args: -o ProxyCommand="{proxy} viaargs"
                viaconfig:
                brokenproxy:
                  ansible_ssh_common_args: -o ProxyCommand="/nonexistent/proxy %h %p"
                vaulted:
                  ansible_host: inventory.invalid
                  marker_file: {VAULT}
            windows:
              hosts:
                win1:
                  ansible_connection: winrm
    """).lstrip("\n"))
    common = ("--runbook", str(UPTIME), "--known-hosts", str(tmp_path / "known_hosts"), "--ssh-config",
              str(tmp_path / "ssh_config"), "--connect-timeout", "3", "--timeout", "10")
    proc = run_fleet("diagnose", "-i", "hosts.yml", *common, "--out", "all", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    hosts = {h["name"]: h for h in only_report(tmp_path / "all")["hosts"]}
    # Reached through their proxies only (their names do not resolve), each relay run noted once.
    assert hosts["viaargs"]["verdict"] == "linux", hosts["viaargs"]["summary"]
    assert hosts["viaconfig"]["verdict"] == "linux", hosts["viaconfig"]["summary"]
    assert sorted(log.read_text().split()) == ["viaargs", "viaconfig"]
    assert hosts["brokenproxy"]["verdict"] == "unreachable"
    assert "ProxyCommand '/nonexistent/proxy brokenproxy" in hosts["brokenproxy"]["summary"]
    # The Vault value the runbook needs fails that host alone, before any connection; the one it
    # does not need (unused_secret) fails nothing.
    assert hosts["vaulted"]["verdict"] == "inventory_error"
    assert "parameter 'marker_file' is encrypted with Ansible Vault" in hosts["vaulted"]["summary"]
    assert hosts["vaulted"]["probes"] == {}
    assert hosts["win1"]["verdict"] == "unsupported_connection"
    assert "'winrm'" in hosts["win1"]["summary"]
    assert "unsupported_connection" in proc.stdout  # the terminal's table of causes, like unreachable

    limited = run_fleet("diagnose", "-i", "hosts.yml", *common, "--limit", "all:!windows:!vaulted:!brokenproxy",
                        "--out", "limited", cwd=tmp_path)
    assert limited.returncode == 0, limited.stderr
    report = only_report(tmp_path / "limited")
    assert sorted(h["name"] for h in report["hosts"]) == ["viaargs", "viaconfig"]
    assert "win1" not in next((tmp_path / "limited").glob("*.md")).read_text()
