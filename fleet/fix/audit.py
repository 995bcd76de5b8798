"""The audit journal of `fleet fix apply`: append-only JSON lines, one per event, on disk before the next act.

Who, when, the plan's digest, and per host every command (argv, exit code, digests of its
output and a short tail), the verification and the rollback. Created with O_EXCL|O_NOFOLLOW
(mode 0600) under a unique name, so no planted link or concurrent run can redirect it; each line
is flushed and fsynced, so a run killed at any point leaves every act it made recorded.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
from typing import Any, Callable, Mapping

from fleet.fixes import visible

TAIL_CHARS = 2000
_DAY_S = 24 * 3600


def output_record(stdout: bytes, stderr: bytes,
                  redact: Callable[[str], str] = lambda text: text) -> dict[str, Any]:
    """Digests of a command's whole output and its last characters (secrets masked, made visible), for the journal."""
    def tail(data: bytes) -> str:
        text = redact(data.decode("utf-8", "replace")[-TAIL_CHARS:])
        return "\n".join(visible(line) for line in text.split("\n"))

    return {"stdout_sha256": hashlib.sha256(stdout).hexdigest(), "stderr_sha256": hashlib.sha256(stderr).hexdigest(),
            "stdout_tail": tail(stdout), "stderr_tail": tail(stderr), "stdout_bytes": len(stdout),
            "stderr_bytes": len(stderr)}


class Audit:
    """One run's journal file."""

    def __init__(self, path: str, run_id: str):
        self.path = path
        self.run_id = run_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, event: str, **fields: Any) -> None:
        entry = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "run": self.run_id,
                 "event": event, **fields}
        self._file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def attempts_today(out_dir: str, host: str, remedy: str, now: dt.datetime) -> int:
    """How many times `remedy` was started on `host` in the last 24 h, by the journals in `out_dir`."""
    count = 0
    for path in glob.glob(os.path.join(glob.escape(out_dir), "*.audit.jsonl")):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().split("\n")
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, Mapping) and entry.get("event") == "act" and entry.get("host") == host \
                    and entry.get("remedy") == remedy and _age_s(entry.get("ts"), now) < _DAY_S:
                count += 1
    return count


def _age_s(stamp: Any, now: dt.datetime) -> float:
    try:
        return (now - dt.datetime.fromisoformat(str(stamp))).total_seconds()
    except (ValueError, TypeError):
        return float("inf")
