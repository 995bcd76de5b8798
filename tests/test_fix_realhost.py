"""`fleet fix apply` through the real service managers, on the real server (testfleet/realhost.py).

Two backends of that machine were up and healthy, then stopped through their manager: a systemd
unit (`systemctl stop`) and a container (`docker stop`). The plan for just those two starts each
through its manager; apply runs it over SSH as root (no sudo), verification sees both healthy, and systemd
and docker say the unit is active and the container running, while every other unit and container
on the machine is as it was.

Where systemd-nspawn or dockerd cannot start, the tests say why and skip; with
FLEET_REQUIRE_MANAGERS=1 that is a failure instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testfleet.realhost import SERVICES, RealHost
from tests.test_fix_apply import apply, fleet, journal, outcomes
from tests.test_realhosts import manager_states, real_host, unavailable

PREFIX = os.environ.get("FLEET_FIX_REAL_PREFIX", "fsfx")
SUBNET = os.environ.get("FLEET_FIX_REAL_SUBNET", "198.18.166.0/24")
BY_NAME = {s.name: s for s in SERVICES}
# what each stopped backend's remedy must run: a start through its own manager, nothing else
# (the login is root: no sudo, whatever the report's `sudo systemctl ...` lines say for a human)
STARTS = {"systemd_stopped": ["systemctl start inventory-api"],
          "docker_stopped": ["docker start shipping"]}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    with real_host(tmp_path_factory.mktemp("fixreal") / "host", PREFIX, SUBNET) as real:
        if real.docker_unavailable:
            unavailable(f"dockerd could not start: {real.docker_unavailable}")
        yield real


def others(states: dict[str, str]) -> dict[str, str]:
    return {name: state for name, state in states.items() if name not in STARTS}


def unit_state(host: RealHost, s) -> str:
    if s.manager == "systemd":
        return host.exec(["systemctl", "is-active", "--", s.unit]).stdout.strip()
    return host.docker("inspect", "--format", "{{.State.Status}}", s.unit).stdout.strip()


def answers(host: RealHost, port: int) -> str:
    return host.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                      f"http://127.0.0.1:{port}/health"]).stdout


def test_apply_starts_the_stopped_unit_and_container_through_their_managers(host, tmp_path: Path):
    targets = [BY_NAME[name] for name in STARTS]
    assert [unit_state(host, s) for s in targets] == ["inactive", "exited"]
    before = manager_states(host)

    plan_path = tmp_path / "plan.json"
    proc = fleet("fix", "plan", "-i", str(host.inventory_path), "--known-hosts", str(host.known_hosts_path),
                 "--ssh-config", "/dev/null", "--timeout", "30", "--limit", ":".join(STARTS), "--plan", str(plan_path))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(plan_path.read_text())
    assert plan["left_alone"] == []
    planned = {h["name"]: h for h in plan["fix"]}
    assert {n: (h["verdict"], h["remedy"]["name"]) for n, h in planned.items()} == \
        {name: ("backend_not_running", "start_backend_service") for name in STARTS}
    assert {n: [c["shell"] for c in h["remedy"]["commands"]["steps"]] for n, h in planned.items()} == STARTS
    assert manager_states(host) == before  # planning changed nothing

    out = tmp_path / "out"
    proc = apply(plan_path, out, "--yes", "--max-unhealthy", "100%")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert outcomes(out) == {name: "fixed" for name in STARTS}
    [summary] = out.glob("*.fix.json")
    for h in json.loads(summary.read_text())["hosts"]:
        # the container's app may not listen yet at the first run after `docker start`: K=2 healthy in a row
        assert h["after"] == "healthy" and h["verification"]["ok"], h
        assert h["verification"]["runs"][-2:] == ["healthy", "healthy"], h
    steps = [e for e in journal(out) if e["event"] == "command" and e["phase"] == "step"]
    assert {(e["host"], e["shell"], e["exit_code"]) for e in steps} == \
        {(name, shell, 0) for name, (shell,) in STARTS.items()}

    # what the managers themselves say, and the apps answer
    assert [unit_state(host, s) for s in targets] == ["active", "running"]
    assert [answers(host, s.port) for s in targets] == ["200", "200"]
    assert [answers(host, s.proxy_port) for s in targets] == ["200", "200"]
    after = manager_states(host)
    assert others(after) == others(before)
    assert len(others(before)) == len(before) - len(STARTS)
