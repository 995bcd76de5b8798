"""ProxyJump and ProxyCommand from the inventory's ssh arguments and from ssh_config: never around them."""

from __future__ import annotations

import paramiko
import pytest

from fleet.inventory.sshargs import jump
from fleet.models import Host
from fleet.transport.ssh import jump_hosts, resolve_endpoint


def endpoint(vars_: dict, config: str = "", address: str = "target.lan"):
    return resolve_endpoint(Host(name="t", address=address, port=2200, user="ops", vars=vars_, jump=jump(vars_)),
                            paramiko.SSHConfig.from_text(config))


@pytest.mark.parametrize("var, args, command", [
    ("ansible_ssh_common_args", '-o ProxyCommand="ssh -W %h:%p bastion"', "ssh -W target.lan:2200 bastion"),
    ("ansible_ssh_extra_args", "-oProxyCommand='nc %h %p'", "nc target.lan 2200"),
    ("ansible_ssh_args", "-o 'ProxyCommand nc -x proxy:3128 %h %p'", "nc -x proxy:3128 target.lan 2200"),
])
def test_proxy_command_from_ssh_arguments(var, args, command):
    found = endpoint({var: args})
    assert (found.proxy_command, found.jump) == (command, None)


@pytest.mark.parametrize("vars_, hops", [
    ({"ansible_ssh_extra_args": "-J a.lan,root@b.lan:2222"}, [("a.lan", 22), ("b.lan", 2222)]),
    ({"ansible_ssh_extra_args": "-Ja.lan"}, [("a.lan", 22)]),
    ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no", "ansible_ssh_extra_args": "-o ProxyJump=gw"},
     [("gw", 22)]),
    # As on ssh's command line, the first given wins: common args come before extra args.
    ({"ansible_ssh_common_args": "-o ProxyJump=first", "ansible_ssh_extra_args": "-o ProxyCommand=nc %h %p"},
     [("first", 22)]),
])
def test_proxy_jump_from_ssh_arguments(vars_, hops):
    found = endpoint(vars_)
    assert [(hop.hostname, hop.port) for hop in jump_hosts(found.jump)] == hops
    assert found.proxy_command is None


def test_ssh_config_proxy_command_and_none():
    config = "Host target.lan\n  ProxyCommand ssh -W %h:%p gw\nHost direct.lan\n  ProxyCommand none\n"
    assert endpoint({}, config).proxy_command == "ssh -W target.lan:2200 gw"
    assert endpoint({}, config, "direct.lan").proxy_command is None
    # The inventory's arguments win over ssh_config, as with Ansible.
    assert endpoint({"ansible_ssh_extra_args": "-J hop"}, config).proxy_command is None


def test_a_jump_host_behind_its_own_proxy_command_is_reached_through_it():
    config = "Host bastion\n  ProxyCommand nc -x socks:1080 %h %p\n"
    [hop] = jump_hosts(endpoint({"ansible_ssh_common_args": "-J bastion"}, config).jump)
    assert hop.proxy_command == "nc -x socks:1080 bastion 22"
