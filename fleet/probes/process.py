"""Parser `processes`: which processes match the backend's command line, and where they run from.

Input (probe `process`): a `== ps source=... ==` section with `ps` output, either header-less
`pid user etimes args` (procps `ps -eo pid=,user=,etimes=,args=`, source `ps-etimes`) or a table
whose header names its columns (BusyBox `ps -o ...`, plain `ps`, and `ps -ef`, `ps aux`, `ps alx`
of procps, macOS and the BSDs), then a `== cwd ==` section of `pid=N cwd=DIR exe=PATH`
lines for the processes the probe itself saw matching. The probe sends only the first two
lines of the listing and those naming the pattern, then `== ps-lines n=N ==` (how many non-empty lines
ps printed): the rest count as rows. A whole listing (no such section) reads the same.
"""

from __future__ import annotations

import os.path
import re
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import (
    MAX_ITEMS,
    NOT_UNDERSTOOD,
    clip,
    header_columns,
    key_values,
    param,
    to_int,
    unread_note,
)
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

_SHELLS = {"sh", "ash", "dash", "bash", "zsh", "ksh", "busybox"}
_SEARCHERS = {"grep", "egrep", "fgrep", "pgrep", "awk"}
# Header names of ps tables (procps, BSD/macOS, BusyBox), each with the shape its values take;
# a row whose value does not fit its column is not read (a blank field would shift the rest).
_INT, _NUM, _TIME = r"\d+", r"-?\d+(?:[.,]\d+)?|-", r"[\d:.-]+"
_SIZE = r"\d+(?:\.\d+)?[kmgtKMGT]?"  # BusyBox writes big sizes as 98.1m
_STARTED = r"\S*\d\S*"
_SHAPES: dict[str, str | None] = {
    "PID": _INT, "PPID": _INT, "PGID": _INT, "SID": _INT, "SESS": _INT, "TPGID": _INT, "LWP": _INT, "NLWP": _INT,
    "F": r"[0-9a-fA-F]+", "C": _NUM, "CP": _NUM, "CPU": _NUM, "PRI": _NUM, "NI": _NUM, "PSR": _INT,
    "SZ": _SIZE, "VSZ": _SIZE, "VSIZE": _SIZE, "RSS": _SIZE, "%CPU": _NUM, "%MEM": _NUM,
    "ETIMES": _INT, "TIME": _TIME, "ELAPSED": _TIME, "ETIME": _TIME,
    "UID": None, "RUID": None, "USER": None, "RUSER": None, "GROUP": None, "GID": None, "TTY": None, "TT": None,
    "STAT": None, "S": None, "WCHAN": None, "MWCHAN": None, "ADDR": None,
    # A start time is one word with a digit (10:06AM, Oct25, 2019); procps' `lstart` is headed
    # STARTED too but spans five words (`Mon Nov 30 06:47:11 2026`), and its first has none.
    "STIME": _STARTED, "START": _STARTED, "STARTED": _STARTED,
}
_ARGS = {"COMMAND", "CMD", "ARGS"}
_HEADER_NAMES = frozenset(_SHAPES) | frozenset(_ARGS)
# Columns we keep, by header name.
_FIELDS = {"PID": "pid", "USER": "user", "UID": "user", "ELAPSED": "elapsed", "ETIME": "elapsed", "ETIMES": "elapsed"}
_ELAPSED = re.compile(r"^(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+)$")

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
    def unread(self) -> str | None:
        """Why no process could be read (ps printed a format not understood), or None."""
        return None if self.seen else unread_note(self.notes)

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


