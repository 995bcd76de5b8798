"""Parser `processes`: which processes match the backend's command line, and where they run from.

Input (probe `process`): a `== ps source=... ==` section with `ps` output, either header-less
`pid user etimes args` (procps `ps -eo pid=,user=,etimes=,args=`) or a table with a header line
(BusyBox `ps -o ...` or plain `ps`), then a `== cwd ==` section of `pid=N cwd=DIR exe=PATH`
lines for the processes the probe itself saw matching.
"""

from __future__ import annotations

import os.path
import shlex
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.parsers._common import MAX_ITEMS, clip, key_values, param, sections, to_int

_SHELLS = {"sh", "ash", "dash", "bash", "zsh", "ksh", "busybox"}
_SEARCHERS = {"grep", "egrep", "fgrep", "pgrep", "awk"}
# Header names of ps tables, mapped to the fields we keep.
_COLUMNS = {"PID": "pid", "USER": "user", "UID": "user", "ELAPSED": "elapsed", "ETIMES": "elapsed"}
_ARGS = {"COMMAND", "CMD", "ARGS"}


@dataclass(frozen=True)
class Process:
    """One process whose command line contains the pattern."""

    pid: int | None
    user: str | None
    elapsed_s: int | None
    args: str
    line: str
    cwd: str | None = None
    exe: str | None = None

    @property
    def start_command(self) -> str:
        """How to start it again by hand: its own command line, from its own directory."""
        if self.cwd:
            return f"cd {shlex.quote(self.cwd)} && nohup {self.args} >/dev/null 2>&1 &"
        return f"nohup {self.args} >/dev/null 2>&1 &"


@dataclass(frozen=True)
class ProcessFacts:
    """The processes matching `process_pattern` (fleet's own probe shells excluded)."""

    source: str
    pattern: str
    matching: tuple[Process, ...]
    seen: int
    notes: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return bool(self.matching)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.matching if p.pid is not None)

    @property
    def first(self) -> Process | None:
        return self.matching[0] if self.matching else None

    @property
    def evidence(self) -> str:
        """The ps lines of the matching processes, one per line."""
        return "\n".join(p.line for p in self.matching)


def _is_probe_shell(args: str) -> bool:
    """True for a shell or grep whose command line merely mentions the pattern.

    Such lines are fleet's own probes (`sh -c '... pat=...'`, `timeout 10 sh -c ...`) or
    someone's `grep`, not the backend.
    """
    words = args.split()[:6]
    for i, word in enumerate(words):
        name = os.path.basename(word)
        if name in _SEARCHERS:
            return True
        if name in _SHELLS and "-c" in words[i + 1 : i + 3]:
            return True
    return False


def _rows(lines: list[str]) -> list[dict[str, str]]:
    """ps output as dicts with pid/user/elapsed/args/line, whatever the ps flavour."""
    lines = [line for line in lines if line.strip()]
    if not lines:
        return []
    header = lines[0].split()
    if header and header[0] == "PID":
        # A table: every column but the last is one word; the last (the command) is the rest.
        names = [_COLUMNS.get(h, "") for h in header[:-1]]
        if header[-1] not in _ARGS:
            return []
        rows = []
        for line in lines[1:]:
            parts = line.split(None, len(names))
            if len(parts) == len(names) + 1:
                row = {name: value for name, value in zip(names, parts) if name}
                row.update(args=parts[-1], line=line)
                rows.append(row)
        return rows
    rows = []
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) == 4:
            rows.append({"pid": parts[0], "user": parts[1], "elapsed": parts[2], "args": parts[3], "line": line})
    return rows


def parse(output: ProbeOutput, params: Mapping[str, Any]) -> ProcessFacts:
    """Keep the processes whose args contain `process_pattern`, with their cwd and executable."""
    pattern = str(param(params, "process_pattern", "python main.py"))
    source, ps_lines, cwd_lines, notes = "unknown", [], [], []
    for section in sections(output.stdout):
        if section.name == "ps":
            source, ps_lines = section.attrs.get("source", "unknown"), section.lines
        elif section.name == "cwd":
            cwd_lines = section.lines
    if source == "unknown":
        notes.append("no ps output")
    where: dict[int, dict[str, str]] = {}
    for line in cwd_lines:
        values = key_values(line)
        pid = to_int(values.get("pid"))
        if pid is not None:
            where[pid] = values
    rows = _rows(ps_lines)
    matching = []
    for row in rows:
        args = row["args"].strip()
        if not pattern or pattern not in args or _is_probe_shell(args):
            continue
        pid = to_int(row.get("pid"))
        located = where.get(pid, {}) if pid is not None else {}
        matching.append(
            Process(
                pid=pid,
                user=row.get("user"),
                elapsed_s=to_int(row.get("elapsed")),
                args=clip(args),
                line=clip(row["line"].strip()),
                cwd=located.get("cwd") or None,
                exe=located.get("exe") or None,
            )
        )
    if matching and not any(p.cwd for p in matching):
        notes.append("working directory not readable (no privilege)")
    return ProcessFacts(source, pattern, tuple(matching[:MAX_ITEMS]), len(rows), tuple(notes))


def report_stdout(output: ProbeOutput, facts: ProcessFacts) -> str:
    """The probe's output as reports keep it: section headers, a ps table's header, the matching
    processes' lines and their cwd lines. `ps` lists every program's command line, other
    programs' secrets included; the rules only read the matching ones, and this output parses
    to the same matching processes."""
    matching = {p.line for p in facts.matching}
    kept, section, first = [], "", False
    for line in (output.stdout or "").split("\n"):
        if line.startswith("== "):
            section, first = line, True
            kept.append(line)
            continue
        if section.startswith("== cwd") or (section.startswith("== ps") and (
                clip(line.strip()) in matching or (first and line.split()[:1] == ["PID"]))):
            kept.append(line)
        first = first and not line.strip()
    return "\n".join(kept)
