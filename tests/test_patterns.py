import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import InventoryError
from fleet.inventory import Inventory, load_inventory
from fleet.patterns import select

FIXTURES = Path(__file__).parent / "fixtures" / "inventories"

WEB = ["web01.example.com", "web02.example.com", "web03.example.com", "web04.example.com"]
DB = ["db-a.example.com", "db-b.example.com", "db-c.example.com"]
BATCH = ["batch00.example.com", "batch10.example.com", "batch20.example.com"]
ALL = ["bastion.example.com", "localhost", *WEB, *DB, "mon01.example.com", *BATCH]


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(FIXTURES / "production.yml")


def names(inventory: Inventory, pattern: str | None) -> list[str]:
    return [host.name for host in select(inventory, pattern)]


@pytest.mark.parametrize("pattern", [None, "", "  ", "all", "*", "~.*"])
def test_everything(inventory, pattern):
    assert names(inventory, pattern) == ALL


@pytest.mark.parametrize("pattern, expected", [
    ("web", WEB),
    ("ungrouped", ["bastion.example.com", "localhost"]),
    ("db-b.example.com", ["db-b.example.com"]),
    ("localhost", ["localhost"]),
    ("web*", WEB),
    ("*.example.com", [name for name in ALL if name != "localhost"]),
    ("db-?.example.com", DB),
    ("batch[12]0.example.com", ["batch10.example.com", "batch20.example.com"]),
    # A glob that names a group also matches hosts: group monitoring plus host mon01.
    ("mon*", ["web01.example.com", "mon01.example.com"]),
])
def test_single_terms(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


def test_group_and_host_objects_come_from_the_inventory(inventory):
    assert select(inventory, "db")[0] is inventory.hosts[ALL.index("db-a.example.com")]


@pytest.mark.parametrize("pattern", [
    "monitoring,db", "db, monitoring", "monitoring:db", " db : monitoring ", "db monitoring",
])
def test_union_keeps_inventory_order(inventory, pattern):
    assert names(inventory, pattern) == ["web01.example.com", *DB, "mon01.example.com"]


@pytest.mark.parametrize("pattern, expected", [
    ("web:&monitoring", ["web01.example.com"]),
    ("web,&monitoring", ["web01.example.com"]),
    ("all:!web", [name for name in ALL if name not in WEB]),
    ("!web", [name for name in ALL if name not in WEB]),
    ("&db", DB),
    ("web:!web0[12]*", ["web03.example.com", "web04.example.com"]),
    ("web,db,!monitoring,&*.example.com", WEB[1:] + DB),
])
def test_intersection_and_exclusion(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


def test_exclusions_apply_after_unions_whatever_the_order(inventory):
    assert names(inventory, "!web01.example.com,web") == WEB[1:]


def test_intersections_apply_after_unions_whatever_the_order(inventory):
    assert names(inventory, "&monitoring,db,web") == ["web01.example.com"]


@pytest.mark.parametrize("pattern, expected", [
    ("~db-[ab]", DB[:2]),
    ("~(web01|batch)", ["web01.example.com", *BATCH]),
    # Like Ansible, a regex is anchored at the start of the name (re.match), not searched.
    ("~example", []),
    ("~.*example", [name for name in ALL if name != "localhost"]),
    ("~^mon", ["web01.example.com", "mon01.example.com"]),
])
def test_regex(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


@pytest.mark.parametrize("pattern", ["~web[", "~(db", "~*", "~a{99999999999}", "~" + "(" * 2000 + ")" * 2000])
def test_malformed_regex(inventory, pattern):
    with pytest.raises(InventoryError, match="invalid host pattern") as caught:
        select(inventory, pattern)
    assert pattern in caught.value.message


@pytest.mark.parametrize("pattern", ["nosuchhost", "nosuch*", "~nosuch", "web:&db", "web:!web"])
def test_no_match_is_empty(inventory, pattern):
    assert select(inventory, pattern) == ()


@pytest.mark.parametrize("pattern, expected", [
    ("web[0]", WEB[:1]),
    ("web[-1]", WEB[-1:]),
    ("web[1:2]", WEB[1:3]),
    ("web[2:]", WEB[2:]),
    ("db[0],web[0]", [WEB[0], DB[0]]),
])
def test_subscripts(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


def test_limit_file(inventory, tmp_path):
    retry = tmp_path / "site.retry"
    retry.write_text("db-c.example.com\n\nweb02.example.com\n")
    assert names(inventory, f"@{retry}") == ["web02.example.com", "db-c.example.com"]
    assert names(inventory, f"@{retry},!db") == ["web02.example.com"]


def test_limit_file_lines_are_not_split(inventory, tmp_path):
    retry = tmp_path / "site.retry"
    retry.write_text("web:db\n")
    assert names(inventory, f"@{retry}") == []


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.retry", "not found"),
    (lambda tmp: tmp, "limit file is a directory"),
])
def test_limit_file_errors(inventory, tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InventoryError, match=message) as caught:
        select(inventory, f"@{path}")
    assert caught.value.path == str(path)


def test_limit_file_not_utf8(inventory, tmp_path):
    retry = tmp_path / "site.retry"
    retry.write_bytes(b"web01.example.com\n\xff\n")
    with pytest.raises(InventoryError, match="UTF-8") as caught:
        select(inventory, f"@{retry}")
    assert caught.value.line == 2


@pytest.fixture(scope="module")
def ipv6_inventory(tmp_path_factory) -> Inventory:
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(textwrap.dedent("""
        all:
          children:
            edge:
              hosts:
                2001:db8::1:
                edge1.example.com:
            core:
              hosts:
                "[2001:db8::2]:2222":
                core1.example.com:
    """))
    return load_inventory(path)


@pytest.mark.parametrize("pattern, expected", [
    # Without commas a lone IPv6 address is one term, not a list split on ':'.
    ("2001:db8::1", ["2001:db8::1"]),
    ("2001:db8::1,core", ["2001:db8::1", "2001:db8::2", "core1.example.com"]),
    ("edge:core", ["2001:db8::1", "edge1.example.com", "2001:db8::2", "core1.example.com"]),
    ("edge:!2001*", ["edge1.example.com"]),
    # host:port stays one term (as in Ansible), so it is not read as groups 'core1.example.com' and '22'.
    ("core1.example.com:22", []),
])
def test_colons_and_ipv6(ipv6_inventory, pattern, expected):
    assert names(ipv6_inventory, pattern) == expected


@settings(max_examples=500, deadline=None)
@given(pattern=st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(["web", "db", "all", "*", "!", "&", "~", ",", ":", "[", "]", "0", "-1", "?",
                              "(", ")", ".", "\\", "localhost", "ungrouped", " "]), max_size=12).map("".join),
).filter(lambda p: "@" not in p))
def test_fuzz_patterns(inventory, pattern):
    try:
        result = select(inventory, pattern)
    except InventoryError:
        return
    assert all(host in inventory.hosts for host in result)
    assert [host.name for host in result] == [name for name in ALL if name in {h.name for h in result}]


def test_exact_host_name_wins_over_a_group_of_the_same_name(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent("""
        all:
          hosts:
            backup:
          children:
            backup_clients:
              hosts:
                app1:
            backup:
              hosts:
                app2:
    """))
    inventory = load_inventory(path)
    assert names(inventory, "backup") == ["backup"]
    # After '!' or '&' the name means the group, as in Ansible.
    assert names(inventory, "all:!backup") == ["backup", "app1"]
    assert names(inventory, "all:&backup") == ["app2"]
    assert names(inventory, "backup*") == ["backup", "app1", "app2"]
