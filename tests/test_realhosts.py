"""The 502 runbook on a real server: systemd as PID 1 and a docker daemon, diagnosed over SSH.

One machine (testfleet/realhost.py) runs every backend below as a systemd unit or a container,
each with its own port and nginx server block; the inventory has one entry per service. One
`fleet diagnose` run covers them all, so every service is diagnosed next to the others'
`python main.py` processes, as on a host that shares the machine with containers.

Where systemd-nspawn or dockerd cannot start, the tests say why and skip; with
FLEET_REQUIRE_MANAGERS=1 (set by .ci/run) that is a failure instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from testfleet import TestFleetUnavailable
from testfleet.realhost import SERVICES, RealHost
from tests.test_report import schema

PREFIX = os.environ.get("FLEET_REAL_PREFIX", "fsrh")
SUBNET = os.environ.get("FLEET_REAL_SUBNET", "198.18.160.0/24")
REQUIRED = os.environ.get("FLEET_REQUIRE_MANAGERS") == "1"
BY_NAME = {s.name: s for s in SERVICES}


def unavailable(reason: str) -> None:
    """Skip, saying why; a failure where the service managers are required."""
    if REQUIRED:
        pytest.fail(f"FLEET_REQUIRE_MANAGERS=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def real_host(workdir: Path, prefix: str, subnet: str) -> Iterator[RealHost]:
    """A real server up for a test module (skipped, saying why, where it cannot start), then down."""
    if os.geteuid() != 0:
        unavailable("the real test host needs root (systemd-nspawn, namespaces, dockerd)")
    real = RealHost(workdir, prefix=prefix, subnet=subnet)
    try:
        real.up()
    except TestFleetUnavailable as exc:
        unavailable(str(exc))
    try:
        yield real
    finally:
        real.down()


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    with real_host(tmp_path_factory.mktemp("realhost") / "host", PREFIX, SUBNET) as real:
        yield real


def manager_states(host: RealHost) -> dict[str, str]:
    """What systemd and docker say about every service (the crash-looping container aside, whose
    state changes by itself), to show diagnose changed none of them."""
    states = {}
    for s in host.services:
        if s.manager == "systemd":
            cp = host.exec(["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID,ActiveEnterTimestamp",
                            "--", s.unit])
        elif s.ready != "restarting":
            cp = host.docker("inspect", "--format", "{{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}", s.unit)
        else:
            continue
        states[s.name] = cp.stdout
    return states


@pytest.fixture(scope="module")
def run(host, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    before = manager_states(host)
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(host.inventory_path), "--known-hosts",
         str(host.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--format", "json",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    doc = json.loads(report.read_text())
    return proc, {h["name"]: h for h in doc["hosts"]}, before, manager_states(host), doc


@pytest.fixture(scope="module")
def bare_run(host, tmp_path_factory):
    """The same server diagnosed with nothing but how to log in: no port, service or proxy URL."""
    out = tmp_path_factory.mktemp("bare")
    inventory = yaml.safe_load(host.inventory_path.read_text())
    for values in inventory["all"]["hosts"].values():
        for name in ("port", "service", "proxy_url"):
            values.pop(name, None)
    (out / "bare.yml").write_text(yaml.safe_dump(inventory))
    subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(out / "bare.yml"), "--known-hosts",
                    str(host.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--format", "json",
                    "--timeout", "30"], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    return {h["name"]: h for h in json.loads(report.read_text())["hosts"]}


def result(host, run, name: str) -> dict:
    if BY_NAME[name.removesuffix("_as_user")].manager != "systemd" and host.docker_unavailable:
        unavailable(f"dockerd could not start: {host.docker_unavailable}")
    return run[1][name]


def evidence(host, run, name: str) -> str:
    return "\n".join(result(host, run, name)["evidence"])


def fixes(host, run, name: str) -> str:
    return "\n".join(result(host, run, name)["fix"])


def test_every_service_gets_its_verdict(host, run):
    proc, got, *_, doc = run
    assert proc.returncode == 1, proc.stderr
    assert {name: h["verdict"] for name, h in got.items()} == host.expected
    jsonschema.validate(doc, schema())
    if host.docker_unavailable:
        unavailable(f"dockerd could not start, docker services not diagnosed: {host.docker_unavailable}")


def test_the_host_really_runs_systemd_as_pid_1(host, run):
    ps = host.exec(["ps", "-o", "args=", "-p", "1"]).stdout.strip()
    assert ps.startswith("/usr/lib/systemd/systemd")
    facts = result(host, run, "systemd_healthy")["facts"]["unit"]
    assert facts["systemd"] == "running" and facts["active_state"] == "active"
    assert facts["control_group"] == "/system.slice/orders-api.service"


def test_failed_unit_names_its_state_and_the_traceback_from_journald(host, run):
    h = result(host, run, "systemd_failed")
    assert "systemd reports billing-api failed (failed, result exit-code)" in h["summary"]
    assert "ActiveState=failed SubState=failed MainPID=0 Result=exit-code NRestarts=3" in evidence(host, run, "systemd_failed")
    # the traceback exists only in the journal: the app writes no file
    assert h["facts"]["logs"]["source"] == "journal"
    assert "ModuleNotFoundError: No module named 'jwt'" in evidence(host, run, "systemd_failed")
    assert host.exec(["sh", "-c", "ls /var/log/bandarupay 2>&1"]).stdout.strip().endswith("No such file or directory")
    # it hit its start limit: its failed state is reset first, or systemd refuses the start
    assert "sudo systemctl reset-failed billing-api\nsudo systemctl restart billing-api" in fixes(host, run, "systemd_failed")


def test_other_units_and_containers_processes_are_not_the_failed_units(host, run):
    ev = evidence(host, run, "systemd_failed")
    assert "belongs to unit orders-api.service" in ev and "belongs to unit search-api.service" in ev
    assert result(host, run, "systemd_failed")["facts"]["process"]["matching"]  # they do match the pattern
    if not host.docker_unavailable:
        assert "belongs to container" in ev


def test_active_unit_not_listening_names_only_its_own_process(host, run):
    h = result(host, run, "systemd_not_listening")
    main_pid = h["facts"]["unit"]["main_pid"]
    assert main_pid and f"The backend runs (pid {main_pid}) but nothing listens on port 8103" in h["summary"]
    assert "ActiveState=active SubState=running" in evidence(host, run, "systemd_not_listening")
    # one shell line per step (fixes are data, fleet.fixes renders them): restart, then its journal
    assert "sudo systemctl restart search-api\nsudo journalctl -u search-api" in fixes(host, run, "systemd_not_listening")
    assert "/var/log/bandarupay/app.log" not in fixes(host, run, "systemd_not_listening")  # it logs to journald


def test_healthy_services_get_no_fix(host, run):
    for name in ("systemd_healthy", "docker_running"):
        assert result(host, run, name)["fix"] == [], name


def test_a_backend_serving_from_another_units_cgroup_is_not_called_down(host, run):
    """The named unit is inactive and the only matching process is another unit's, but the port
    answers: nothing says the backend is not running."""
    h = result(host, run, "systemd_other_unit_serves")
    unit = h["facts"]["unit"]
    assert (unit["load_state"], unit["active_state"]) == ("loaded", "inactive")
    assert any(o["cgroup"] == "/system.slice/supervisor.service" for o in unit["owners"])
    assert h["verdict"] == "healthy"


def test_running_container_owns_its_process_in_another_pid_namespace(host, run):
    facts = result(host, run, "docker_running")["facts"]
    unit = facts["unit"]
    assert unit["container_running"] and not unit["container_restarting"]
    [own] = [o for o in unit["owners"] if o["cgroup"] and unit["container_id"] in o["cgroup"]]
    assert own["pidns"] != unit["self_pidns"] and own["pid"] == unit["container_pid"]


def test_exited_container_is_not_running_though_neighbours_match_the_pattern(host, run):
    h = result(host, run, "docker_exited")
    assert "docker reports payments exited (exit code 1)" in h["summary"]
    ev = evidence(host, run, "docker_exited")
    assert "docker: payments: exited running=false restarting=false oom_killed=false exit=1" in ev
    assert "belongs to container" in ev and "belongs to unit orders-api.service" in ev
    assert h["facts"]["logs"]["source"] == "docker"
    assert "ModuleNotFoundError: No module named 'jwt'" in ev
    fix = fixes(host, run, "docker_exited")
    assert "sudo docker start payments\nsudo docker logs --tail 50 payments" in fix
    assert "systemctl" not in fix and "kill" not in fix


def test_restarting_container_is_a_crash_loop(host, run):
    h = result(host, run, "docker_restarting")
    assert "docker reports mailer restarting (crash loop: exit code 1" in h["summary"]
    assert "restarting running=true restarting=true" in evidence(host, run, "docker_restarting")
    assert "ModuleNotFoundError: No module named 'jwt'" in evidence(host, run, "docker_restarting")
    assert "sudo docker restart mailer" in fixes(host, run, "docker_restarting")


def test_oom_killed_container_names_its_memory_limit(host, run):
    h = result(host, run, "docker_oom")
    assert "docker reports reports OOM-killed (exited, exit code 137, memory limit 48 MiB)" in h["summary"]
    assert "oom_killed=true exit=137" in evidence(host, run, "docker_oom")
    fix = fixes(host, run, "docker_oom")
    assert "sudo docker update --memory 96m --memory-swap 96m reports" in fix
    assert "sudo docker start reports" in fix


def test_compose_container_is_started_through_compose_when_the_host_has_it(host, run):
    h = result(host, run, "compose_exited")
    unit = h["facts"]["unit"]
    assert (unit["compose_project"], unit["compose_service"]) == ("shop", "web")
    assert "compose project=shop service=web" in evidence(host, run, "compose_exited")
    has_compose = host.docker("compose", "version").returncode == 0
    assert unit["compose_cli"] is has_compose
    fix = fixes(host, run, "compose_exited")
    if has_compose:
        assert "sudo docker compose -p shop start web" in fix
    else:
        assert "this host has no docker compose, so the container is started directly" in fix
        assert "sudo docker start shop-web-1" in fix
    assert "compose up" not in fix and "docker-compose" not in fix  # `up` can recreate containers


def test_an_unprivileged_login_gets_the_same_verdicts(host, run):
    """Without sudo: no journal, no other users' PID namespaces; the unit's cgroup and the
    container's id (in each process' cgroup, readable by all) still tell whose a process is."""
    failed = result(host, run, "systemd_failed_as_user")
    assert "privilege: user" in failed["notes"]
    assert "systemd reports billing-api failed" in failed["summary"]
    assert "belongs to unit orders-api.service" in "\n".join(failed["evidence"])
    exited = result(host, run, "docker_exited_as_user")
    unit = exited["facts"]["unit"]
    assert unit["docker"] == "present" and unit["owners"]
    # other users' namespaces are unreadable (its own SSH session's, under ssh.service without PAM, are not)
    assert all(o["pidns"] is None for o in unit["owners"] if o["cgroup"] != "/system.slice/ssh.service")
    assert "docker reports payments exited (exit code 1)" in exited["summary"]
    assert "ModuleNotFoundError: No module named 'jwt'" in "\n".join(exited["evidence"])  # docker logs


def test_diagnose_changed_no_unit_or_container(run):
    *_, before, after, _ = run
    assert before and before == after


def test_this_machine_sees_the_hosts_processes_as_neighbours(host, tmp_path):
    """Diagnosed locally, this machine lists the real host's unit process (another PID namespace)
    but must not take it for its own backend."""
    # in the inventory, not --var: fleet's own command line would match the pattern
    inventory = tmp_path / "local.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         "      process_pattern: 'main.py --port 8101 '\n      port: 8199\n"
                         "      service: fleet-no-such-service\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--json", "--format", "json",
         "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    [h] = json.loads(proc.stdout)["hosts"]
    matching = h["facts"]["process"]["matching"]
    assert matching and all("--port 8101" in p["args"] for p in matching)
    assert h["verdict"] == "backend_not_running", h["summary"]
    assert "belongs to another PID namespace" in "\n".join(h["evidence"])


def test_untold_which_app_a_many_app_server_gets_no_guess_and_no_kill(host, bare_run):
    """Nine apps run `python main.py` under units and containers, none on the default port, and
    nginx routes nothing on port 80: told nothing, fleet names no backend and offers to stop none
    of them (each belongs to its own service)."""
    if host.docker_unavailable:
        unavailable(f"dockerd could not start: {host.docker_unavailable}")
    for name, h in bare_run.items():
        assert h["verdict"] == "no_backend_found", (name, h["summary"])
        assert "belong to other services or containers" in h["summary"], name
        assert not any(step["kind"] in ("signal", "start_process") for step in h["fix_steps"]), name
