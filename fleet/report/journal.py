"""The run's journal: each host's entry appended as a JSON line the moment it lands.

A run that is killed, even with SIGKILL, still leaves every result it had.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Mapping

from fleet.errors import InputError
from fleet.report import document
from fleet.report.files import STEM, create_run_file
from fleet.report.model import HostEntry, Report, RunbookRef
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

    def write(self, record: Mapping[str, Any]) -> None:
        """One line: a host entry, or the run or end record, as JSON."""
        self._file.write(document.dumps(record) + "\n")
        self._file.flush()

    def start(self, report: Report, hosts: list[str]) -> None:
        """The first line: what the run is (runbook, inventory, selected `hosts`), for a rebuild after a kill.

        `report`: the run as known before any host (no hosts, no end)."""
        self.write({"run": document.run_fields(report) | {"hosts": hosts}})

    def host_started(self, name: str) -> None:
        """Nothing to journal until the host is done (fleet.runloop.Observer)."""

    def host_done(self, entry: HostEntry) -> None:
        """A host's entry, the moment it lands (the run loop's observer call)."""
        self.write(document.entry_json(entry))

    def finish(self, report: Report) -> None:
        """The last line: the run ended (interrupted or not), its real duration, the hosts never diagnosed."""
        self.write({"end": document.end_fields(report)})

    def record(self, report: Report) -> None:
        """A finished run's whole report at once (a watch's last round): run line, hosts, end line."""
        self.start(report, [h.name for h in report.hosts])
        for entry in report.hosts:
            self.host_done(entry)
        self.finish(report)


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
            entry = document.parse_line(line)
        except ValueError:  # not JSON (json.JSONDecodeError)
            if number == len(lines):
                notes.append(f"the journal's last line was cut off mid-write (line {number})")
                continue
            raise InputError("not a JSON line", path, number) from None
        if isinstance(entry, dict) and isinstance(entry.get("run"), dict):
            run = _checked(entry, "run", _RUN_TYPES, path, number)
        elif isinstance(entry, dict) and isinstance(entry.get("end"), dict):
            end = _checked(entry, "end", _END_TYPES, path, number)
        elif isinstance(entry, dict) and {"name", "verdict", "severity"} <= entry.keys():
            error = first_error(entry, {"$ref": "#/$defs/host"}, "the host entry")
            if error:
                raise InputError(f"not a valid host entry: {error}", path, number)
            hosts.append(entry)
        else:
            raise InputError("not a host entry of a fleet journal", path, number)
    if end is None:
        notes.append("the run did not finish its report (killed?)")
        seen = {h["name"] for h in hosts}
        missing = [n for n in run.get("hosts", ()) if n not in seen]
    else:
        missing = list(end.get("not_diagnosed", ()))
    stem = STEM.match(os.path.basename(path).removesuffix(".jsonl"))
    started = (dt.datetime.strptime(stem.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
               .isoformat(timespec="seconds") if stem else "")
    runbook = RunbookRef(run.get("runbook") or (stem.group(3) if stem else "unknown"),
                         run.get("runbook_description", ""), run.get("runbook_source", ""))
    duration = end.get("duration_s") if end else None
    entries = tuple(document.entry_from_json(h) for h in hosts)
    doc = document.to_json(Report(
        runbook, entries, run.get("inventory", ""), run.get("limit"), run.get("parameters", {}),
        run.get("options", {}), run.get("started_at", started),
        duration if duration is not None else sum(h.duration_s for h in entries),
        bool(end.get("partial")) if end else True, (*notes, *(end.get("notes", ()) if end else ())), tuple(missing)))
    # The run and end lines are read back too: what they gave must make a valid report.
    error = first_error(doc)
    if error:
        raise InputError(f"not a valid fleet journal: {error}", path)
    return doc


def _checked(entry: Any, key: str, types: Mapping[str, type | tuple[type, ...]], path: str, number: int) -> Any:
    """The journal's run or end line (`key`), InputError where a field has the wrong type."""
    fields = entry[key]
    for name, kind in types.items():
        if name in fields and not isinstance(fields[name], kind):
            raise InputError(f"the {key} line's {name} is not {_KIND_NAMES.get(kind, 'valid')}", path, number)
    return fields


_RUN_TYPES: Mapping[str, type | tuple[type, ...]] = {
    "hosts": list, "runbook": str, "runbook_description": str, "runbook_source": str, "parameters": dict,
    "inventory": str, "limit": (str, type(None)), "options": dict, "started_at": str}
_END_TYPES: Mapping[str, type | tuple[type, ...]] = {
    "duration_s": (int, float), "partial": bool, "not_diagnosed": list, "notes": list}
_KIND_NAMES = {list: "a list", str: "text", dict: "an object", (str, type(None)): "text or null",
               (int, float): "a number", bool: "true or false"}
