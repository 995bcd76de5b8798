"""fleet reads inventories the way ansible-core does: fixtures written for fleet, answers recorded from Ansible.

Each directory under fixtures/inventories/ansible holds an inventory (templates, proxies, unsupported
connections, inline vault, a name both host and group, a dynamic inventory, TOML, what Ansible warns
about and reads past, what it refuses) and ansible.json, ansible-core 2.19's own answer recorded by
record.py there. Nothing here runs Ansible.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import paramiko
import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory
from fleet.models import Connection, TransportStatus, Unusable
from fleet.patterns import select
from fleet.transport.ssh import jump_hosts, resolve_endpoint

CASES = Path(__file__).parent / "fixtures" / "inventories" / "ansible"
SSH_PLUGINS = ("ssh", "paramiko", "smart")


def recorded(case: str) -> tuple[Path, dict]:
    answer = json.loads((CASES / case / "ansible.json").read_text())
    return CASES / case / answer["inventory"], answer


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "ansible.json").exists())


@pytest.mark.parametrize("case", case_names())
def test_hosts_groups_connections_and_variables_as_ansible(case):
    path, answer = recorded(case)
    if answer["error"]:
        with pytest.raises(InventoryError):
            load_inventory(path)
        return
    inventory = load_inventory(path)
    hosts = {host.name: host for host in inventory.hosts}
    assert set(hosts) == set(answer["hosts"])
    no_config = paramiko.SSHConfig.from_text("")
    for name, want in answer["hosts"].items():
        host = hosts[name]
        assert sorted(host.groups) == want["groups"], name
        for var, value in want["vars"].items():
            if isinstance(value, dict) and set(value) == {"error"}:
                assert isinstance(host.vars[var], Unusable), (name, var)
            else:
                assert host.vars[var] == value, (name, var)
        if want["connection"] not in SSH_PLUGINS:
            expected = Connection.LOCAL if want["connection"] == "local" else Connection.UNSUPPORTED
            assert host.connection is expected, name
            if expected is Connection.UNSUPPORTED:
                assert host.plugin == want["connection"]
                assert host.problem.status is TransportStatus.UNSUPPORTED_CONNECTION
            continue
        if isinstance(want["user"], dict):  # a setting Ansible cannot render fails this host only
            assert host.problem.status is TransportStatus.INVENTORY_ERROR and "ansible_user" in host.problem.reason
            continue
        assert host.problem is None, name
        endpoint = resolve_endpoint(host, no_config)
        assert (endpoint.hostname, endpoint.port, endpoint.user) == (
            want["address"], want["port"] or 22, want["user"] or getpass.getuser()), name
        proxy = want["proxy"] or {}
        hops = [re.sub(r"^[^@]*@", "", hop).split(":")[0] for hop in proxy.get("jump", [])]
        assert [hop.hostname for hop in jump_hosts(endpoint.jump)] == hops, name
        command = proxy.get("command")
        if command:
            command = command.replace("%h", endpoint.hostname).replace("%p", str(endpoint.port))
        assert endpoint.proxy_command == command, name


@pytest.mark.parametrize("case, pattern", [(case, pattern) for case in case_names()
                                           for pattern in recorded(case)[1]["limits"]])
def test_patterns_select_what_ansible_selects(case, pattern):
    path, answer = recorded(case)
    inventory = load_inventory(path)
    want = answer["limits"][pattern]
    if isinstance(want, dict):
        if "subscripted" in want["error"]:
            with pytest.raises(InventoryError, match="subscripted pattern"):
                select(inventory, pattern)
        else:  # Ansible ends a run that targets no host; fleet's select is empty and the command says so
            assert select(inventory, pattern) == ()
        return
    assert sorted(host.name for host in select(inventory, pattern)) == sorted(want)
