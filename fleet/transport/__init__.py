"""Transports run one script on one host and bring back its raw output. They know nothing of runbooks.

`build` makes the transports a run needs from its hosts and the SSH options; the SSH stack
(paramiko) is imported only when a host connects over SSH.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

from fleet.executor import Deadline
from fleet.models import Connection, Execution, Host

if TYPE_CHECKING:
    from fleet.transport.become import Secret

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class Transport(Protocol):
    def execute(self, host: Host, script: bytes, deadline: Deadline) -> Execution:
        """Run `script` with `sh -s` on `host` within `deadline`; never raise for host trouble."""
        ...

    def close(self) -> None:
        """Release what the transport holds for the whole run (shared jump-host connections)."""
        ...


@dataclass(frozen=True)
class SSHOptions:
    """How to connect over SSH: the SSH knobs of `fleet diagnose` and `fleet fix`."""

    connect_timeout_s: float = 10.0
    ssh_config: str | None = None
    known_hosts: tuple[str, ...] = ()
    accept_new: bool = False
    # The sudo password for hosts with become, asked once before any connection.
    become_password: Secret | None = None

    def known_hosts_files(self) -> list[str]:
        """--known-hosts files first (new keys are recorded in the first), then the user's."""
        return [os.path.expanduser(p) for p in (*self.known_hosts, DEFAULT_KNOWN_HOSTS)]


def build(hosts: Sequence[Host], options: SSHOptions, lookups: int = 64,
          ask_passphrase: Callable[[str], str | None] | None = None) -> tuple[Mapping[Connection, Transport],
                                                                               list[str]]:
    """The transports for `hosts` (local always; SSH when a host needs it: config, keys and known_hosts
    read once, names looked up `lookups` at a time, bastions open), and notes for the report."""
    from fleet.transport.local import LocalTransport

    transports: dict[Connection, Transport] = {Connection.LOCAL: LocalTransport()}
    ssh_hosts = [h for h in hosts if h.connection is Connection.SSH]
    if not ssh_hosts:
        return transports, []
    from fleet.transport.ssh_setup import ssh_transport

    transports[Connection.SSH], notes = ssh_transport(ssh_hosts, options, lookups, ask_passphrase)
    return transports, notes


def record_new_key(options: SSHOptions, execution: Execution) -> None:
    """A host key accepted under --accept-new, recorded in the first known_hosts file (from the run's one thread)."""
    if execution.new_host_key:
        from fleet.transport.hostkeys import record

        record(options.known_hosts_files()[0], execution.new_host_key)
