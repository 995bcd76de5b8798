"""OpenSSH client fan-out: one `ssh ... sh -s` subprocess per host (script on stdin), `forks` at a time."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from common import load_job, ok_output, report


def main() -> None:
    job = load_job()
    script = job["script_bytes"]

    def one(h: dict) -> tuple[bool, int, str]:
        argv = ["ssh", "-F", "/dev/null", "-i", h["key"], "-p", str(h["port"]),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "KexAlgorithms=curve25519-sha256",
                "-o", f"UserKnownHostsFile={job['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR", f"{h['user']}@{h['host']}", "sh -s"]
        try:
            cp = subprocess.run(argv, input=script, capture_output=True, timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            return False, 0, "timeout"
        return ok_output(cp.stdout, cp.returncode), len(cp.stdout), "" if cp.returncode == 0 else f"exit {cp.returncode}"

    with ThreadPoolExecutor(job["forks"]) as pool:
        report(list(pool.map(one, job["hosts"])))


if __name__ == "__main__":
    main()
