"""Dynamic inventories: an executable run with --list (and --host NAME), its JSON read as Ansible's script plugin does."""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import time
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.templating import UnsafeText
from fleet.inventory.tree import Tree, Var
from fleet.models import Unusable
from fleet.sanitize import strip_control

#: Seconds a dynamic inventory gets in all: the --list run plus any --host runs.
TIMEOUT_S = 30.0
#: Bytes of stdout read from one run; a script that prints more is stopped.
MAX_OUTPUT = 64 * 1024 * 1024
# Only the end of stderr goes into an error message: that is where a traceback says what went wrong.
_STDERR_KEPT = 64 * 1024
_STDERR_LINES = 5
_STDERR_CHARS = 1000
_GROUP_KEYS = ("hosts", "vars", "children")


def parse_inventory(path: str, tree: Tree, timeout_s: float = TIMEOUT_S) -> None:
    """Run the executable `path` with --list and add the groups, hosts and variables it prints to `tree`.

    Without `_meta.hostvars` in the output, each host's variables come from a `--host NAME` run.
    A host that only `_meta.hostvars` names is not in the inventory, as in Ansible. The whole load
    must finish within `timeout_s`. Raises InventoryError naming the file when the script cannot
    run, fails, times out, prints too much or prints something other than Ansible's JSON. OSError
    ENOEXEC (not a program, no '#!') propagates, for the caller to read the file as a static
    inventory instead.
    """
    _add_listing(_Runner(path, [os.path.abspath(path)], "inventory script", timeout_s), tree)


def parse_with_ansible(program: str, path: str, tree: Tree, timeout_s: float = TIMEOUT_S) -> None:
    """Resolve the inventory `path` with `ansible-inventory -i PATH --list` (no shell, `timeout_s` at most).

    For what Ansible reads and fleet does not (an inventory plugin configuration). Raises
    InventoryError as parse_inventory does, naming ansible-inventory.
    """
    runner = _Runner(path, [program, "-i", os.path.abspath(path)], "ansible-inventory", timeout_s)
    _add_listing(runner, tree)


def _add_listing(runner: _Runner, tree: Tree) -> None:
    path = runner.path
    listing = runner.json("--list")
    if not isinstance(listing, dict):
        raise runner.error(f"--list printed JSON {type(listing).__name__}, not an object of groups")
    meta = listing.get("_meta", {})
    hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(hostvars, (dict, type(None))):
        raise runner.error("--list printed a '_meta' that is not an object with a 'hostvars' object")
    listed: dict[str, None] = {}
    for group, data in listing.items():
        if group != "_meta":
            _add_group(runner, tree, group, data, listed)
    if hostvars is None:
        found = {host: runner.json("--host", host) for host in listed}
    else:
        found = {**dict.fromkeys(listed, {}), **hostvars}
    for host, variables in found.items():
        if host not in listed:
            continue
        if not isinstance(variables, dict):
            raise runner.error(f"the variables of host '{host}' are JSON {type(variables).__name__}, not an object")
        tree.set_host_vars(host, {name: Var(_tagged(value), path, None) for name, value in variables.items()})


def _add_group(runner: _Runner, tree: Tree, name: str, data: Any, listed: dict[str, None]) -> None:
    if not name:
        raise runner.error("--list printed a group with an empty name")
    if not isinstance(data, dict):
        data = {"hosts": data}
    elif not any(key in data for key in _GROUP_KEYS):
        # Ansible's oldest form: an object without hosts/vars/children is a host of that name, with these vars.
        data = {"hosts": [name], "vars": data}
    hosts, variables, children = data.get("hosts", []), data.get("vars", {}), data.get("children", [])
    if not _names(hosts):
        raise runner.error(f"group '{name}': 'hosts' must be a list of host names")
    if not isinstance(variables, dict):
        raise runner.error(f"group '{name}': 'vars' must be an object")
    if not _names(children):
        raise runner.error(f"group '{name}': 'children' must be a list of group names")
    tree.set_group_vars(name, {var: Var(_tagged(value), runner.path, None) for var, value in variables.items()})
    for host in hosts:
        listed[host] = None
        tree.add_host(host, name, {})
    for child in children:
        tree.add_child(name, child, (runner.path, None))


