"""parallel-ssh (ssh2-python / libssh2): ParallelSSHClient, pool_size = forks.

parallel-ssh has no way to close a command's stdin, so the script is sent as the exec command
itself (the remote login shell runs it with `-c`), which is the same work on the host.
"""

from __future__ import annotations

from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig

from common import load_job, ok_output, report


def main() -> None:
    job = load_job()
    script = job["script_bytes"].decode()
    hosts = [h["host"] for h in job["hosts"]]
    configs = [HostConfig(port=h["port"], user=h["user"], private_key=h["key"], allow_agent=False, identity_auth=False, num_retries=1, timeout=job["timeout"]) for h in job["hosts"]]
    client = ParallelSSHClient(hosts, host_config=configs, pool_size=job["forks"], num_retries=1,
                               timeout=job["timeout"], allow_agent=False, identity_auth=False)
    output = client.run_command(script, stop_on_errors=False, read_timeout=job["timeout"])
    client.join(output, timeout=job["timeout"])
    results = []
    for out in output:
        if out.exception is not None:
            results.append((False, 0, type(out.exception).__name__))
            continue
        try:
            text = "\n".join(out.stdout)
        except Exception as exc:  # noqa: BLE001 - report it as that host's failure
            results.append((False, 0, type(exc).__name__))
            continue
        results.append((ok_output(text, out.exit_code), len(text), "" if out.exit_code == 0 else f"exit {out.exit_code}"))
    report(results)


if __name__ == "__main__":
    main()
