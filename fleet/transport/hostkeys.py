"""Host key verification against OpenSSH known_hosts files, loaded once per run."""

from __future__ import annotations

import enum
import os
import paramiko


class KeyCheck(enum.Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"


def known_hosts_names(address: str, port: int) -> tuple[str, ...]:
    """The names OpenSSH looks up for a host: `addr` on port 22, else `[addr]:port`."""
    return (address,) if port == 22 else (f"[{address}]:{port}",)


class KnownHosts:
    """Every known_hosts entry of the run (hashed entries included), read-only once loaded."""

    def __init__(self, paths: list[str]):
        self.paths = [p for p in paths if os.path.isfile(p)]
        self._keys = paramiko.HostKeys()
        for path in self.paths:
            self._keys.load(path)

    def recorded(self, names: tuple[str, ...]) -> dict[str, paramiko.PKey]:
        """The keys recorded for a host, by key type (the first name that has a type wins).

        Looked up once per connection: each lookup scans every entry, hashing it for hashed ones.
        """
        keys: dict[str, paramiko.PKey] = {}
        for name in names:
            for key_type, key in (self._keys.lookup(name) or {}).items():
                keys.setdefault(key_type, key)
        return keys


def check(recorded: dict[str, paramiko.PKey], key: paramiko.PKey) -> KeyCheck:
    """KNOWN if this key is recorded, CHANGED if other keys are, else UNKNOWN."""
    if not recorded:
        return KeyCheck.UNKNOWN
    return KeyCheck.KNOWN if recorded.get(key.get_name()) == key else KeyCheck.CHANGED


def record(path: str, line: str) -> None:
    """Append an accepted new key (a known_hosts line) to `path`, creating it 0600 like OpenSSH."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line + "\n")