def _seconds(value: str | None) -> int | None:
    """ps elapsed time as seconds: `ETIMES` is already seconds, `ELAPSED`/`ETIME` `[[dd-]hh:]mm:ss`."""
    match = _ELAPSED.match(value or "")
    if not match:
        return to_int(value)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _table(header: list[str], lines: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a ps table with this header, and the lines that do not fit it.

    Every column but the last is one word; the last (the command) is the rest of the line.
    """
    rows, misfits = [], []
    for line in lines:
        parts = line.split(None, len(header) - 1)
        if len(parts) != len(header) or not all(
            re.fullmatch(_SHAPES[name], value) for name, value in zip(header[:-1], parts) if _SHAPES[name]
        ):
            misfits.append(line)
            continue
        row = {_FIELDS[name]: value for name, value in zip(header[:-1], parts) if name in _FIELDS}
        row.update(args=parts[-1], line=line)
        rows.append(row)
    return rows, misfits


def _rows(source: str, lines: list[str], pattern: str) -> tuple[list[dict[str, str]], str | None]:
    """ps output as dicts with pid/user/elapsed/args/line, whatever the ps flavour, and a note
    when (some of) the output could not be read.

    A table is recognised by its header's column names (`ps -ef` starts with UID, `ps aux` with
    USER, `ps alx` with F); only the probe's own `ps -eo pid=,user=,etimes=,args=` has no header.
    Anything else is not read at all, nor is a table where no line fits its header or a line
    naming the pattern does not: a misread table would name wrong pids, or none.
    """
    lines = [line for line in lines if line.strip()]
    if not lines:
        return [], None
    header = header_columns(lines[0], _HEADER_NAMES)
    if header and "PID" in header and header[-1] in _ARGS and not _ARGS & set(header[:-1]):
        rows, misfits = _table(header, lines[1:])
    elif source == "ps-etimes" and not header:
        rows, misfits = _table(["PID", "USER", "ETIMES", "ARGS"], lines)
    else:
        return [], f"ps output {NOT_UNDERSTOOD} (source={source}): {clip(lines[0].strip(), 80)}"
    unread = [line for line in misfits if pattern and pattern in line] if rows else misfits
    if unread:
        return [], f"ps output {NOT_UNDERSTOOD} (source={source}): {clip(unread[0].strip(), 80)}"
    return rows, f"{len(misfits)} ps line(s) not understood" if misfits else None


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> ProcessFacts:
    """Keep the processes whose args contain `process_pattern`, with their cwd and executable."""
    pattern = str(param(inputs, "process_pattern", "python main.py"))
    source, ps_lines, cwd_lines, notes = "unknown", [], [], []
    has_cwd = False
    printed: int | None = None
    for section in sections(output.stdout):
        if section.name == "ps":
            source, ps_lines = section.attrs.get("source", "unknown"), section.lines
        elif section.name == "ps-lines":
            printed = to_int(section.attrs.get("n"))
        elif section.name == "cwd":
            cwd_lines, has_cwd = section.lines, True
    if source == "unknown":
        notes.append("no ps output")
    where: dict[int, dict[str, str]] = {}
    for line in cwd_lines:
        values = key_values(line)
        pid = to_int(values.get("pid"))
        if pid is not None:
            where[pid] = values
    rows, unread = _rows(source, ps_lines, pattern)
    if unread:
        notes.append(unread)
    seen = len(rows)
    if printed is not None and (rows or not unread):
        # The probe sent the first two lines and those naming the pattern; the rest were rows too.
        seen += max(0, printed - sum(1 for line in ps_lines if line.strip()))
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
                elapsed_s=_seconds(row.get("elapsed")),
                args=clip(args),
                line=clip(row["line"].strip()),
                cwd=located.get("cwd") or None,
                exe=located.get("exe") or None,
            )
        )
    if matching and not any(p.cwd for p in matching):
        notes.append("working directory not readable (no privilege)" if has_cwd
                     else "working directory not shown (no cwd output)")
    return ProcessFacts(source, pattern, tuple(matching[:MAX_ITEMS]), seen, tuple(notes))


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


PROBE = ProbeSpec(
    name="process",
    parser="processes",
    parse=parse,
    description='Is the backend process running, and from where?',
    inputs=(
        Input("process_pattern", "substring of the backend's command line"),
    ),
    timeout_s=10,
    libraries=("common",),
    report_view=report_stdout,
)
