"""The run's journal: each host's entry appended as a JSON line the moment it lands.

A run that is killed, even with SIGKILL, still leaves every result it had.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from types import SimpleNamespace
from typing import Any, Mapping

from fleet.errors import InputError
from fleet.report import document
from fleet.textfile import read_text

_STEM = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")


class Journal:
    """An append-only JSON Lines file, readable by its owner only (it holds host output)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = None

    def __enter__(self) -> "Journal":
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, entry: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()

    def start(self, run: Mapping[str, Any]) -> None:
        """The first line: what the run is (runbook, inventory, selected hosts), for a rebuild after a kill."""
        self.write({"run": run})

    def finish(self, end: Mapping[str, Any]) -> None:
        """The last line: the run ended (interrupted or not), its real duration, the hosts never diagnosed."""
        self.write({"end": end})


def load(path: str) -> dict[str, Any]:
    """The report document rebuilt from a run's journal (a finished run's, or one killed before its report).

    A last line cut off mid-write is dropped and said; any other bad line is an InputError.
    """
    text = read_text(path, "journal")
    # Split on \n only, not splitlines(): JSON strings written with ensure_ascii=False may hold U+2028.
    lines = text.removesuffix("\n").split("\n") if text else []
    hosts: list[dict[str, Any]] = []
    run: Mapping[str, Any] = {}
    end: Mapping[str, Any] | None = None
    notes = [f"rebuilt from the journal {os.path.basename(path)}"]
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                notes.append(f"the journal's last line was cut off mid-write (line {number})")
                continue
            raise InputError("not a JSON line", path, number) from None
        if isinstance(entry, dict) and isinstance(entry.get("run"), dict):
            run = entry["run"]
        elif isinstance(entry, dict) and isinstance(entry.get("end"), dict):
            end = entry["end"]
        elif isinstance(entry, dict) and {"name", "verdict", "severity"} <= entry.keys():
            hosts.append(entry)
        else:
            raise InputError("not a host entry of a fleet journal", path, number)
    if end is None:
        notes.append("the run did not finish its report (killed?)")
        seen = {h["name"] for h in hosts}
        missing = [n for n in run.get("hosts", ()) if n not in seen]
    else:
        missing = list(end.get("not_diagnosed", ()))
    stem = _STEM.match(os.path.basename(path).removesuffix(".jsonl"))
    started = (dt.datetime.strptime(stem.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
               .isoformat(timespec="seconds") if stem else "")
    runbook = SimpleNamespace(name=run.get("runbook") or (stem.group(2) if stem else "unknown"),
                              description=run.get("runbook_description", ""))
    duration = end.get("duration_s") if end else None
    return document.build(hosts, runbook=runbook, params=run.get("parameters", {}),
                          inventory=run.get("inventory", ""), limit=run.get("limit"), options=run.get("options", {}),
                          started_at=run.get("started_at", started),
                          duration_s=duration if duration is not None else sum(h.get("duration_s", 0) for h in hosts),
                          partial=bool(end.get("partial")) if end else True,
                          notes=[*notes, *(end.get("notes", ()) if end else ())], not_diagnosed=missing)
