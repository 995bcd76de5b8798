"""Issue 16 on real test hosts: a healthy host with a check not judged says so in every format, an
address with no route is told as such, and the 502 and host runbooks run together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

testfleet = pytest.importorskip("testfleet")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
PREFIX = os.environ.get("FLEET_UX_E2E_PREFIX", "fux")
SUBNET = os.environ.get("FLEET_UX_E2E_SUBNET", "198.18.191.0/24")
# The kernel log and /proc/meminfo are the machine's, not the test host's: judged off, as in
# tests/test_host_runbook.py, so only the test hosts' own filesystems decide.
HOST_GLOBALS_OFF = ("--var", "oom_window_minutes=0", "--var", "mem_available_min_pct=0")
NOT_JUDGED = ("nginx -t not judged: it needs root, and this login has neither root nor passwordless sudo "
              "(sudo -n was refused)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uxfleet")
    out = workdir / "reports"
    try:
        with testfleet.TestFleet(workdir / "tf", scenarios="healthy,sudo_password,unreachable,disk_full",
                                 prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            runs = [subprocess.run(
                [sys.executable, "-m", "fleet", "diagnose", "-i", str(tf.inventory_path), "--known-hosts",
                 str(tf.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(folder), "--timeout", "30",
                 "--format", "json,md,html", "--runbook", runbook, *extra], capture_output=True, text=True, timeout=180,
                stdin=subprocess.DEVNULL) for folder, runbook, extra in ((out, "502", ()), (workdir / "both", "502,host",
                                                                                       HOST_GLOBALS_OFF))]
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))
    return runs[0], out, runs[1], workdir / "both"


def report(out: Path, ext: str) -> str:
    [path] = out.glob(f"*.{ext}")
    return path.read_text()


def test_healthy_with_a_check_not_judged_says_so_everywhere(run):
    proc, out, _, _ = run
    doc = json.loads(report(out, "json"))
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["sudo_password"]["verdict"] == "healthy"
    assert hosts["sudo_password"]["summary"].endswith("; " + NOT_JUDGED)
    assert NOT_JUDGED not in hosts["healthy"]["summary"]  # a host with root judged nginx -t
    headline = doc["summary"]["headline"]
    assert headline.endswith("; 1 healthy host with a check not judged.")
    assert f"healthy, but {NOT_JUDGED}: sudo_password" in proc.stdout
    assert proc.stdout.splitlines()[-1] == headline
    markdown = report(out, "md")
    assert NOT_JUDGED in markdown and "1 healthy host with a check not judged" in markdown
    html = report(out, "html")
    assert NOT_JUDGED in html and "1 healthy host with a check not judged" in html


def test_an_address_without_route_is_told_as_route(run):
    proc, out, _, _ = run
    hosts = {h["name"]: h for h in json.loads(report(out, "json"))["hosts"]}
    unreachable = hosts["unreachable"]
    assert unreachable["verdict"] == "unreachable"
    assert unreachable["fix"][0].startswith("route: this machine has no route to ")
    assert "route: this machine has no route to" in proc.stdout


def test_502_and_host_in_one_run_give_each_host_both_verdicts(run):
    _, _, proc, out = run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    hosts = {h["name"]: h for h in json.loads(report(out, "json"))["hosts"]}
    verdicts = {name: [(r["runbook"], r["verdict"]) for r in h.get("runbooks", [])] for name, h in hosts.items()}
    assert verdicts["healthy"] == [("502", "healthy"), ("host", "healthy")]
    assert verdicts["disk_full"] == [("502", "healthy"), ("host", "disk_full")]
    assert hosts["disk_full"]["verdict"] == "disk_full"  # listed under its worst verdict
    assert hosts["unreachable"]["verdict"] == "unreachable" and verdicts["unreachable"] == []
    assert "   disk_full: 502 healthy, host disk_full" in proc.stdout
