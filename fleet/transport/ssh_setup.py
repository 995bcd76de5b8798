"""Setting up the SSH transport of a run: ssh_config, keys and known_hosts read once, names resolved, bastions open."""

from __future__ import annotations

import logging
import socket
from typing import Callable, Sequence

from fleet.executor import Deadline, run_pool
from fleet.models import Host
from fleet.transport import SSHOptions
from fleet.transport.credentials import load_credentials
from fleet.transport.hostkeys import KnownHosts, record
from fleet.transport.ssh import SSHSettings, SSHTransport, jump_hosts, resolve_endpoint
from fleet.transport.sshconfig import load_ssh_config


def ssh_transport(hosts: Sequence[Host], options: SSHOptions, lookups: int,
                  ask_passphrase: Callable[[str], str | None] | None) -> tuple[SSHTransport, list[str]]:
    """The SSH transport for a run: config, keys and known_hosts read once, names resolved, bastions open."""
    # paramiko logs its own failures (a traceback when a port never sends a banner) from its
    # threads; with no handler, Python's last resort prints them on the terminal. Each one is
    # already a host's verdict, worded by the transport.
    paramiko_log = logging.getLogger("paramiko")
    paramiko_log.addHandler(logging.NullHandler())
    paramiko_log.propagate = False
    ssh_config = load_ssh_config(options.ssh_config)
    endpoints = {h.name: resolve_endpoint(h, ssh_config) for h in hosts}
    key_files = {k for e in endpoints.values() for hop in (e, *jump_hosts(e.jump)) for k in hop.key_files}
    credentials = load_credentials(key_files, ask_passphrase)
    settings = SSHSettings(options.connect_timeout_s, options.accept_new, become_password=options.become_password)
    ssh = SSHTransport(settings, KnownHosts(options.known_hosts_files()), credentials, endpoints)
    resolve_names(ssh, options, lookups)
    for line in ssh.open_bastions(options.connect_timeout_s * 2):
        record(options.known_hosts_files()[0], line)
    return ssh, list(credentials.notes)


def resolve_names(ssh: SSHTransport, options: SSHOptions, lookups: int) -> None:
    """Look every host name up before the pool starts, in parallel and under the connect timeout.

    A resolver that hangs then costs the run one connect timeout, not a worker per host; a name
    that does not resolve is that host's verdict.
    """

    def lookup(name: str, deadline: Deadline) -> tuple[str | None, str]:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return None, f"{name} does not resolve ({exc.strerror})"
        except UnicodeError:
            return None, f"{name} is not a valid host name"
        return infos[0][4][0], ""

    names = ssh.names_to_resolve()
    for name, (address, error) in run_pool(
            names, lookup, forks=lookups, deadline_s=options.connect_timeout_s,
            on_overrun=lambda n, d: (None, f"looking up {n} took longer than {d.seconds:g}s"),
            on_error=lambda n, exc: (None, f"looking up {n} failed: {exc}")):
        ssh.record_address(name, address, error)
