"""The namespace test fleet (testfleet/) matches the real world it claims to build.

The fleet tests need root and Linux namespaces; they skip with the reason
otherwise.  They use their own prefix and subnet (fltt*, 198.18.200.0/24 and
198.18.201.0/24) so they never collide with a demo fleet on fltbr0.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from testfleet import (
    EXPECTED,
    SCENARIOS,
    TestFleet,
    TestFleetError,
    TestFleetUnavailable,
    down_dir,
    parse_scenarios,
    route_dev,
)

REPO = Path(__file__).resolve().parents[1]
PREFIX = os.environ.get("TESTFLEET_TEST_PREFIX", "fltt")
SUBNET = os.environ.get("TESTFLEET_TEST_SUBNET", "198.18.200.0/24")
SUBNET2 = os.environ.get("TESTFLEET_TEST_SUBNET2", "198.18.201.0/24")

needs_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the test fleet needs root on Linux (network/PID/mount namespaces, veths, a bridge)",
)

FLEET_SCENARIOS = [
    "healthy", "nginx_upstream_mismatch", "nginx_upstream_wrong_ip", "backend_not_running",
    "backend_refusing", "nginx_config_invalid", "no_tools", "sudo_password", "auth_refused",
    "hostkey_changed", "unreachable",
]
VERDICTS = {
    "healthy", "backend_not_running", "backend_not_listening", "backend_refusing", "backend_hanging",
    "backend_app_error", "nginx_not_running", "nginx_config_invalid", "nginx_upstream_mismatch",
    "unreachable", "auth_failed", "host_key_rejected", "intermittent_502",
}


# ------------------------------------------------------------ no root needed
def test_scenario_table_is_complete():
    assert len(SCENARIOS) == 26  # issue 14 added the zeroconf family and intermittent_502
    assert set(EXPECTED.values()) == VERDICTS
    assert EXPECTED["nginx_upstream_wrong_ip"] == "nginx_upstream_mismatch"
    for name in ("slow", "no_netstat", "no_tools", "sudo_password"):
        assert EXPECTED[name] == "healthy"


def test_parse_scenarios_names_and_counts():
    assert parse_scenarios("healthy") == [("healthy", "healthy")]
    assert parse_scenarios("healthy*3,slow") == [
        ("healthy-01", "healthy"), ("healthy-02", "healthy"), ("healthy-03", "healthy"), ("slow", "slow")]
    assert len(parse_scenarios("all")) == len(SCENARIOS)
    assert len(parse_scenarios(["healthy"], count=150)) == 150
    assert parse_scenarios(["healthy"], count=150)[-1][0] == "healthy-150"
    with pytest.raises(ValueError, match="unknown scenario"):
        parse_scenarios("nope")


def test_subnet_too_small_for_the_fleet(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        TestFleet(tmp_path, scenarios=["healthy*10"], subnet="198.18.0.0/28")


def test_not_root_is_reported_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TestFleetUnavailable, match="root"):
        TestFleet(tmp_path, scenarios=["healthy"]).up()
    assert not (tmp_path / "state.json").exists()


# --------------------------------------------------------------- real fleet
def _ssh(tf: TestFleet, host: str, cmd: str, user: str | None = None, timeout: float = 30):
    return subprocess.run(tf.ssh_argv(host, cmd, user=user), capture_output=True, text=True, timeout=timeout)


def _curl_in_ns(tf: TestFleet, host: str, method: str, url: str) -> str:
    cp = subprocess.run(
        ["ip", "netns", "exec", tf.hosts[host].netns, "curl", "-s", "--noproxy", "*", "-m", "5",
         "-o", "/dev/null", "-w", "%{http_code}", "-X", method, url],
        capture_output=True, text=True, timeout=30,
    )
    return cp.stdout.strip()


@pytest.fixture(scope="module")
def tfleet(tmp_path_factory):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the test fleet needs root on Linux")
    tf = TestFleet(tmp_path_factory.mktemp("fleet"), scenarios=FLEET_SCENARIOS, prefix=PREFIX, subnet=SUBNET)
    try:
        tf.up()
    except TestFleetUnavailable as exc:
        pytest.skip(f"test fleet unavailable here: {exc}")
    yield tf
    names = [h.netns for h in tf.hosts.values()] + [h.veth for h in tf.hosts.values()] + [tf.bridge]
    pids = [h.init_pid for h in tf.hosts.values() if h.init_pid]
    tf.down()
    assert not any(os.path.exists(f"/run/netns/{n}") or os.path.exists(f"/sys/class/net/{n}") for n in names)
    assert not any(os.path.exists(f"/proc/{p}") and "hostinit" in Path(f"/proc/{p}/cmdline").read_text()
                   for p in pids)


@needs_root
def test_outputs_written(tfleet):
    tf = tfleet
    inv = yaml.safe_load(tf.inventory_path.read_text())
    hosts = inv["all"]["hosts"]
    assert set(hosts) == set(FLEET_SCENARIOS)
    assert hosts["healthy"]["ansible_host"] == tf.hosts["healthy"].ip
    assert hosts["healthy"]["ansible_user"] == "root"
    assert hosts["sudo_password"]["ansible_user"] == "fleetops"
    assert hosts["healthy"]["ansible_ssh_private_key_file"] == str(tf.key_path)
    assert set(inv["all"]["children"]["ssh"]["hosts"]) == {"auth_refused", "hostkey_changed", "unreachable"}
    assert stat.S_IMODE(tf.key_path.stat().st_mode) == 0o600
    assert json.loads(tf.expected_path.read_text()) == tf.expected
    assert tf.expected["hostkey_changed"] == "host_key_rejected"
    kh = tf.known_hosts_path.read_text()
    assert tf.hosts["healthy"].ip + " ssh-ed25519 " in kh
    assert tf.hosts["unreachable"].ip + " " not in kh
    state = json.loads(tf.state_path.read_text())
    assert state["bridge"] == f"{PREFIX}br0" and state["ready"]


@needs_root
def test_routes_stay_on_the_bridge(tfleet):
    for h in tfleet.hosts.values():
        assert route_dev(h.ip) == tfleet.bridge
        if h.scenario.exists:
            out = subprocess.run(["ip", "-n", h.netns, "route", "show", "default"], capture_output=True, text=True)
            assert out.stdout.strip() == ""  # no default route: nothing can leave
    with pytest.raises(TestFleetError, match="refusing"):
        tfleet.check_route("127.0.0.1")


@needs_root
def test_healthy_host_is_isolated_and_complete(tfleet):
    cp = _ssh(tfleet, "healthy", "hostname; echo ---; ps -eo pid=,args=; echo ---; ss -ltn; "
                                 "cat /var/log/bandarupay/app.log")
    assert cp.returncode == 0, cp.stderr
    name, ps, rest = cp.stdout.split("---\n", 2)
    assert name.strip() == "healthy"
    procs = {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in ps.splitlines() if line.strip()}
    assert "hostinit.py" in procs[1]
    assert "python main.py" in procs.values()  # args are literally `python main.py`
    assert any(a.startswith("nginx: master process") for a in procs.values())
    # only this host's processes: one sshd listener, one backend, no other host's backend flags
    assert sum(1 for a in procs.values() if "[listener]" in a) == 1
    assert not any("main.py --" in a for a in procs.values())
    assert len(procs) < 20
    assert "127.0.0.1:8000" in cp.stdout and f"{tfleet.hosts['healthy'].ip}:22" in cp.stdout
    assert "Listening on http://127.0.0.1:8000" in cp.stdout
    assert "fleetops" not in Path("/etc/passwd").read_text()  # the real machine is untouched


@needs_root
def test_nginx_answers_through_the_proxy(tfleet):
    login = ("POST", "http://127.0.0.1/api/v1/demo-login")
    assert _curl_in_ns(tfleet, "healthy", *login) == "401"
    assert _curl_in_ns(tfleet, "nginx_upstream_mismatch", *login) == "502"
    assert _curl_in_ns(tfleet, "backend_refusing", *login) == "502"
    t = time.monotonic()
    assert _curl_in_ns(tfleet, "nginx_upstream_wrong_ip", *login) == "502"
    assert time.monotonic() - t < 3  # blackholed: fails at once, nothing leaves
    assert _curl_in_ns(tfleet, "backend_refusing", "GET", "http://[::1]:8000/health") == "200"
    assert _curl_in_ns(tfleet, "nginx_config_invalid", *login) == "401"


@needs_root
def test_nginx_config_invalid_fails_nginx_t(tfleet):
    cp = _ssh(tfleet, "nginx_config_invalid", "nginx -t")
    assert cp.returncode != 0 and "test failed" in cp.stderr
    assert _ssh(tfleet, "healthy", "nginx -t").returncode == 0


@needs_root
def test_backend_not_running_left_a_real_traceback(tfleet):
    cp = _ssh(tfleet, "backend_not_running", "ps -eo args=; echo ---; cat /var/log/bandarupay/app.log")
    procs, log = cp.stdout.split("---\n", 1)
    assert "main.py" not in procs
    assert "Traceback (most recent call last):" in log
    assert log.rstrip().endswith("ModuleNotFoundError: No module named 'jwt'")


@needs_root
def test_no_tools_host_lacks_netstat_and_ss(tfleet):
    cp = _ssh(tfleet, "no_tools", "command -v netstat || echo no-netstat; command -v ss || echo no-ss; "
                                   "test -r /proc/net/tcp && echo proc-ok")
    assert cp.stdout.split() == ["no-netstat", "no-ss", "proc-ok"], cp.stdout + cp.stderr
    real_ss = _ssh(tfleet, "healthy", "command -v ss").stdout.strip()
    assert real_ss and os.path.exists(real_ss)  # hidden only inside no_tools, not on the machine


@needs_root
def test_sudo_password_host(tfleet):
    cp = _ssh(tfleet, "sudo_password", "id -un; sudo -n true; echo rc=$?")
    assert cp.stdout.split() == ["fleetops", "rc=1"], cp.stdout + cp.stderr
    assert "password is required" in cp.stderr
    assert _ssh(tfleet, "sudo_password", "true", user="root").returncode == 255


@needs_root
def test_ssh_level_failures(tfleet):
    cp = _ssh(tfleet, "auth_refused", "true")
    assert cp.returncode == 255 and "Permission denied" in cp.stderr
    cp = _ssh(tfleet, "hostkey_changed", "true")
    assert cp.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in cp.stderr
    h = tfleet.hosts["unreachable"]
    tfleet.check_route(h.ip)
    t = time.monotonic()
    with pytest.raises(OSError):
        socket.create_connection((h.ip, 22), timeout=5).close()
    assert time.monotonic() - t < 6


@needs_root
def test_cli_up_detach_and_down_leave_nothing(tmp_path):
    d = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    prefix = PREFIX[:6] + "c"
    cp = subprocess.run(
        [sys.executable, "-m", "testfleet", "up", "--dir", str(d), "--scenarios", "healthy*2,nginx_not_running",
         "--prefix", prefix, "--subnet", SUBNET2, "--detach"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    if cp.returncode == 2:
        pytest.skip(cp.stderr.strip())
    assert cp.returncode == 0, cp.stderr
    state = json.loads((d / "state.json").read_text())
    assert set(json.loads((d / "expected.json").read_text())) == {"healthy-01", "healthy-02", "nginx_not_running"}
    pids = [h["init_pid"] for h in state["hosts"].values()] + [h["unshare_pid"] for h in state["hosts"].values()]
    assert all(os.path.exists(f"/proc/{p}") for p in pids)
    assert os.path.exists(f"/sys/class/net/{prefix}br0")

    cp = subprocess.run([sys.executable, "-m", "testfleet", "down", "--dir", str(d)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert not (d / "state.json").exists()
    assert not os.path.exists(f"/sys/class/net/{prefix}br0")
    for h in state["hosts"].values():
        assert not os.path.exists(f"/run/netns/{h['netns']}")
        assert not os.path.exists(f"/sys/class/net/{h['veth']}")
    time.sleep(0.2)
    for p in pids:
        alive = os.path.exists(f"/proc/{p}") and "hostinit" in Path(f"/proc/{p}/cmdline").read_text()
        assert not alive, p
    assert down_dir(d) is False  # nothing left to do


@needs_root
def test_failed_bring_up_cleans_up(tmp_path):
    tf = TestFleet(tmp_path / "fail", scenarios=["healthy*2"], prefix=PREFIX[:6] + "f", subnet=SUBNET2, timeout=0.01)
    try:
        with pytest.raises(TestFleetError, match="not ready"):
            tf.up()
    except TestFleetUnavailable as exc:
        pytest.skip(str(exc))
    assert not tf.state_path.exists()
    assert not os.path.exists(f"/sys/class/net/{tf.bridge}")
    for h in tf.hosts.values():
        assert not os.path.exists(f"/run/netns/{h.netns}")
