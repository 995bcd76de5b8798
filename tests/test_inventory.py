import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import textfile as inventory_files
from fleet.errors import InventoryError
from fleet.inventory import Inventory, load_inventory
from fleet.models import Connection, Host
from tests.conftest import only_inventory_errors

FIXTURES = Path(__file__).parent / "fixtures" / "inventories"


def write(tmp_path: Path, text: str, name: str = "hosts.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def by_name(inventory: Inventory) -> dict[str, Host]:
    return {host.name: host for host in inventory.hosts}


@pytest.fixture(scope="module")
def production() -> Inventory:
    return load_inventory(FIXTURES / "production.yml")


@pytest.fixture(scope="module")
def precedence() -> dict[str, Host]:
    return by_name(load_inventory(FIXTURES / "precedence.yml"))


# --- hosts and groups ---------------------------------------------------------------------------

def test_hosts_are_in_file_order_and_listed_once(production):
    assert [host.name for host in production.hosts] == [
        "bastion.example.com", "localhost",
        "web01.example.com", "web02.example.com", "web03.example.com", "web04.example.com",
        "db-a.example.com", "db-b.example.com", "db-c.example.com",
        "mon01.example.com",
        "batch00.example.com", "batch10.example.com", "batch20.example.com",
    ]
    assert production.path == str(FIXTURES / "production.yml")


def test_groups_include_all_and_ungrouped(production):
    groups = production.groups
    assert list(groups) == ["all", "ungrouped", "web", "db", "monitoring", "batch"]
    assert groups["all"] == tuple(host.name for host in production.hosts)
    assert groups["ungrouped"] == ("bastion.example.com", "localhost")
    assert groups["monitoring"] == ("web01.example.com", "mon01.example.com")
    assert groups["db"] == ("db-a.example.com", "db-b.example.com", "db-c.example.com")


def test_host_in_two_groups_is_one_host_with_both(production):
    web01 = by_name(production)["web01.example.com"]
    assert web01.groups == ("monitoring", "web")
    assert web01.vars["http_port"] == 8080
    assert web01.vars["prometheus_scrape"] is True


def test_host_groups_exclude_all_and_name_ungrouped(production):
    hosts = by_name(production)
    assert hosts["bastion.example.com"].groups == ("ungrouped",)
    assert hosts["db-a.example.com"].groups == ("db",)


def test_connection_variables_map_to_host_fields(production):
    hosts = by_name(production)
    bastion = hosts["bastion.example.com"]
    assert (bastion.address, bastion.port, bastion.user) == ("203.0.113.10", 2222, "deploy")
    assert bastion.key_file == os.path.expanduser("~/.ssh/fleet_ed25519")
    assert not bastion.key_file.startswith("~")
    assert bastion.connection is Connection.SSH
    web02 = hosts["web02.example.com"]
    assert (web02.address, web02.port) == ("web02.example.com", None)
    assert hosts["db-b.example.com"].user == "postgres"
    assert hosts["mon01.example.com"].address == "10.0.5.20"


def test_ansible_connection_local(production):
    hosts = by_name(production)
    assert hosts["localhost"].connection is Connection.LOCAL
    assert hosts["web01.example.com"].connection is Connection.SSH


@pytest.mark.parametrize("value, expected", [
    ("local", Connection.LOCAL), ("ansible.builtin.local", Connection.LOCAL),
    ("ssh", Connection.SSH), ("paramiko", Connection.SSH), ("smart", Connection.SSH),
])
def test_connection_plugins(tmp_path, value, expected):
    path = write(tmp_path, f"""
        all:
          hosts:
            box:
              ansible_connection: {value}
    """)
    assert load_inventory(path).hosts[0].connection is expected


def test_vars_keep_only_the_listed_ansible_variables(production):
    db = by_name(production)["db-a.example.com"]
    assert db.vars == {
        "ntp_server": "ntp1.example.com",
        "disk_warn_pct": 70,
        "ansible_become": True,
        "ansible_become_user": "postgres",
        "ansible_ssh_common_args": "-o ProxyJump=bastion.example.com",
    }


def test_vault_encrypted_variable_fleet_never_uses_does_not_break_loading(production):
    # ansible_become_password is !vault in the fixture and is dropped, not decrypted.
    assert "ansible_become_password" not in by_name(production)["db-c.example.com"].vars


def test_top_level_groups_bare_strings_and_null_group():
    inventory = load_inventory(FIXTURES / "top_level_groups.yml")
    hosts = by_name(inventory)
    assert list(hosts) == ["www1.example.com", "www2.example.com", "db1.example.com"]
    assert inventory.groups["datacenter"] == ("www1.example.com", "www2.example.com", "db1.example.com")
    assert inventory.groups["empty_group"] == ()
    assert inventory.groups["ungrouped"] == ()
    assert hosts["db1.example.com"].groups == ("datacenter", "dbservers")
    assert hosts["www2.example.com"].address == "192.0.2.12"
    # webservers (depth 2, under datacenter) > datacenter > all, wherever 'all' sits in the file.
    assert hosts["www1.example.com"].vars == {"http_port": 80, "dc": "ams1"}
    assert hosts["db1.example.com"].vars == {"http_port": 8000, "dc": "ams1"}


def test_host_with_null_value_and_repeated_host_vars_merge(tmp_path):
    path = write(tmp_path, """
        all:
          hosts:
            app1:
              color: blue
              size: 1
          children:
            apps:
              hosts:
                app1:
                  size: 2
                app2: ~
    """)
    hosts = by_name(load_inventory(path))
    assert hosts["app1"].vars == {"color": "blue", "size": 2}
    assert hosts["app2"].vars == {}
    assert hosts["app1"].groups == ("apps",)


def test_yaml_anchors_and_merge_keys(tmp_path):
    path = write(tmp_path, """
        all:
          hosts:
            a1: &defaults
              ansible_user: ops
              tier: gold
            a2:
              <<: *defaults
              tier: silver
    """)
    hosts = by_name(load_inventory(path))
    assert (hosts["a2"].user, hosts["a2"].vars) == ("ops", {"tier": "silver"})


def test_host_port_shorthand_and_ipv6(tmp_path):
    path = write(tmp_path, """
        all:
          hosts:
            db1.example.com:5432:
            "[2001:db8::7]:2200":
            2001:db8::8:
            web1.example.com:2201:
              ansible_port: 2202
    """)
    hosts = by_name(load_inventory(path))
    assert hosts["db1.example.com"].port == 5432
    assert (hosts["2001:db8::7"].address, hosts["2001:db8::7"].port) == ("2001:db8::7", 2200)
    assert hosts["2001:db8::8"].port is None
    assert hosts["web1.example.com"].port == 2202


def test_names_are_kept_as_written(tmp_path):
    # PyYAML reads 1e3 (no dot) as text, as Ansible's loader does; a quoted 'yes' stays text.
    path = write(tmp_path, """
        "yes":
          hosts:
            1e3:
    """)
    inventory = load_inventory(path)
    assert inventory.hosts[0].name == "1e3"
    assert inventory.hosts[0].groups == ("yes",)


@pytest.mark.parametrize("text, line, shown", [
    ("all:\n  hosts:\n    1234:\n", 3, "1234"),           # Ansible: "Host pattern 1234 must be a string"
    ("all:\n  hosts:\n    1.5:\n", 3, "1.5"),
    ("all:\n  children:\n    yes:\n", 3, "yes"),          # a group YAML reads as a boolean
    ("all:\n  hosts:\n    2024-01-02:\n", 3, "2024-01-02"),
])
def test_names_yaml_reads_as_numbers_are_refused_like_ansible(tmp_path, text, line, shown):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError, match=f"name {shown} must be a string") as caught:
        load_inventory(path)
    assert caught.value.line == line


