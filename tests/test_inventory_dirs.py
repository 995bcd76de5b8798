"""Inventory directories (INI + YAML + scripts merged) and group_vars/ / host_vars/ with Ansible's precedence."""

import os
import shutil
from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory
from tests.test_inventory import FIXTURES, by_name, write

SITE = FIXTURES / "site"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the site fixture, to add files to."""
    return Path(shutil.copytree(SITE, tmp_path / "site"))


# --- directories --------------------------------------------------------------------------------

def test_directory_merges_ini_and_yaml_in_name_order():
    inventory = load_inventory(SITE)
    assert inventory.path == str(SITE)
    # 01-static.ini, then 02-cloud.yml, then nested/03-more.ini.
    assert [host.name for host in inventory.hosts] == ["web01", "web02", "db1", "cache1", "db2"]
    assert list(inventory.groups) == ["all", "ungrouped", "web", "db", "cloud"]
    assert inventory.groups["db"] == ("db1", "db2")
    # The YAML file made the INI groups children of 'cloud'.
    assert by_name(inventory)["web02"].groups == ("cloud", "web")
    assert by_name(inventory)["cache1"].port == 6380


def test_directory_skips_what_ansible_skips(site):
    # Each of these would fail to load if it were read.
    broken = "all: [oops\n[broken\n"
    for name in [".hidden.yml", "old.yml~", "hosts.retry", "README.md", "notes.txt", "ansible.cfg", "hosts.bak",
                 "hosts.orig", "cache.pyc", ".swp.swp"]:
        (site / name).write_text(broken)
    (site / "vars_plugins").mkdir()
    (site / "vars_plugins" / "x.yml").write_text(broken)
    os.mkfifo(site / "pipe")  # reading a FIFO would block forever
    assert [host.name for host in load_inventory(site).hosts] == ["web01", "web02", "db1", "cache1", "db2"]


def test_error_in_a_directory_names_the_file_and_line(site):
    bad = write(site, "[web]\nweb3 broken\n", "04-bad.ini")
    with pytest.raises(InventoryError) as caught:
        load_inventory(site)
    assert (caught.value.path, caught.value.line) == (str(bad), 2)


def test_directory_runs_executables_in_it(site):
    script = site / "05-dynamic.sh"
    script.write_text('#!/bin/sh\necho \'{"web": ["web09"], "_meta": {"hostvars": {"web09": {"rack": 9}}}}\'\n')
    script.chmod(0o755)
    hosts = by_name(load_inventory(site))
    assert hosts["web09"].groups == ("cloud", "web")
    assert hosts["web09"].vars["rack"] == 9


def test_ini_may_name_a_child_declared_in_an_earlier_file(tmp_path):
    write(tmp_path, "all:\n  children:\n    db:\n      hosts:\n        db1:\n", "a.yml")
    write(tmp_path, "[prod:children]\ndb\n", "b.ini")
    assert load_inventory(tmp_path).hosts[0].groups == ("db", "prod")


def test_later_file_overrides_earlier_vars(tmp_path):
    write(tmp_path, "[web]\nweb1 color=red size=1\n[web:vars]\nx=1\n", "a.ini")
    write(tmp_path, "web:\n  vars: {x: 2}\n  hosts:\n    web1: {color: blue}\n", "b.yml")
    host = load_inventory(tmp_path).hosts[0]
    assert host.vars == {"x": 2, "color": "blue", "size": 1}


def test_symlink_loop_in_directory_ends(tmp_path):
    write(tmp_path, "[web]\nweb1\n", "hosts.ini")
    (tmp_path / "loop").symlink_to(tmp_path)
    assert [host.name for host in load_inventory(tmp_path).hosts] == ["web1"]


def test_directory_of_empty_files_is_empty_with_a_warning(tmp_path):
    write(tmp_path, "# nothing\n", "a.ini")
    write(tmp_path, "", "b.yml")
    inventory = load_inventory(tmp_path)
    assert inventory.hosts == ()
    assert inventory.warnings == (f"{tmp_path}: inventory is empty: it lists no hosts or groups",)


# --- group_vars/ and host_vars/ -----------------------------------------------------------------

@pytest.fixture(scope="module")
def site_hosts():
    return by_name(load_inventory(SITE))


def test_group_vars_directory_files_merge_in_name_order_recursively(site_hosts):
    web = site_hosts["web02"]
    assert web.vars["http_port"] == 8080          # 20-override.yaml after 10-main.yml; .hidden.yml skipped
    assert web.vars["from_subdirectory"] is True  # sub/more.yml
    assert "ansible_group_priority" not in web.vars


def test_group_vars_beat_the_inventory_for_the_same_group(site_hosts):
    assert site_hosts["web02"].vars["level"] == "group_vars-web"   # over [web:vars] level=inventory-web
    assert site_hosts["web02"].vars["role"] == "frontend"          # inventory var not overridden stays


def test_group_vars_all_beats_deeper_inventory_group_vars(tmp_path):
    # Ansible's order: all inventory-file group vars < group_vars/all < group_vars/<group>.
    write(tmp_path, "[web]\nweb1\n[web:vars]\nx=inventory-web\ny=inventory-web\n", "hosts.ini")
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars", "x: group_vars-all\ny: group_vars-all\n", "all.yml")
    write(tmp_path / "group_vars", "y: group_vars-web\n", "web.yaml")
    assert load_inventory(tmp_path / "hosts.ini").hosts[0].vars == {"x": "group_vars-all", "y": "group_vars-web"}


def test_group_vars_keep_depth_order(site_hosts):
    # web is deeper than cloud (cloud -> web), so group_vars/web beats group_vars/cloud.json.
    assert site_hosts["web02"].vars["level"] == "group_vars-web"
    assert site_hosts["cache1"].vars["level"] == "group_vars-cloud"
    assert site_hosts["cache1"].vars["region"] == "eu-west"  # a tab-indented JSON file


def test_group_vars_file_without_extension_wins_the_lookup(site_hosts):
    assert site_hosts["db1"].vars["level"] == "group_vars-db"
    assert "shadowed" not in site_hosts["db1"].vars


def test_group_vars_for_unknown_groups_are_ignored(site_hosts):
    assert all("not_applied" not in host.vars for host in site_hosts.values())


def test_host_vars_beat_everything_in_the_inventory(site_hosts):
    web01 = site_hosts["web01"]
    assert web01.vars["level"] == "host_vars-web01"   # over 'level=inventory-host' on its INI line
    assert web01.user == "web-admin"                  # connection settings come from files too
    assert web01.address == "192.0.2.11"


def test_vault_encrypted_vars_file_is_skipped(site_hosts):
    # host_vars/db1 is wholly encrypted; fleet cannot decrypt it, and db1 still loads.
    assert site_hosts["db1"].vars["level"] == "group_vars-db"


def test_vault_encrypted_vars_file_is_reported(tmp_path):
    write(tmp_path, "[db]\ndb1\n", "hosts.ini")
    (tmp_path / "group_vars").mkdir()
    vaulted = write(tmp_path / "group_vars", "$ANSIBLE_VAULT;1.1;AES256\n6231336539\n", "db.yml")
    inventory = load_inventory(tmp_path / "hosts.ini")
    assert inventory.hosts[0].vars == {}
    [warning] = inventory.warnings
    assert warning.startswith(f"{vaulted}: skipped: the whole file is encrypted with Ansible Vault")


def test_group_vars_beside_a_single_file(tmp_path):
    inventory = write(tmp_path, "all:\n  hosts:\n    h1:\n      x: inventory\n", "hosts.yml")
    (tmp_path / "group_vars" / "ungrouped").mkdir(parents=True)
    write(tmp_path / "group_vars" / "ungrouped", "y: from-ungrouped\n", "main.yml")
    (tmp_path / "host_vars").mkdir()
    write(tmp_path / "host_vars", "x: host_vars\nansible_port: 2200\n", "h1.yml")
    host = load_inventory(inventory).hosts[0]
    assert (host.vars, host.port) == ({"x": "host_vars", "y": "from-ungrouped"}, 2200)


def test_relative_inventory_path_finds_group_vars(tmp_path, monkeypatch):
    write(tmp_path, "[web]\nweb1\n", "hosts")
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars", "x: 1\n", "web.yml")
    monkeypatch.chdir(tmp_path)
    assert load_inventory("hosts").hosts[0].vars == {"x": 1}


def test_host_names_cannot_reach_outside_host_vars(tmp_path):
    (tmp_path / "inv" / "host_vars").mkdir(parents=True)
    write(tmp_path, "secret: leaked\n", "outside.yml")
    write(tmp_path / "inv", "all:\n  hosts:\n    ../../outside.yml:\n    ..:\n", "hosts.yml")
    assert all(host.vars == {} for host in load_inventory(tmp_path / "inv" / "hosts.yml").hosts)


def test_vault_value_in_a_vars_file_fails_only_when_used(tmp_path):
    write(tmp_path, "[web]\nweb1\n", "hosts.ini")
    (tmp_path / "group_vars").mkdir()
    vars_file = write(tmp_path / "group_vars", """
        ansible_become_password: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          6231
        db_password: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          6231
    """, "web.yml")
    web1 = load_inventory(tmp_path / "hosts.ini").hosts[0]
    # Kept encrypted: ansible_become_password is dropped unread; db_password stays, unusable, with
    # where it was set, for a runbook that needs it to fail that host (see test_diagnose_problems).
    assert web1.problem is None
    assert web1.vars["db_password"].reason == "encrypted with Ansible Vault (line 4), which fleet cannot decrypt"
    assert str(vars_file).endswith("web.yml")


VARS_FILE_ERRORS = {
    "yaml syntax": ("web.yml", "x: 1\ny: [2\n", 3, "invalid YAML"),
    "a list": ("web.yml", "- x\n- y\n", 1, "variables file must be a mapping"),
    "list as a name": ("web", "[80]: http\n", 1, "variable names must be strings"),
    "bad port": ("web.yaml", "ansible_port: 99999\n", 1, "must be a port number"),
    "bad json": ("web.json", '{\n\t"x": 1\n\t"y": 2\n}\n', 3, "invalid JSON"),  # tabs: not YAML either
}


@pytest.mark.parametrize("name, text, line, message", VARS_FILE_ERRORS.values(), ids=VARS_FILE_ERRORS.keys())
def test_bad_vars_file_names_its_file_and_line(tmp_path, name, text, line, message):
    write(tmp_path, "[web]\nweb1\n", "hosts.ini")
    (tmp_path / "group_vars").mkdir()
    vars_file = tmp_path / "group_vars" / name
    vars_file.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path / "hosts.ini")
    assert message in caught.value.message
    assert (caught.value.path, caught.value.line) == (str(vars_file), line)


def test_non_utf8_vars_file(tmp_path):
    write(tmp_path, "[web]\nweb1\n", "hosts.ini")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "web1.yml").write_bytes(b"x: 1\ny: caf\xe9\n")
    with pytest.raises(InventoryError, match="not valid UTF-8") as caught:
        load_inventory(tmp_path / "hosts.ini")
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "host_vars" / "web1.yml"), 2)
