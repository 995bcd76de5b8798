"""The run's journal: each host's entry appended as a JSON line the moment it lands.

A run that is killed, even with SIGKILL, still leaves every result it had.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from types import SimpleNamespace
from typing import Any, Mapping

from fleet.errors import InputError
from fleet.report import document
from fleet.report.files import STEM, create_run_file
from fleet.report.schema_check import first_error
from fleet.textfile import read_text



class Journal:
    """An append-only JSON Lines file of a new run, readable by its owner only (it holds host output).

    Its name gives the run its unique stem (`<stamp>-<id>-<runbook>`), which the run's reports share.
    """

    def __init__(self, directory: str | os.PathLike, started: dt.datetime, runbook: str):
        directory = os.fspath(directory)
        self.stem, fd = create_run_file(directory, started, runbook, ".jsonl")
        self.path = os.path.join(directory, f"{self.stem}.jsonl")
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, entry: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()


def load(path: str) -> dict[str, Any]:
    """A report document rebuilt from a journal, for a run that was killed before it could write one.

    A last line cut off mid-write is dropped and said; any other bad line is an InputError.
    """
    lines = read_text(path, "journal").splitlines()
    hosts, notes = [], [f"rebuilt from the journal {os.path.basename(path)}: the run did not finish its report"]
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                notes.append(f"the journal's last line was cut off mid-write (line {number})")
                continue
            raise InputError("not a JSON line", path, number) from None
        if not isinstance(entry, dict) or not {"name", "verdict", "severity"} <= entry.keys():
            raise InputError("not a host entry of a fleet journal", path, number)
        error = first_error(entry, {"$ref": "#/$defs/host"}, "the host entry")
        if error:
            raise InputError(f"not a valid host entry: {error}", path, number)
        hosts.append(entry)
    stem = STEM.match(os.path.basename(path).removesuffix(".jsonl"))
    started = (dt.datetime.strptime(stem.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
               .isoformat(timespec="seconds") if stem else "")
    return document.build(hosts, runbook=SimpleNamespace(name=stem.group(3) if stem else "unknown", description=""),
                          params={}, inventory="", limit=None, options={}, started_at=started,
                          duration_s=sum(h.get("duration_s", 0) for h in hosts), partial=True, notes=notes)
