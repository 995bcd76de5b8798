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
