"""Shared by the peer drivers: read the job file, print one JSON line of results.

Each peer runs in its own process (the bench measures it with wait4), reads a job JSON:
{"hosts": [{"name", "host", "port", "user", "key"}], "script": path, "known_hosts": path,
 "forks": int, "timeout": float}, runs the script on every host and prints
{"ok": n, "failed": n, "bytes": n, "errors": {reason: count}}.
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def load_job() -> dict:
    with open(sys.argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    with open(job["script"], "rb") as fh:
        job["script_bytes"] = fh.read()
    return job


def ok_output(stdout: bytes | str, exit_code) -> bool:
    """The script ran to its `exit 0` and printed something."""
    return exit_code == 0 and len(stdout) > 0


def report(results: list[tuple[bool, int, str]]) -> None:
    errors = Counter(reason for ok, _, reason in results if not ok)
    print(json.dumps({"ok": sum(1 for ok, _, _ in results if ok),
                      "failed": sum(1 for ok, _, _ in results if not ok),
                      "bytes": sum(n for _, n, _ in results),
                      "errors": dict(errors.most_common(5))}))
