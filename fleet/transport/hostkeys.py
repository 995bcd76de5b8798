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

    def key_types(self, names: tuple[str, ...]) -> list[str]:
        """Key types recorded for a host, so the server is asked for one we can check."""
        types: list[str] = []
        for name in names:
            entry = self._keys.lookup(name)
            if entry:
                types.extend(t for t in entry.keys() if t not in types)
        return types

    def check(self, names: tuple[str, ...], key: paramiko.PKey) -> KeyCheck:
        """KNOWN if any name records this key, CHANGED if names record other keys, else UNKNOWN."""
        recorded = False
        for name in names:
            entry = self._keys.lookup(name)
            if not entry:
                continue
            recorded = True
            known = entry.get(key.get_name())
            if known is not None and known == key:
                return KeyCheck.KNOWN
        return KeyCheck.CHANGED if recorded else KeyCheck.UNKNOWN


def record(path: str, line: str) -> None:
    """Append an accepted new key (a known_hosts line) to `path`, creating it 0600 like OpenSSH."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line + "\n")