def test_accepts_pathlike_and_str(tmp_path):
    path = write(tmp_path, "all:\n  hosts:\n    h1:\n")
    assert load_inventory(str(path)) == load_inventory(path)


# --- ranges -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("web[01:03].example.com", ["web01.example.com", "web02.example.com", "web03.example.com"]),
    ("web[8:10]", ["web8", "web9", "web10"]),
    ("web[1:20:5]", ["web1", "web6", "web11", "web16"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("n[:2]", ["n0", "n1", "n2"]),
    ("r[1:2]-u[a:b]", ["r1-ua", "r1-ub", "r2-ua", "r2-ub"]),
    ("10.0.0.[1:3]", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
])
def test_host_ranges(tmp_path, pattern, expected):
    path = write(tmp_path, f"""
        all:
          hosts:
            "{pattern}":
              rack: r1
    """)
    hosts = load_inventory(path).hosts
    assert [host.name for host in hosts] == expected
    assert all(host.vars == {"rack": "r1"} for host in hosts)


# --- precedence ---------------------------------------------------------------------------------

def test_precedence_host_over_child_over_parent_over_all(precedence):
    assert precedence["par-web01"].vars["level"] == "host"
    assert precedence["par-web02"].vars["level"] == "paris"
    assert precedence["eu-jump01"].vars["level"] == "europe"
    assert precedence["shared01"].vars["level"] == "all"
    assert precedence["par-web02"].vars["only_europe"] == "from-europe"
    assert precedence["par-web02"].vars["only_all"] == "from-all"
    assert precedence["ams-web01"].vars["level"] == "amsterdam"
    assert precedence["par-web02"].groups == ("europe", "paris")


def test_sibling_groups_merge_in_name_order(precedence):
    shared = precedence["shared01"]
    assert shared.groups == ("rack_alpha", "rack_beta")
    assert shared.vars["rack"] == "beta"
    assert shared.vars["rack_alpha_only"] is True


def test_deeper_group_wins_regardless_of_name_and_file_order(precedence):
    assert precedence["nested01"].vars["role"] == "child"


def test_group_priority_beats_name_order(precedence):
    prio = precedence["prio01"]
    assert prio.vars["owner"] == "a_team"
    assert "ansible_group_priority" not in prio.vars


def test_depth_is_the_longest_path_from_all(tmp_path):
    # 'shared' is both a direct child of all and a grandchild; as a grandchild it outranks 'mid'.
    path = write(tmp_path, """
        all:
          children:
            shared:
              vars: {x: shared}
            top:
              children:
                mid:
                  vars: {x: mid}
                  hosts: {h1: }
                  children:
                    shared:
                      hosts: {h1: }
    """)
    assert load_inventory(path).hosts[0].vars["x"] == "shared"


def test_connection_variables_follow_precedence(tmp_path):
    path = write(tmp_path, """
        all:
          vars:
            ansible_user: root
            ansible_port: 22
          children:
            legacy:
              vars:
                ansible_user: admin
                ansible_port: "2022"
              hosts:
                old1:
                old2:
                  ansible_user: oper
    """)
    hosts = by_name(load_inventory(path))
    assert (hosts["old1"].user, hosts["old1"].port) == ("admin", 2022)
    assert hosts["old2"].user == "oper"


def test_old_ssh_variable_names_win_over_new_ones_like_ansible_ssh_plugin(tmp_path):
    # The ssh plugin lists ansible_ssh_* after ansible_*, so it wins even from a lower level.
    path = write(tmp_path, """
        all:
          vars:
            ansible_ssh_port: 2200
            ansible_ssh_host: 192.0.2.50
          hosts:
            old1:
              ansible_port: 22
              ansible_host: 192.0.2.1
              ansible_private_key_file: /keys/old1
    """)
    host = load_inventory(path).hosts[0]
    assert (host.port, host.address, host.key_file) == (2200, "192.0.2.50", "/keys/old1")


# --- errors -------------------------------------------------------------------------------------

ERROR_CASES = {
    "yaml syntax": ("""
        all:
          hosts:
            web1:
              tags: [a, b
            web2:
        """, 5, "invalid YAML"),
    "top level list": ("""
        - web1
        - web2
        """, 1, "mapping of group names"),
    "child group is a list": ("""
        all:
          children:
            web:
              - web1
        """, 4, "group 'web' must be a mapping"),
    "hosts is a list": ("""
        all:
          children:
            web:
              hosts:
                - web1
                - web2
        """, 5, "'hosts' of group 'web' must be a mapping"),
    "children is a list": ("""
        all:
          children:
            - web
        """, 3, "'children' of group 'all' must be a mapping"),
    "host vars a list": ("""
        all:
          hosts:
            web1:
              - ansible_port: 22
        """, 4, "vars of host 'web1' must be a mapping"),
    "bad range": ("""
        all:
          hosts:
            web1:
            web[1:x].example.com:
        """, 4, "bad host range"),
    "range widths differ": ("""
        all:
          hosts:
            web[01:100]:
        """, 3, "same width"),
    "range unbalanced": ("""
        all:
          hosts:
            "web[1:3":
        """, 3, "unbalanced"),
    "range step zero": ("""
        all:
          hosts:
            web[1:9:0]:
        """, 3, "step below 1"),
    "range too big": ("""
        all:
          hosts:
            web[0:9999999]:
        """, 3, "more than"),
    "port too big": ("""
        all:
          vars:
            ntp_server: ntp1
          hosts:
            web1:
              ansible_port: 70000
        """, 6, "ansible_port of host 'web1' must be a port number"),
    "port not a number": ("""
        all:
          children:
            web:
              vars:
                ansible_port: ssh
              hosts:
                web1:
        """, 5, "must be a port number"),
    "port is a bool": ("""
        all:
          hosts:
            web1:
              ansible_port: true
        """, 4, "must be a port number"),
    "port zero in host key": ("""
        all:
          hosts:
            web1:
            web2:0:
        """, 4, "must be a port number"),
    "address not a string": ("""
        all:
          hosts:
            web1:
              ansible_host: [10.0.0.1]
        """, 4, "ansible_host of host 'web1' must be a non-empty string"),
    "cycle": ("""
        all:
          children:
            a:
              children:
                b:
            b:
              children:
                a:
        """, 8, "cycle: a -> b -> a"),
    "self cycle": ("""
        all:
          children:
            loop:
              children:
                loop:
        """, 5, "cycle: loop -> loop"),
    "bad priority": ("""
        all:
          children:
            web:
              vars:
                ansible_group_priority: high
              hosts:
                web1:
        """, 5, "ansible_group_priority of group 'web' must be an integer"),
    "bad tagged value": ("""
        all:
          hosts:
            db1:
              max_conn: !!int lots
        """, 4, "variable 'max_conn'"),
    "unknown tag": ("""
        all:
          hosts:
            db1:
              conf: !include db.yml
        """, 4, "variable 'conf'"),
    "empty group name": ("""
        all:
          children:
            "":
              hosts:
                web1:
        """, 3, "group name must be a non-empty string"),
    "two documents": ("""
        all:
          hosts:
            web1:
        ---
        all:
        """, 4, "invalid YAML"),
}


@pytest.mark.parametrize("text, line, message", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_malformed_inventory_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    error = caught.value
    assert message in error.message
    assert (error.path, error.line) == (str(path), line)
    assert str(error).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n", "{}\n"])
def test_empty_inventory_is_read_with_a_warning_like_ansible(tmp_path, text):
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    inventory = load_inventory(path)
    assert inventory.hosts == ()
    assert inventory.warnings == (f"{path}: inventory is empty: it lists no hosts or groups",)


def test_control_character_names_its_line(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    web\x07:\n")
    with pytest.raises(InventoryError, match="invalid YAML") as caught:
        load_inventory(path)
    assert caught.value.line == 3


def test_non_utf8_names_its_line(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_bytes(b"all:\n  hosts:\n    caf\xe9.example.com:\n")
    with pytest.raises(InventoryError, match="not valid UTF-8") as caught:
        load_inventory(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yml"
    with pytest.raises(InventoryError, match="not found") as caught:
        load_inventory(path)
    assert caught.value.path == str(path)


def test_empty_directory(tmp_path):
    # A directory is an inventory (see test_inventory_dirs.py), but this one has nothing in it.
    with pytest.raises(InventoryError, match="holds no inventory files") as caught:
        load_inventory(tmp_path)
    assert caught.value.path == str(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "all:\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Tests often run as root, where chmod 000 does not stop reading.
    monkeypatch.setattr(inventory_files, "open", refuse, raising=False)
    with pytest.raises(InventoryError, match="permission denied") as caught:
        load_inventory(path)
    assert caught.value.path == str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_by_mode(tmp_path):
    path = write(tmp_path, "all:\n")
    path.chmod(0)
    with pytest.raises(InventoryError, match="permission denied"):
        load_inventory(path)


def test_deep_nesting_is_an_inventory_error(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  vars:\n    deep: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InventoryError):
        load_inventory(path)


@pytest.mark.parametrize("deep", ["[" * 60_000, "- " * 60_000, "{a: " * 60_000], ids=["flow", "block", "mapping"])
def test_nesting_that_crashes_libyaml_is_an_error_not_a_crash(tmp_path, deep):
    # libyaml dies of SIGSEGV on these; a subprocess, so a crash fails the test instead of pytest.
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  vars:\n    deep: " + deep + "\n")
    code = ("import sys; from fleet.inventory import load_inventory; from fleet.errors import InventoryError\n"
            "try:\n    load_inventory(sys.argv[1])\nexcept InventoryError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    assert "hosts.yml" in done.stdout


def test_recursive_alias_is_an_inventory_error(tmp_path):
    path = write(tmp_path, """
        all: &root
          children:
            again: *root
    """)
    with pytest.raises(InventoryError, match="cycle: again -> again"):
        load_inventory(path)


# --- fuzz ---------------------------------------------------------------------------------------

WORDS = ["all", "hosts", "children", "vars", "ungrouped", "web", "db", "web[1:3]", "web[01:2]", "db-[a:c]",
         "h[x:y]", "web[5:1]", "ansible_host", "ansible_port", "ansible_user", "ansible_connection",
         "ansible_ssh_private_key_file", "ansible_group_priority", "ansible_become", "plugin", "", "h:22",
         "[::1]:22", "<<"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(WORDS + ["local", "winrm"]),
                    st.text(max_size=5))
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(WORDS), children, max_size=4)),
    max_leaves=25,
)
FRAGMENTS = st.lists(st.sampled_from(["all:", "hosts:", "children:", "vars:", "  ", "\n", "- ", "web[1:3]:",
                                      "&a ", "*a", "!vault ", "<<: ", "{", "}", "[", "]", ":", "'", '"', "~",
                                      "ansible_port: ", "99999", "\t", "---", "%YAML 1.1", "? "]),
                     max_size=40).map("".join)

# Inventory-shaped data, so fuzzing reaches groups, precedence and host building, not just the first error.
GROUP_NAMES = st.sampled_from(["all", "ungrouped", "web", "db", "edge"])
HOST_NAMES = st.sampled_from(["web1", "web[1:3]", "db-[a:c]", "h:22", "[::1]:22", "web[5:1]", "", "x[01:2]", "1e3"])
VAR_NAMES = st.sampled_from(["ansible_host", "ansible_port", "ansible_ssh_port", "ansible_user", "ansible_connection",
                             "ansible_ssh_private_key_file", "ansible_group_priority", "ansible_become", "role",
                             "disk_warn_pct"])
VARS = st.one_of(st.dictionaries(VAR_NAMES, st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), max_size=4), SCALARS)
GROUPS = st.deferred(lambda: st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "hosts": st.one_of(st.dictionaries(HOST_NAMES, st.one_of(st.none(), VARS), max_size=3), HOST_NAMES),
    "vars": VARS,
    "children": st.one_of(st.dictionaries(GROUP_NAMES, GROUPS, max_size=3), GROUP_NAMES),
})))
INVENTORIES = st.dictionaries(GROUP_NAMES, GROUPS, min_size=1, max_size=3)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text(tmp_path, text):
    only_inventory_errors(tmp_path / "fuzz.yml", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(tmp_path, data):
    only_inventory_errors(tmp_path / "fuzz.yml", data)


@FUZZ
@given(text=FRAGMENTS)
def test_fuzz_yaml_fragments(tmp_path, text):
    only_inventory_errors(tmp_path / "fuzz.yml", text.encode())


@FUZZ
@given(structure=STRUCTURES)
def test_fuzz_yaml_structures(tmp_path, structure):
    only_inventory_errors(tmp_path / "fuzz.yml", yaml.safe_dump(structure).encode())


@FUZZ
@given(structure=st.dictionaries(st.sampled_from(WORDS), STRUCTURES, max_size=4))
def test_fuzz_group_shaped_structures(tmp_path, structure):
    only_inventory_errors(tmp_path / "fuzz.yml", yaml.safe_dump({"all": structure}).encode())


@FUZZ
@given(structure=INVENTORIES)
def test_fuzz_inventory_shaped_structures(tmp_path, structure):
    only_inventory_errors(tmp_path / "fuzz.yml", yaml.safe_dump(structure).encode())
