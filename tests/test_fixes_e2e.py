"""Fixes on real test hosts: a real backend with a hostile command line, restarted by pasting fleet's fix.

One test host runs the real backend (`python main.py --no-listen`, which never binds its port)
from a directory and with arguments built to inject: pasted into a root shell on that host,
fleet's fix must stop that very process and start it again with exactly its argv and directory,
and nothing else. Two more hosts have the same cause with different upstream lines: each keeps
its own fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jsonschema
import pytest

from tests.test_report import schema

testfleet = pytest.importorskip("testfleet")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
# A prefix of its own (the 502 module's fleet is down by the time this one comes up).
PREFIX = os.environ.get("FLEET_E2E_PREFIX", "flte") + "x"
SUBNET = os.environ.get("FLEET_E2E_SUBNET", "198.18.210.0/24")
MARK = "/tmp/fleet-MARK"
APP = f"/srv/app dir;$(touch {MARK})`touch {MARK}`"
HOSTILE_ARGS = ("--no-listen", "--host", f"; touch {MARK} #", "--host", f"$(touch {MARK})'\"", "--host", "127.0.0.1")


def _cmdlines(fleet, host: str) -> dict[int, tuple[tuple[str, ...], str]]:
    """Every process of the host with python in its argv: pid -> (argv, cwd), read from /proc."""
    script = ("for d in /proc/[0-9]*; do case $(tr '\\0' ' ' < $d/cmdline 2>/dev/null) in *main.py*) "
              "printf '%s\\n' \"${d#/proc/}\"; od -An -v -tx1 < $d/cmdline | tr -d ' \\n'; echo; "
              "readlink $d/cwd | od -An -v -tx1 | tr -d ' \\n'; echo ;; esac; done")
    out = fleet.exec(host, ["sh", "-c", script]).stdout.split("\n")
    found = {}
    for pid, argv, cwd in zip(out[0::3], out[1::3], out[2::3]):
        found[int(pid)] = (tuple(bytes.fromhex(argv).decode().rstrip("\0").split("\0")),
                           bytes.fromhex(cwd).decode().removesuffix("\n"))
    return found


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fixes")
    try:
        with testfleet.TestFleet(workdir / "tf", scenarios=["backend_not_listening", "nginx_upstream_mismatch",
                                                            "nginx_upstream_wrong_ip"],
                                 prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            host = "backend_not_listening"
            [(old, _)] = [(pid, v) for pid, v in _cmdlines(tf, host).items() if v[0][:2] == ("python", "main.py")]
            assert tf.exec(host, ["kill", str(old)]).returncode == 0  # the scenario's backend, started by the fleet
            assert tf.exec(host, ["mkdir", "-p", APP]).returncode == 0
            assert tf.exec(host, ["cp", "/srv/app/main.py", APP]).returncode == 0
            # The hostile backend: started without a shell, in the host's namespaces, detached.
            # The directory and arguments reach this fixed script as $1 and "$@", never inside it.
            subprocess.run(["nsenter", "-t", str(tf.hosts[host].init_pid), "-a", "sh", "-c",
                            'cd -- "$1" && shift && exec setsid -f "$@"', "sh", APP, "env",
                            "PATH=/srv/app/venv/bin:/usr/bin:/bin", "python", "main.py", *HOSTILE_ARGS],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            deadline = time.monotonic() + 10
            while not any(v == (("python", "main.py", *HOSTILE_ARGS), APP) for v in _cmdlines(tf, host).values()):
                assert time.monotonic() < deadline, _cmdlines(tf, host)
                time.sleep(0.1)
            yield tf
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def report(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(fleet.inventory_path), "--known-hosts",
         str(fleet.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--format", "json"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    [path] = out.glob("*.json")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema())
    return doc


def test_pasted_restart_runs_the_hostile_backend_again_exactly_and_nothing_else(fleet, report):
    host = "backend_not_listening"
    [entry] = [h for h in report["hosts"] if h["name"] == host]
    assert entry["verdict"] == "backend_not_listening"
    [(pid, _)] = [(p, v) for p, v in _cmdlines(fleet, host).items() if v[1] == APP]
    kinds = [s["kind"] for s in entry["fix_steps"]]
    assert "signal" in kinds and "start_process" in kinds, entry["fix"]
    assert f"sudo kill {pid}" in entry["fix"]
    # Pasted as printed into a root shell on the host.
    pasted = fleet.exec(host, ["sh", "-c", "\n".join(entry["fix"])], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        running = _cmdlines(fleet, host)
        again = [v for p, v in running.items() if p != pid and v[1] == APP]
        if again or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert pid not in running, (entry["fix"], pasted.stderr)
    # argv[0] is the program the process's own PATH found, the rest exactly as it was.
    assert again == [(("/srv/app/venv/bin/python", "main.py", *HOSTILE_ARGS), APP)], (entry["fix"], pasted.stderr)
    assert fleet.exec(host, ["test", "-e", MARK]).returncode != 0, "an injected command ran"


def test_same_cause_with_different_upstream_lines_keeps_each_hosts_fix(report):
    # One cause, two hosts, no shared fix: each host keeps its own.
    [cause] = [c for c in report["summary"]["causes"] if c["verdict"] == "nginx_upstream_mismatch"]
    assert sorted(cause["hosts"]) == ["nginx_upstream_mismatch", "nginx_upstream_wrong_ip"] and cause["fix"] == []
    assert sorted(f["hosts"] for f in cause["fixes"]) == [["nginx_upstream_mismatch"], ["nginx_upstream_wrong_ip"]]
    for cause in cause["fixes"]:
        wrong = "127.0.0.1:8001" if cause["hosts"] == ["nginx_upstream_mismatch"] else "198.18.9.9:8000"
        assert (f'# point nginx at the address where the backend answers: line 2 of /etc/nginx/sites-enabled/backend: '
                f'replace "server {wrong};" with "server 127.0.0.1:8000;"') in cause["fix"]
        assert "sudoedit -- /etc/nginx/sites-enabled/backend" in cause["fix"]


def test_fixes_use_the_service_manager_the_hosts_have(report):
    fixes = "\n".join(line for h in report["hosts"] for line in h["fix"])
    assert "systemctl" not in fixes  # no test host runs systemd
    assert "sudo /usr/sbin/nginx -s reload" in fixes  # nginx runs without a manager: its own binary
