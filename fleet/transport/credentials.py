"""Private keys and the ssh-agent, loaded once per run before any connection is made."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Callable

from fleet.transport.sshlib import paramiko

from fleet.errors import InputError

#: What OpenSSH tries when neither the inventory nor ssh_config names a key.
DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

_AGENT_REQUEST_IDENTITIES = 11
_AGENT_IDENTITIES_ANSWER = 12


@dataclass(frozen=True)
class Credentials:
    """Decrypted keys by path, and whether a responsive agent is there. Shared read-only by workers."""

    keys: dict[str, paramiko.PKey] = field(default_factory=dict)
    use_agent: bool = False
    notes: tuple[str, ...] = ()

    def keys_for(self, paths: tuple[str, ...]) -> list[paramiko.PKey]:
        return [self.keys[p] for p in paths if p in self.keys]


def load_credentials(paths: set[str], ask_passphrase: Callable[[str], str | None] | None,
                     agent_timeout_s: float = 2.0) -> Credentials:
    """Load each key file once (asking for a passphrase once per encrypted key) and probe the agent.

    A key named in the inventory that cannot be read is an input error; the default keys are
    tried quietly, as OpenSSH does.
    """
    keys: dict[str, paramiko.PKey] = {}
    notes: list[str] = []
    defaults = {os.path.expanduser(p) for p in DEFAULT_KEY_FILES}
    for path in sorted(paths | defaults):
        if not os.path.isfile(path):
            if path not in defaults:
                raise InputError("private key file not found", path)
            continue
        try:
            keys[path] = _load_key(path, ask_passphrase)
        except _NoPassphrase:
            notes.append(f"skipped encrypted key {path}: no passphrase given")
        except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
            if path not in defaults:
                raise InputError(f"cannot read private key (wrong passphrase?): {' '.join(str(exc).split())}",
                                 path) from None
    use_agent = agent_responds(os.environ.get("SSH_AUTH_SOCK"), agent_timeout_s)
    if os.environ.get("SSH_AUTH_SOCK") and not use_agent:
        notes.append("ssh-agent at SSH_AUTH_SOCK did not answer; not using it")
    return Credentials(keys, use_agent, tuple(notes))


class _NoPassphrase(Exception):
    """An encrypted key, and nobody to ask for its passphrase."""


def _load_key(path: str, ask_passphrase: Callable[[str], str | None] | None) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # Old PEM keys raise PasswordRequiredException; new OpenSSH-format keys come through
        # cryptography, which raises TypeError ("Key is password-protected ...").
        if isinstance(exc, TypeError) and "password" not in str(exc).lower():
            raise
        passphrase = ask_passphrase(path) if ask_passphrase else None
        if not passphrase:
            raise _NoPassphrase() from None
        return paramiko.PKey.from_path(path, passphrase=passphrase.encode())


def agent_responds(sock_path: str | None, timeout_s: float) -> bool:
    """True if an agent answers an identities request in time: a stale socket must not hang a run."""
    if not sock_path:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(sock_path)
            sock.sendall(struct.pack(">IB", 1, _AGENT_REQUEST_IDENTITIES))
            header = sock.recv(5)
    except OSError:
        return False
    return len(header) == 5 and header[4] == _AGENT_IDENTITIES_ANSWER
