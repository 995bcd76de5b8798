"""A real OpenSSH sshd on loopback for the end-to-end tests, with generated host and user keys."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    addresses: tuple[str, ...]
    host_pub: str          # "ssh-ed25519 AAAA..." of the host key
    user_key: Path         # private key sshd accepts for root
    other_key: Path        # a private key sshd does not accept
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", str(path)],
                   check=True)
    kind, blob, *_ = (path.with_suffix(".pub") if path.suffix else Path(f"{path}.pub")).read_text().split()
    return f"{kind} {blob}"


def start(workdir: Path, addresses: tuple[str, ...] = ("127.0.0.1",), max_startups: int = 100,
          netns: str | None = None, port: int | None = None, log_level: str = "ERROR"
          ) -> tuple[Sshd, subprocess.Popen]:
    """Start sshd -D on a free port of `addresses`, accepting only `user_key` for root.

    With `netns`, sshd runs inside that network namespace and readiness is checked from inside it.
    """
    host_pub = keygen(workdir / "host_ed25519")
    keygen(workdir / "user_ed25519")
    keygen(workdir / "other_ed25519")
    (workdir / "authorized_keys").write_text((workdir / "user_ed25519.pub").read_text())
    port = port or free_port()
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", *[f"ListenAddress {a}" for a in addresses],
        f"HostKey {workdir / 'host_ed25519'}", f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "UsePAM no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "StrictModes no", f"PidFile {workdir / 'sshd.pid'}", f"MaxStartups {max_startups}", f"LogLevel {log_level}", ""]))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    inside = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.Popen([*inside, SSHD, "-D", "-e", "-f", str(config)], stderr=open(workdir / "sshd.log", "wb"))
    deadline = time.monotonic() + 10
    while True:
        try:
            if netns:
                subprocess.run([*inside, "bash", "-c", f"exec 3<>/dev/tcp/{addresses[0]}/{port}"], check=True,
                               capture_output=True, timeout=2)
            else:
                socket.create_connection((addresses[0], port), timeout=0.5).close()
            break
        except (OSError, subprocess.SubprocessError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"sshd did not start: {(workdir / 'sshd.log').read_text()}")
            time.sleep(0.05)
    return Sshd(port, addresses, host_pub, workdir / "user_ed25519", workdir / "other_ed25519", proc.pid), proc
