"""What the unit probe's facts make of real systemd and docker output (captured on the real test
host, tests/fixtures/parsers/service_state/*). That each fixture still matches its probe's shell
is checked with the other fixtures (tests/test_parsers.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fleet.models import ProbeOutput
from fleet.parsers import PARSERS
from fleet.runbook import host_params, load_runbook

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"
RUNBOOK = load_runbook("502")


def facts(case: str):
    base = FIXTURES / "service_state" / case
    params = host_params(RUNBOOK, json.loads(base.with_suffix(".params.json").read_text()), {})
    return PARSERS["service_state"](ProbeOutput(case, 0, base.with_suffix(".txt").read_text(), "", None), params)


def pids(service_facts, *, own: bool) -> set[int]:
    everyone = [SimpleNamespace(pid=o.pid, args="") for o in service_facts.owners]
    chosen = service_facts.own(everyone) if own else service_facts.neighbours(everyone)
    return {p.pid for p in chosen}


def test_active_unit_owns_only_its_cgroups_process() -> None:
    unit = facts("systemd_unit_active_not_listening")
    assert unit.manager == "systemd" and unit.active and unit.main_pid
    assert pids(unit, own=True) == {unit.main_pid}
    assert len(pids(unit, own=False)) == len(unit.owners) - 1  # the other unit's and the container's


def test_failed_unit_owns_nothing_and_says_why() -> None:
    unit = facts("systemd_unit_failed_start_limit")
    assert (unit.active, unit.active_state, unit.result, unit.restarts) == (False, "failed", "exit-code", 3)
    assert unit.state == "failed (failed, result exit-code)"
    assert pids(unit, own=True) == set()
    text = unit.neighbour_evidence(SimpleNamespace(pid=o.pid, args="x") for o in unit.owners)
    assert "belongs to unit orders-api.service" in text and "belongs to container" in text


def test_running_container_owns_its_process_in_its_own_pid_namespace() -> None:
    docker = facts("docker_running_other_pidns")
    assert docker.manager == "docker" and docker.container_up
    [own] = [o for o in docker.owners if o.container_id == docker.container_id]
    assert own.pidns != docker.self_pidns
    assert pids(docker, own=True) == {own.pid}


@pytest.mark.parametrize("case, state", [
    ("docker_exited_with_neighbours", "exited (exit code 1)"),
    ("docker_oom_killed", "OOM-killed (exited, exit code 137, memory limit 48 MiB)"),
    ("docker_restarting", "restarting (crash loop: exit code 1, 7 restarts)"),
])
def test_stopped_containers_own_none_of_their_neighbours_processes(case: str, state: str) -> None:
    docker = facts(case)
    assert docker.owners and pids(docker, own=True) == set()
    assert not docker.active and docker.state == state


def test_restarting_container_is_not_up_though_docker_says_running() -> None:
    docker = facts("docker_restarting")
    assert docker.container_running and docker.container_restarting and not docker.container_up


def test_restarting_container_owns_no_process_caught_between_its_crashes() -> None:
    # Found on the real host: ps sometimes catches the crash-looping container's process alive for
    # a moment (an owner this probe never saw), which made the host "runs but does not listen".
    docker = facts("docker_restarting")
    caught = SimpleNamespace(pid=max(o.pid for o in docker.owners) + 1)
    assert docker.owner(caught.pid) is None and docker.own([caught]) == ()
    assert not facts("docker_exited_with_neighbours").container_restarting


@pytest.mark.parametrize("header, owns_unlisted", [
    ("listed=all", False),  # ps answered: a process it did not list had ended (seen in a crash loop)
    ("listed=", True),      # ps failed: nothing is known of the process, it may be the backend
    ("", True),             # output of a probe from before the attribute
])
def test_a_process_missing_from_a_complete_listing_had_ended(header: str, owns_unlisted: bool) -> None:
    base = FIXTURES / "service_state" / "systemd_unit_active"
    text = base.with_suffix(".txt").read_text().replace(" listed=all ==", f" {header} ==".replace("  ", " "))
    params = host_params(RUNBOOK, json.loads(base.with_suffix(".params.json").read_text()), {})
    unit = PARSERS["service_state"](ProbeOutput("unit", 0, text, "", None), params)
    unlisted = SimpleNamespace(pid=max(o.pid for o in unit.owners) + 1)
    assert unit.owners_complete is not owns_unlisted
    assert bool(unit.own([unlisted])) is owns_unlisted


def test_compose_labels_are_read_and_the_missing_cli_noted() -> None:
    docker = facts("docker_compose_labels_no_cli")
    assert (docker.compose_project, docker.compose_service, docker.compose_cli) == ("shop", "web", False)


def test_compose_labels_that_are_not_compose_names_are_dropped() -> None:
    text = (FIXTURES / "service_state/docker_compose_labels_no_cli.txt").read_text()
    hostile = text.replace("compose_project=shop", "compose_project=shop;reboot").replace(
        "compose_service=web", "compose_service=$(id)")
    got = PARSERS["service_state"](ProbeOutput("x", 0, hostile, "", None), {"service": "shop-web-1"})
    assert (got.compose_project, got.compose_service) == (None, None)


def test_a_process_outside_the_services_container_is_named_by_its_cgroup() -> None:
    text = (FIXTURES / "service_state/docker_running_other_pidns.txt").read_text()
    self_ns = facts("docker_running_other_pidns").self_pidns
    by_hand = text.rstrip("\n") + f"\npid=4242 pidns={self_ns} cgroup=/user.slice/user-0.slice/session-3.scope\n"
    docker = PARSERS["service_state"](ProbeOutput("x", 0, by_hand, "", None), {"service": "catalog"})
    assert not docker.belongs(4242)
    assert docker.neighbour_evidence([SimpleNamespace(pid=4242, args="python main.py")]) == (
        "not this service's: pid 4242 belongs to cgroup /user.slice/user-0.slice/session-3.scope, "
        "not container catalog: python main.py")
