"""asyncssh: one connection per host, `sh -s` with the script on stdin, gather + a semaphore of `forks`."""

from __future__ import annotations

import asyncio

import asyncssh

from common import load_job, ok_output, report


async def main() -> None:
    job = load_job()
    script = job["script_bytes"]
    keys = {}
    known = asyncssh.read_known_hosts(job["known_hosts"])
    sem = asyncio.Semaphore(job["forks"])

    async def one(h: dict) -> tuple[bool, int, str]:
        key = keys.get(h["key"])
        if key is None:
            key = keys[h["key"]] = asyncssh.read_private_key(h["key"])
        async with sem:
            try:
                async with asyncssh.connect(h["host"], port=h["port"], username=h["user"], client_keys=[key],
                                            known_hosts=known, agent_path=None, config=[],
                                            kex_algs=["curve25519-sha256", "curve25519-sha256@libssh.org"],
                                            connect_timeout=job["timeout"]) as conn:
                    r = await asyncio.wait_for(conn.run("sh -s", input=script, encoding=None, check=False),
                                               job["timeout"])
                    return ok_output(r.stdout, r.exit_status), len(r.stdout or b""), "" if r.exit_status == 0 else f"exit {r.exit_status}"
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                return False, 0, type(exc).__name__

    report(await asyncio.gather(*(one(h) for h in job["hosts"])))


if __name__ == "__main__":
    asyncio.run(main())
