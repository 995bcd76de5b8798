"""ssh_config with Include, and how its settings merge with the inventory's (the inventory wins)."""

from __future__ import annotations

import pytest

from fleet.errors import InputError
from fleet.inventory.sshargs import jump
from fleet.models import Host
from fleet.transport.ssh import resolve_endpoint
from fleet.transport.sshconfig import load_ssh_config


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "config").write_text("Include conf.d/*.conf\n\nHost *\n  User fallback\n")
    (tmp_path / "conf.d" / "10-web.conf").write_text(
        "Host web1\n  HostName 192.0.2.1\n  Port 2222\n  User deploy\n  IdentityFile ~/.ssh/web\n"
        "  ProxyJump ops@bastion.example.com:2200\n")
    (tmp_path / "conf.d" / "20-bastion.conf").write_text("Host bastion.example.com\n  HostName 192.0.2.9\n")
    return tmp_path


def test_include_is_expanded_with_globs_relative_to_the_config(config_dir):
    config = load_ssh_config(str(config_dir / "config"))
    found = config.lookup("web1")
    assert (found["hostname"], found["port"], found["user"]) == ("192.0.2.1", "2222", "deploy")
    assert config.lookup("db1")["user"] == "fallback"


def test_include_cycles_are_an_error_not_a_hang(tmp_path):
    (tmp_path / "a").write_text("Include b\n")
    (tmp_path / "b").write_text("Include a\n")
    with pytest.raises(InputError, match="nested deeper"):
        load_ssh_config(str(tmp_path / "a"))


def test_missing_config_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ssh_config(str(tmp_path / "nope"))


def test_ssh_config_fills_what_the_inventory_leaves_out(config_dir):
    endpoint = resolve_endpoint(Host("web1", "web1"), load_ssh_config(str(config_dir / "config")))
    assert (endpoint.hostname, endpoint.port, endpoint.user) == ("192.0.2.1", 2222, "deploy")
    assert endpoint.key_files[0].endswith("/.ssh/web")
    jump = endpoint.jump
    assert (jump.hostname, jump.port, jump.user, jump.jump) == ("192.0.2.9", 2200, "ops", None)


def test_inventory_wins_over_ssh_config(config_dir):
    host = Host("web1", "web1", port=22, user="root", key_file="/keys/id",
                vars={"ansible_ssh_common_args": "-o ProxyJump=none"}, jump=jump({"ansible_ssh_common_args": "-o ProxyJump=none"}))
    endpoint = resolve_endpoint(host, load_ssh_config(str(config_dir / "config")))
    assert (endpoint.port, endpoint.user, endpoint.key_files[0], endpoint.jump) == (22, "root", "/keys/id", None)


def test_chained_jumps_keep_their_order(config_dir):
    args = {"ansible_ssh_common_args": "-J first.example:2201,second.example"}
    host = Host("t", "10.9.9.9", vars=args, jump=jump(args))
    endpoint = resolve_endpoint(host, load_ssh_config(str(config_dir / "config")))
    assert endpoint.jump.hostname == "second.example"
    assert (endpoint.jump.jump.hostname, endpoint.jump.jump.port) == ("first.example", 2201)


def test_match_exec_runs_its_command_as_openssh_does(tmp_path):
    """paramiko is imported without invoke; a config with `Match exec` gets it back for its lookups.
    (In a child process: invoke's runner reads stdin, which pytest's capture refuses.)"""
    import subprocess
    import sys

    flag = tmp_path / "on-vpn"
    (tmp_path / "config").write_text(f'Match host web1 exec "test -e {flag}"\n  HostName 10.0.0.1\n'
                                     "Host web1\n  HostName 192.0.2.1\n")
    code = ("import sys; from fleet.transport.sshconfig import load_ssh_config as load; "
            "print(load(sys.argv[1]).lookup('web1')['hostname'])")
    names = []
    for _ in range(2):  # the command fails (no match), then passes
        names.append(subprocess.run([sys.executable, "-c", code, str(tmp_path / "config")], capture_output=True,
                                    text=True, check=True, stdin=subprocess.DEVNULL).stdout.strip())
        flag.touch()
    assert names == ["192.0.2.1", "10.0.0.1"]


def test_connecting_code_does_not_import_invoke():
    """invoke (asyncio, unittest.mock...) costs 35 ms and 7 MB per run and serves `Match exec` alone."""
    import subprocess
    import sys

    code = ("import sys, fleet.transport.ssh, fleet.transport.sshconfig as c, os; c.load_ssh_config(os.devnull); "
            "print('invoke' in sys.modules, 'fabric' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