def _tagged(value: Any) -> Any:
    """Ansible's JSON for tagged values: {"__ansible_vault": ...} stays encrypted, {"__ansible_unsafe": ...} is text."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_vault"}:
            return Unusable("encrypted with Ansible Vault, which fleet cannot decrypt")
        if set(value) == {"__ansible_unsafe"} and isinstance(value["__ansible_unsafe"], str):
            return UnsafeText(value["__ansible_unsafe"])
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    return value


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


class _Runner:
    """Runs one command (an inventory script, ansible-inventory), each run within what is left of one
    deadline, no shell, output capped."""

    def __init__(self, path: str, command: list[str], label: str, timeout_s: float):
        self.path = path
        # For a script, an absolute path, so a bare 'inventory.py' runs that file rather than something on PATH.
        self.command = command
        self.label = label
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s

    def error(self, message: str, stderr: bytes = b"") -> InventoryError:
        return InventoryError(f"{self.label}: {message}{_stderr_tail(stderr)}", self.path)

    def json(self, *args: str) -> Any:
        """The JSON the script prints for `args`; an empty --host answer means no variables, as in Ansible."""
        stdout, stderr = self.run(args)
        shown = " ".join(args)
        try:
            text = stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"{shown} printed bytes that are not UTF-8 (at byte {exc.start})", stderr) from None
        if args[0] == "--host" and not text.strip():
            return {}
        try:
            return json.loads(text)
        except RecursionError:
            raise self.error(f"{shown} printed JSON nested too deeply", stderr) from None
        except ValueError as exc:  # JSONDecodeError, and numbers past Python's digit limit
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise self.error(f"{shown} printed invalid JSON ({reason}{where})", stderr) from None

    def run(self, args: tuple[str, ...]) -> tuple[bytes, bytes]:
        shown = " ".join(args)
        try:
            # A session of its own, so a timeout also stops whatever the script started.
            process = subprocess.Popen([*self.command, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:  # an executable bit on a text file without '#!'
                raise
            raise self.error(f"cannot run it with {shown}: {exc.strerror or exc}") from None
        try:
            stdout, stderr = self.collect(process, shown)
            remaining = self.deadline - time.monotonic()
            try:
                status = process.wait(timeout=max(remaining, 0))
            except subprocess.TimeoutExpired:
                raise self.error(f"{shown} did not finish within {self.timeout_s:g} s", stderr) from None
        finally:
            _stop(process)
        if status != 0:
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            raise self.error(f"{shown} {how}", stderr)
        return bytes(stdout), bytes(stderr)

    def collect(self, process: subprocess.Popen[bytes], shown: str) -> tuple[bytearray, bytearray]:
        """Read stdout and stderr together until both close, so neither pipe fills up and blocks the script."""
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = bytearray(), bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, stdout)
            selector.register(process.stderr, selectors.EVENT_READ, stderr)
            while selector.get_map():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise self.error(f"{shown} did not finish within {self.timeout_s:g} s", stderr)
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 1024 * 1024)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data is stdout:
                        stdout += chunk
                        if len(stdout) > MAX_OUTPUT:
                            raise self.error(f"{shown} printed more than {MAX_OUTPUT // (1024 * 1024)} MiB", stderr)
                    else:
                        stderr += chunk
                        del stderr[:-_STDERR_KEPT]
        return stdout, stderr


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the script's session if it is still running, reap it and close the pipes."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _stderr_tail(stderr: bytes | bytearray) -> str:
    """The last lines of stderr on one line, control characters removed, for the end of an error message."""
    text = strip_control(bytes(stderr).decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"; stderr: {' | '.join(lines[-_STDERR_LINES:])[-_STDERR_CHARS:]}" if lines else ""
