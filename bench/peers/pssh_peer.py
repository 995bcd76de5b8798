"""parallel-ssh (ssh2-python / libssh2): ParallelSSHClient, pool_size = forks.

Each host runs `sh -s` with the script written to the channel's stdin and stdin then closed
(libssh2's `send_eof`), as fleet and the other peers do. (Sending the script as the exec command
itself fails once it outgrows what sshd takes in one request: InvalidRequestError on every host
with the 51 KB 502 script.) The writes go through parallel-ssh's own `eagain_write`, which
resumes a partial write where libssh2 left it.
"""

from __future__ import annotations

from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig

from common import load_job, ok_output, report


def main() -> None:
    job = load_job()
    script = job["script_bytes"]
    hosts = [h["host"] for h in job["hosts"]]
    configs = [HostConfig(port=h["port"], user=h["user"], private_key=h["key"], allow_agent=False, identity_auth=False, num_retries=1, timeout=job["timeout"]) for h in job["hosts"]]
    client = ParallelSSHClient(hosts, host_config=configs, pool_size=job["forks"], num_retries=1,
                               timeout=job["timeout"], allow_agent=False, identity_auth=False)
    output = client.run_command("sh -s", stop_on_errors=False, read_timeout=job["timeout"])
    feed_errors = {}
    for i, out in enumerate(output):
        if out.exception is not None or out.channel is None:
            continue
        try:
            out.client.eagain_write(out.channel.write, script)
            out.client.eagain(out.channel.send_eof)
        except Exception as exc:  # noqa: BLE001 - that host's failure, reported below
            feed_errors[i] = type(exc).__name__
    client.join(output, timeout=job["timeout"])
    results = []
    for i, out in enumerate(output):
        if out.exception is not None or i in feed_errors:
            results.append((False, 0, feed_errors.get(i) or type(out.exception).__name__))
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
