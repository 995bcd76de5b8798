"""Dynamic inventories: executables run with --list / --host, Ansible's JSON, failures and limits."""

import shutil
import textwrap
import time
from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory, script_source
from tests.test_inventory import FIXTURES, by_name, write

SCRIPTS = FIXTURES / "scripts"


def script(tmp_path: Path, body: str, name: str = "inventory.sh") -> Path:
    """An executable sh script in tmp_path."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip("\n"))
    path.chmod(0o755)
    return path


def fixture_script(tmp_path: Path, name: str) -> Path:
    # Copied and chmod'ed here, so the test does not depend on a checkout keeping the executable bit.
    path = Path(shutil.copy(SCRIPTS / name, tmp_path / name))
    path.chmod(0o755)
    return path


def json_script(tmp_path: Path, listing: str) -> Path:
    return script(tmp_path, f"cat <<'JSON'\n{listing}\nJSON\n")


def test_with_meta(tmp_path):
    inventory = load_inventory(fixture_script(tmp_path, "with_meta.sh"))
    hosts = by_name(inventory)
    assert list(hosts) == ["web1", "web2", "db1"]
    assert list(inventory.groups) == ["all", "ungrouped", "web", "db", "prod"]
    assert inventory.groups["prod"] == ("web1", "web2", "db1")
    web1 = hosts["web1"]
    assert (web1.address, web1.port, web1.user) == ("192.0.2.1", 2201, "deploy")
    assert web1.vars == {"env": "prod", "http_port": 8080, "rack": "r1"}
    assert hosts["db1"].user == "postgres"  # host vars over group vars
    # 'lonely' is only in _meta.hostvars: as in Ansible, that does not put it in the inventory.
    assert inventory.groups["ungrouped"] == ()


def test_without_meta_asks_each_host(tmp_path):
    hosts = by_name(load_inventory(fixture_script(tmp_path, "without_meta.py")))
    assert hosts["app1"].address == "198.51.100.1"
    assert hosts["app1"].vars == {"tier": "gold"}
    assert hosts["app2"].vars == {"tier": "silver"}  # an empty --host answer is no variables


def test_meta_without_hostvars_also_asks_each_host(tmp_path):
    path = script(tmp_path, """
        case "$1" in
        --list) echo '{"web": ["w1"], "_meta": {}}' ;;
        --host) echo "{\\"seen\\": \\"$2\\"}" ;;
        esac
    """)
    assert load_inventory(path).hosts[0].vars == {"seen": "w1"}


def test_ansible_short_forms(tmp_path):
    # A bare list is the group's hosts; an object without hosts/vars/children is a host with vars.
    path = json_script(tmp_path, '{"web": ["w1", "w2"], "solo": {"color": "red"}, "_meta": {"hostvars": {}}}')
    hosts = by_name(load_inventory(path))
    assert list(hosts) == ["w1", "w2", "solo"]
    assert (hosts["solo"].groups, hosts["solo"].vars) == (("solo",), {"color": "red"})


def test_group_vars_beside_a_script_apply(tmp_path):
    path = json_script(tmp_path, '{"web": {"hosts": ["w1"], "vars": {"x": "script"}}, "_meta": {"hostvars": {}}}')
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars", "x: group_vars\n", "web.yml")
    assert load_inventory(path).hosts[0].vars == {"x": "group_vars"}


def test_executable_static_file_without_shebang_is_read_as_static(tmp_path):
    # Ansible tries the script plugin, which cannot exec it, then reads it as YAML/INI; so does fleet.
    path = write(tmp_path, "[web]\nweb1\n", "hosts")
    path.chmod(0o755)
    assert load_inventory(path).hosts[0].name == "web1"


def test_non_executable_script_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = script(tmp_path, f"touch {marker}\necho '{{}}'\n")
    path.chmod(0o644)
    with pytest.raises(InventoryError, match="not executable"):
        load_inventory(path)
    assert not marker.exists()


def test_script_runs_without_shell_and_with_absolute_path(tmp_path, monkeypatch):
    # A bare relative name must run the file here, not a program of that name on PATH.
    json_script(tmp_path, '{"web": ["w1"], "_meta": {"hostvars": {}}}')
    monkeypatch.chdir(tmp_path)
    assert load_inventory("inventory.sh").hosts[0].name == "w1"


# --- failures -----------------------------------------------------------------------------------

def test_failing_script_shows_status_and_stderr(tmp_path):
    path = script(tmp_path, """
        echo 'Traceback (most recent call last):' >&2
        printf 'botocore.exceptions.NoCredentialsError: \\033[31mUnable to locate credentials\\n' >&2
        exit 3
    """)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), None)
    assert "--list exited with status 3" in error.message
    assert "stderr: Traceback (most recent call last): | botocore.exceptions.NoCredentialsError: " \
           "Unable to locate credentials" in error.message
    assert "\x1b" not in error.message and "\n" not in error.message


def test_script_killed_by_signal(tmp_path):
    path = script(tmp_path, "kill -TERM $$\n")
    with pytest.raises(InventoryError, match="was killed by signal 15"):
        load_inventory(path)


def test_hanging_script_times_out_and_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    path = script(tmp_path, f"""
        sleep 60 &
        echo $! > {pid_file}
        echo 'still thinking' >&2
        wait
    """)
    started = time.monotonic()
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, script_timeout_s=0.5)
    assert time.monotonic() - started < 10
    assert "--list did not finish within 0.5 s" in caught.value.message
    assert "stderr: still thinking" in caught.value.message
    # The whole session was killed, the script's own children included.
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_script_that_closes_its_output_but_keeps_running_times_out(tmp_path):
    path = script(tmp_path, "echo '{}'\nexec >&- 2>&-\nsleep 60\n")
    with pytest.raises(InventoryError, match="did not finish within"):
        load_inventory(path, script_timeout_s=0.5)


def test_hanging_host_call_times_out(tmp_path):
    path = script(tmp_path, """
        case "$1" in
        --list) echo '{"web": ["w1"]}' ;;
        --host) sleep 60 ;;
        esac
    """)
    with pytest.raises(InventoryError, match="--host w1 did not finish within 0.5 s"):
        load_inventory(path, script_timeout_s=0.5)


def test_output_over_the_cap_stops_the_script(tmp_path, monkeypatch):
    monkeypatch.setattr(script_source, "MAX_OUTPUT", 1024 * 1024)
    path = script(tmp_path, "yes '[1, 2, 3, 4, 5, 6, 7, 8]'\n")
    with pytest.raises(InventoryError, match="printed more than 1 MiB"):
        load_inventory(path)


SCRIPT_ERRORS = {
    "bad json": ('{"web": ["w1",]}', "--list printed invalid JSON (Expecting value at line 1 column 15)"),
    "empty output": ("", "--list printed invalid JSON (Expecting value at line 2 column 1)"),  # just a newline
    "not an object": ('["w1"]', "--list printed JSON list, not an object of groups"),
    "hosts not a list": ('{"web": {"hosts": "w1"}}', "group 'web': 'hosts' must be a list of host names"),
    "host not a string": ('{"web": [1]}', "group 'web': 'hosts' must be a list of host names"),
    "null group": ('{"web": null}', "group 'web': 'hosts' must be a list of host names"),
    "vars not an object": ('{"web": {"vars": [1]}}', "group 'web': 'vars' must be an object"),
    "children not a list": ('{"web": {"children": "db"}}', "group 'web': 'children' must be a list"),
    "empty group name": ('{"": ["w1"]}', "a group with an empty name"),
    "meta not an object": ('{"web": ["w1"], "_meta": []}', "'_meta' that is not an object"),
    "hostvars not an object": ('{"_meta": {"hostvars": []}}', "'_meta' that is not an object"),
    "empty host name": ('{"web": [""]}', "'hosts' must be a list of host names"),
    "host vars not an object": ('{"web": ["w1"], "_meta": {"hostvars": {"w1": 1}}}',
                                "the variables of host 'w1' are JSON int"),
    "deep json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "cycle": ('{"a": {"children": ["b"]}, "b": {"children": ["a"]}, "_meta": {"hostvars": {}}}',
              "cycle: a -> b -> a"),
    "bad port": ('{"web": ["w1"], "_meta": {"hostvars": {"w1": {"ansible_port": "ssh"}}}}',
                 "ansible_port of host 'w1' must be a port number"),
}


@pytest.mark.parametrize("output, message", SCRIPT_ERRORS.values(), ids=SCRIPT_ERRORS.keys())
def test_bad_output_is_an_error_naming_the_script(tmp_path, output, message):
    path = json_script(tmp_path, output)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert message in caught.value.message
    assert (caught.value.path, caught.value.line) == (str(path), None)


def test_bad_host_answer(tmp_path):
    path = script(tmp_path, """
        case "$1" in
        --list) echo '{"web": ["w1"]}' ;;
        --host) echo '[1]' ;;
        esac
    """)
    with pytest.raises(InventoryError, match="the variables of host 'w1' are JSON list"):
        load_inventory(path)


def test_output_not_utf8(tmp_path):
    path = script(tmp_path, "printf '{\"caf\\351\": [\"w1\"]}'\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(path)


def test_broken_interpreter_is_an_error_not_a_fallback(tmp_path):
    path = tmp_path / "inventory.py"
    path.write_text("#!/nonexistent/python3\nprint('{}')\n")
    path.chmod(0o755)
    with pytest.raises(InventoryError, match="cannot run it with --list"):
        load_inventory(path)
