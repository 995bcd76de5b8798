"""Bare paramiko: the floor under fleet's transport, the reference the performance issue names.

A paramiko Transport per host and one `sh -s` exec channel read to EOF, keys and known_hosts
loaded once, AES-GCM preferred as fleet does, in a thread pool of `forks`. No deadline
machinery, no parsing, no reports: whatever fleet spends above this is fleet's own.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import paramiko

from common import load_job, ok_output, report

_AEAD = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def main() -> None:
    job = load_job()
    script = job["script_bytes"]
    known = paramiko.HostKeys(job["known_hosts"])
    keys = {path: paramiko.PKey.from_path(path) for path in {h["key"] for h in job["hosts"]}}

    def one(h: dict) -> tuple[bool, int, str]:
        try:
            sock = socket.create_connection((h["host"], h["port"]), timeout=job["timeout"])
            transport = paramiko.Transport(sock)
            try:
                options = transport.get_security_options()
                options.ciphers = _AEAD + tuple(c for c in options.ciphers if c not in _AEAD)
                transport.start_client(timeout=job["timeout"])
                name = h["host"] if h["port"] == 22 else f"[{h['host']}]:{h['port']}"
                if not known.check(name, transport.get_remote_server_key()):
                    return False, 0, "host key"
                transport.auth_publickey(h["user"], keys[h["key"]])
                channel = transport.open_session(timeout=job["timeout"])
                channel.exec_command("sh -s")
                channel.sendall(script)
                channel.shutdown_write()
                out = bytearray()
                while chunk := channel.recv(65536):
                    out += chunk
                code = channel.recv_exit_status()
                return ok_output(bytes(out), code), len(out), "" if code == 0 else f"exit {code}"
            finally:
                transport.close()
        except (OSError, paramiko.SSHException, EOFError) as exc:
            return False, 0, type(exc).__name__

    with ThreadPoolExecutor(job["forks"]) as pool:
        report(list(pool.map(one, job["hosts"])))


if __name__ == "__main__":
    main()
