"""Host key verification against OpenSSH known_hosts files, loaded once per run."""

from __future__ import annotations

import base64
import enum
import hmac
import os

from fleet.transport.sshlib import paramiko
from paramiko.hostkeys import HostKeyEntry


class KeyCheck(enum.Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"


def known_hosts_names(address: str, port: int) -> tuple[str, ...]:
    """The names OpenSSH looks up for a host: `addr` on port 22, else `[addr]:port`."""
    return (address,) if port == 22 else (f"[{address}]:{port}",)


class KnownHosts:
    """Every known_hosts entry of the run (hashed entries included), read-only once loaded.

    Entries are parsed by paramiko, one line at a time, but indexed here: paramiko's `HostKeys`
    scans every entry on each lookup (and `load` looks up every line it adds), which is quadratic
    in the file and in the fleet: a 5,000-line known_hosts took seconds to load.
    """

    def __init__(self, paths: list[str]):
        self.paths = [p for p in paths if os.path.isfile(p)]
        # Name -> ((file number, line), key). Hashed entries (|1|salt|HMAC-SHA1(salt, name)) can only
        # be tried one by one, so their salts are decoded once here and each try is one C call.
        self._plain: dict[str, list[tuple[tuple[int, int], paramiko.PKey]]] = {}
        self._hashed: list[tuple[tuple[int, int], bytes, bytes, paramiko.PKey]] = []
        for number, path in enumerate(self.paths):
            self._load(number, path)

    def _load(self, number: int, path: str) -> None:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for lineno, line in enumerate(lines, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    entry = HostKeyEntry.from_line(line, lineno)
                except Exception:  # noqa: BLE001 - bad base64 (InvalidHostKey), a truncated key, ...
                    continue  # as OpenSSH does: a line it cannot read is skipped, not fatal
                if entry is None:
                    continue
                position = (number, lineno)
                for name in entry.hostnames:
                    if name.startswith("|1|"):
                        salt_digest = _salt_and_digest(name)
                        if salt_digest:
                            self._hashed.append((position, *salt_digest, entry.key))
                    else:
                        self._plain.setdefault(name, []).append((position, entry.key))

    def recorded(self, names: tuple[str, ...]) -> dict[str, paramiko.PKey]:
        """The keys recorded for a host, by key type (the first name, then the first line, wins)."""
        keys: dict[str, paramiko.PKey] = {}
        for name in names:
            for _, key in sorted(self._entries(name), key=lambda pair: pair[0]):
                keys.setdefault(key.get_name(), key)
        return keys

    def lines_of(self, names: tuple[str, ...]) -> list[tuple[str, int]]:
        """The files and line numbers that record keys for these names (what `ssh-keygen -R` removes)."""
        found = {position for name in names for position, _ in self._entries(name)}
        return [(self.paths[number], line) for number, line in sorted(found)]

    def _entries(self, name: str) -> list[tuple[tuple[int, int], paramiko.PKey]]:
        encoded = name.encode()
        return [*self._plain.get(name, ()), *((position, key) for position, salt, digest, key in self._hashed
                                              if hmac.compare_digest(hmac.digest(salt, encoded, "sha1"), digest))]


def _salt_and_digest(hashed: str) -> tuple[bytes, bytes] | None:
    """The salt and digest of a `|1|salt|digest` name; None if malformed (paramiko would raise)."""
    parts = hashed.split("|")
    if len(parts) != 4:
        return None
    try:
        return base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except ValueError:
        return None


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
