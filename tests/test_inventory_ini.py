"""Ansible INI inventories: sections, host lines, value parsing, format detection and errors with lines."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import InventoryError
from fleet.inventory import load_inventory
from fleet.inventory.ini_source import parse_value
from fleet.models import Connection, Host
from tests.test_inventory import FIXTURES, by_name, write
from tests.conftest import only_inventory_errors


def load_ini(tmp_path: Path, text: str, name: str = "hosts.ini") -> dict[str, Host]:
    return by_name(load_inventory(write(tmp_path, text, name)))


def test_ini_twin_of_the_yaml_fixture_loads_identically():
    # Same fleet written both ways: one pipeline after parsing, so the result must be the same.
    ini = load_inventory(FIXTURES / "production.ini")
    yml = load_inventory(FIXTURES / "production.yml")
    assert ini.hosts == yml.hosts
    assert list(ini.groups.items()) == list(yml.groups.items())


def test_sections_children_and_ungrouped(tmp_path):
    inventory = load_inventory(write(tmp_path, """
        jump1
        [web]
        web1
        [db]
        db1
        [prod:children]
        web
        db
        [all:children]
        prod
    """, "hosts.ini"))
    hosts = by_name(inventory)
    assert list(inventory.groups) == ["all", "ungrouped", "web", "db", "prod"]
    assert inventory.groups["prod"] == ("web1", "db1")
    assert hosts["jump1"].groups == ("ungrouped",)
    assert hosts["web1"].groups == ("prod", "web")


def test_children_may_be_declared_after_their_parent(tmp_path):
    hosts = load_ini(tmp_path, """
        [europe:children]
        paris     # declared below
        [europe:vars]
        level=europe
        [paris]
        par1
        [paris:vars]
        level=paris
    """)
    assert hosts["par1"].groups == ("europe", "paris")
    assert hosts["par1"].vars["level"] == "paris"


def test_vars_section_may_come_before_the_group(tmp_path):
    hosts = load_ini(tmp_path, """
        [web:vars]
        http_port=8080
        [web]
        web1
    """)
    assert hosts["web1"].vars == {"http_port": 8080}


def test_comments_blank_lines_crlf_and_bom(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_bytes(b"\xef\xbb\xbf# comment\r\n; another\r\n\r\n   # indented\r\n[web]  # trailing\r\n"
                     b"web1 color=blue # inline comment\r\nweb2 ;not-a-comment=1\r\n")
    hosts = by_name(load_inventory(path))
    assert hosts["web1"].vars == {"color": "blue"}
    # ';' starts a comment only at the start of a line; 'key=value' tokens after it still count.
    assert hosts["web2"].vars == {";not-a-comment": 1}


def test_non_utf8_is_tolerated_in_comment_lines_only(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_bytes(b"# caf\xe9\n[web]\nweb1\n")
    assert [host.name for host in load_inventory(path).hosts] == ["web1"]
    path.write_bytes(b"# caf\xe9\n[web]\ncaf\xe9\n")
    with pytest.raises(InventoryError, match="not valid UTF-8") as caught:
        load_inventory(path)
    assert caught.value.line == 3


@pytest.mark.parametrize("text, expected", [
    ("22", 22), ("-1", -1), ("1.5", 1.5), ("True", True), ("False", False), ("None", None),
    ("'22'", "22"), ('"x y"', "x y"), ("[1, 'a']", [1, "a"]), ("(1, 2)", [1, 2]), ("{'k': (1,)}", {"k": [1]}),
    ("{3}", [3]), ("b'raw'", "raw"), ("...", "..."), ("1j", "1j"), ("{(1, 2): 'x'}", {"[1, 2]": "x"}),
    # Not Python literals: kept as the text, the way Ansible keeps them.
    ("yes", "yes"), ("true", "true"), ("10-5", "10-5"), ("10.0.0.1", "10.0.0.1"), ("", ""),
    ("{[1]: 2}", "{[1]: 2}"), ("x # y", "x # y"), ("(" * 300 + ")" * 300, "(" * 300 + ")" * 300),
    ("1" * 5000, "1" * 5000),
])
def test_value_parsing_follows_ansible(text, expected):
    assert parse_value(text) == expected


def test_host_line_values_shell_quoting_and_types(tmp_path):
    hosts = load_ini(tmp_path, """
        [web]
        web1 port_s="'8080'" count=3 on=True words="two words" lst="[1, 2]" path=/srv/a=b secret='03#pa33w0rd'
    """)
    assert hosts["web1"].vars == {"port_s": "8080", "count": 3, "on": True, "words": "two words", "lst": [1, 2],
                                  "path": "/srv/a=b", "secret": "03#pa33w0rd"}


def test_group_vars_are_read_like_ansible_reads_them(tmp_path):
    # Ansible's docs say :vars values are strings, but its ini plugin literal_evals them as it does host
    # values (ansible/ansible#86229); fleet follows the code, and so keeps a trailing comment like Ansible.
    hosts = load_ini(tmp_path, """
        [web]
        web1
        [web:vars]
        port = 8080
        enabled=False
        ntp=ntp1.example.com  # primary
        count=3 # Python comments are part of the literal
        spaced = two words here
        eq=a=b
    """)
    assert hosts["web1"].vars == {"port": 8080, "enabled": False, "ntp": "ntp1.example.com  # primary",
                                  "count": 3, "spaced": "two words here", "eq": "a=b"}


def test_connection_settings_ranges_ports_and_ipv6(tmp_path):
    hosts = load_ini(tmp_path, """
        [web]
        web[1:2].example.com:2222 ansible_user=ops
        db.example.com:5432 ansible_port=6432
        [2001:db8::7]:2200
        2001:db8::8
        10.0.0.[1:2]
        box ansible_connection=local ansible_host=127.0.0.1 ansible_user=1000
    """)
    assert [name for name in hosts] == ["web1.example.com", "web2.example.com", "db.example.com",
                                        "2001:db8::7", "2001:db8::8", "10.0.0.1", "10.0.0.2", "box"]
    assert (hosts["web2.example.com"].port, hosts["web2.example.com"].user) == (2222, "ops")
    assert hosts["db.example.com"].port == 6432
    assert hosts["2001:db8::7"].port == 2200
    assert hosts["2001:db8::8"].port is None
    box = hosts["box"]
    assert (box.connection, box.address, box.user) == (Connection.LOCAL, "127.0.0.1", "1000")


def test_host_in_several_sections_merges(tmp_path):
    inventory = load_inventory(write(tmp_path, """
        [a]
        h1 x=1 y=1
        [b]
        h1 y=2
    """, "hosts.ini"))
    assert inventory.hosts[0].vars == {"x": 1, "y": 2}
    assert inventory.hosts[0].groups == ("a", "b")
    assert inventory.groups["ungrouped"] == ()


def test_group_priority_from_ini_vars(tmp_path):
    hosts = load_ini(tmp_path, """
        [a_team]
        h1
        [b_team]
        h1
        [a_team:vars]
        owner=a
        ansible_group_priority=10
        [b_team:vars]
        owner=b
    """)
    assert hosts["h1"].vars == {"owner": "a"}


# --- format detection --------------------------------------------------------------------------

def test_file_without_extension_is_ini_unless_it_is_a_yaml_mapping(tmp_path):
    ini = write(tmp_path, "[web]\nweb1 ansible_port=2200\n", "production")
    assert load_inventory(ini).hosts[0].port == 2200
    yml = write(tmp_path, "all:\n  hosts:\n    web1:\n      ansible_port: 2201\n", "staging")
    assert load_inventory(yml).hosts[0].port == 2201
    plain = write(tmp_path, "web1\nweb2\n", "hosts")  # YAML would read one string 'web1 web2'
    assert [host.name for host in load_inventory(plain).hosts] == ["web1", "web2"]


@pytest.mark.parametrize("name", ["hosts.ini", "hosts.prod", "inventory.hosts", "HOSTS.INI"])
def test_other_extensions_are_ini(tmp_path, name):
    assert load_inventory(write(tmp_path, "[web]\nweb1\n", name)).hosts[0].name == "web1"


def test_yml_extension_is_always_yaml(tmp_path):
    with pytest.raises(InventoryError, match="invalid YAML"):
        load_inventory(write(tmp_path, "[web]\nweb1\n", "hosts.yml"))


def test_extensionless_file_bad_both_ways_reports_both(tmp_path):
    path = write(tmp_path, "all:\n  hosts:\n    web1:\n   bad: [\n", "hosts")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert caught.value.line == 1
    assert "ends in ':'" in caught.value.message
    assert "as YAML, line 4: invalid YAML" in caught.value.message


def test_extensionless_yaml_mapping_is_read_as_yaml(tmp_path):
    # Read as YAML, so an unknown key is Ansible's YAML warning, never an INI complaint.
    path = write(tmp_path, "all:\n  children:\n    web:\n      host:\n        web1:\n", "hosts")
    inventory = load_inventory(path)
    assert inventory.reader == "yaml"
    assert inventory.warnings == (f"{path}:4: skipped unknown key 'host' in group 'web': only hosts, children "
                                  f"and vars are read",)


def test_only_comments_is_empty(tmp_path):
    inventory = load_inventory(write(tmp_path, "# nothing yet\n;\n", "hosts.ini"))
    assert (inventory.hosts, len(inventory.warnings)) == ((), 1)
    assert "inventory is empty" in inventory.warnings[0]


def test_descending_range_names_no_host_with_a_warning(tmp_path):
    path = write(tmp_path, "[web]\nweb[9:1]\nok1\n", "hosts.ini")
    inventory = load_inventory(path)
    assert [h.name for h in inventory.hosts] == ["ok1"]
    assert inventory.warnings == (f"{path}:2: host range 'web[9:1]' counts down, so it names no host",)


# --- errors -------------------------------------------------------------------------------------

INI_ERRORS = {
    "unknown section type": ("[web]\nweb1\n[web:host]\n", 3, "unknown type 'host'"),
    "space in section": ("[web servers]\nweb1\n", 1, "invalid section header"),
    "token without equals": ("[web]\nweb1 ansible_port=22 fast\n", 2, "expected key=value after host 'web1'"),
    "empty variable name": ("[web]\nweb1 =x\n", 2, "variable name is empty"),
    "unclosed quote": ("[web]\nweb1 motd='hello\n", 2, "cannot split host line"),
    "bad range": ("[web]\nweb1\nweb[1:x]\n", 3, "bad host range in 'web[1:x]'"),
    "range too big": ("[web]\nweb[0:99999999999999999999999]\n", 2, "more than"),
    "colon without port": ("[web]\nweb1:\n", 2, "ends in ':'"),
    "yaml in ini": ("---\n", 1, "YAML"),
    "vars for undeclared group": ("[web]\nweb1\n[db:vars]\nx=1\n", 3, "section [db:vars] is for group 'db'"),
    "undeclared child": ("[web]\nweb1\n[prod:children]\nweb\ndb\n", 5, "[prod:children] names group 'db'"),
    "bad child line": ("[web]\nweb1\n[prod:children]\nweb extra\n", 4, "expected a group name"),
    "var line without equals": ("[web]\nweb1\n[web:vars]\nhttp_port 80\n", 4, "expected key=value in [web:vars]"),
    "empty group variable name": ("[web]\nweb1\n[web:vars]\n = 80\n", 4, "variable name is empty"),
    "bad port on host line": ("[web]\nweb1\nweb2 ansible_port=ssh\n", 3, "must be a port number"),
    "bad port in vars": ("[web]\nweb1\n[web:vars]\nx=1\nansible_port=0\n", 5, "ansible_port of host 'web1'"),
    "port zero in host entry": ("[web]\nweb1:0\n", 2, "must be a port number"),
    "cycle": ("[a:children]\nb\n[b:children]\na\n", 4, "cycle: a -> b -> a"),
    "bad priority": ("[g]\nh\n[g:vars]\nansible_group_priority=high\n", 4, "ansible_group_priority of group 'g'"),
    "not executable script": ("#!/bin/sh\necho '{}'\n", None, "not executable"),
}


@pytest.mark.parametrize("text, line, message", INI_ERRORS.values(), ids=INI_ERRORS.keys())
def test_malformed_ini_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "hosts.ini"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert message in caught.value.message
    assert (caught.value.path, caught.value.line) == (str(path), line)


# --- fuzz ---------------------------------------------------------------------------------------

INI_FRAGMENTS = st.lists(st.sampled_from([
    "[web]", "[db]", "[all:vars]", "[web:vars]", "[prod:children]", "[web:children]", "[x:bogus]", "[a b]", "[",
    "]", "web1", "web[1:3]", "web[01:2]", "db-[a:c]", "h[x:y]", "h:22", "[::1]:22", "h:", "---", "web", "db",
    "prod", " ansible_port=", "ansible_port=", "22", "99999", "ssh", " ansible_connection=", "local", "winrm",
    " ansible_group_priority=", "x=", "'", '"', "#", ";", "=", " ", "\t", "\n", "\r\n", "[1, 2]", "(", "{",
    "\\", "b'\\xff'", "1e999", "\x00", "é",
]), max_size=40).map("".join)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=INI_FRAGMENTS)
def test_fuzz_ini_fragments(tmp_path, text):
    only_inventory_errors(tmp_path / "fuzz.ini", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_ini_arbitrary_text(tmp_path, text):
    only_inventory_errors(tmp_path / "fuzz.ini", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_extensionless_bytes(tmp_path, data):
    # No extension: goes through YAML detection first, then INI.
    only_inventory_errors(tmp_path / "fuzz", data)
