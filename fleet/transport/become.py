"""Privilege escalation (Ansible's `become`) with sudo, settled before the probe script runs.

The script itself is fed on stdin, so a sudo password must never end up there by mistake: a
sudo that does not ask (NOPASSWD, cached credentials) would hand the password line to `sh` as a
command. So the mode is settled first, each step an exec of its own on the same connection:
`sudo -n true` tells whether no password is needed; otherwise `sudo -k -S` checks the password,
and the script then runs under `sudo -k -S`, where `-k` makes sudo read the password every time.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from fleet.transport.sshlib import paramiko

from fleet.executor import Deadline


class Secret:
    """A password that does not show itself in reprs, logs or tracebacks."""

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


@dataclass(frozen=True)
class Become:
    """How to wrap `sh -s` for a host, and what to send before the script."""

    command: str
    stdin_prefix: bytes = b""


class BecomeFailed(Exception):
    """sudo refused; the message is safe to show (it never holds the password)."""


def settle(transport: paramiko.Transport, user: str, password: Secret | None, deadline: Deadline) -> Become:
    """Find how to become `user` on this connection, or raise BecomeFailed saying why."""
    target = f"-u {shlex.quote(user)} " if user and user != "root" else ""
    rc, err = _exec(transport, f"sudo -n {target}true", b"", deadline)
    if rc == 0:
        return Become(f"sudo -n {target}-- sh -s")
    if "password is required" not in err:
        raise BecomeFailed(_sudo_said(err, rc))
    if password is None:
        raise BecomeFailed("sudo needs a password for this user (give --ask-become-pass or --become-password-file)")
    line = password.reveal().encode() + b"\n"
    rc, err = _exec(transport, f"sudo -k -S -p '' {target}true", line, deadline)
    if rc != 0:
        raise BecomeFailed("sudo: incorrect password" if "incorrect password" in err or "try again" in err
                           else _sudo_said(err, rc))
    return Become(f"sudo -k -S -p '' {target}-- sh -s", line)


def _exec(transport: paramiko.Transport, command: str, stdin: bytes, deadline: Deadline) -> tuple[int, str]:
    """Run a short command; its exit code and stderr (stdout is not needed)."""
    channel = transport.open_session(timeout=max(0.1, deadline.remaining()))
    try:
        channel.settimeout(max(0.1, deadline.remaining()))
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        err = b""
        # Done at EOF, not at the exit status: sshd may send the status before the last of stderr,
        # and half of "sudo: a password is required" reads as a refusal.
        while not (channel.exit_status_ready() and (channel.eof_received or channel.closed)) \
                or channel.recv_stderr_ready():
            if deadline.expired():
                raise BecomeFailed("sudo did not answer before the deadline")
            chunk = channel.recv_stderr(4096) if channel.recv_stderr_ready() else b""
            err += chunk[: max(0, 4096 - len(err))]
            if not chunk:
                channel.status_event.wait(min(0.05, deadline.remaining()))
        if not channel.eof_received and not transport.is_active():
            # The connection died (paramiko closes its channels without an EOF or a status): the
            # caller's "connection lost", not a sudo refusal reading "exit -1".
            raise paramiko.SSHException("the connection closed before sudo answered")
        return channel.recv_exit_status(), err.decode("utf-8", "replace")
    finally:
        channel.close()


def _sudo_said(err: str, rc: int) -> str:
    """`sudo: <its first line of stderr>`, without doubling the `sudo: ` it starts with itself."""
    line = next((line.strip() for line in err.split("\n") if line.strip()), "")
    return f"sudo: {line.removeprefix('sudo: ') or f'exit {rc}'}"
