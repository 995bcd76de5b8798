"""Parser `filesystems`: how full each filesystem is, in blocks and inodes, and what fills the full ones.

Input (probe `disk` of the host runbook):

* `== fstypes ==`: `FSTYPE MOUNTPOINT` per line, from /proc/self/mounts (`\\040` for a space);
* `== df source=gnu|busybox|other exit=N ==`: `df -P [-- PATHS]` (POSIX format, KiB), errors included;
* `== df-i source=... exit=N ==`: `df -iP [-- PATHS]`; BusyBox builds without `-i` fail here, and then
  `== statfs-i ==` follows with `TOTAL FREE MOUNTPOINT` lines from `stat -f -c '%c %d %n'`;
* per filesystem at/over the threshold: `== du kind=blocks|inodes timeout=N ==`, a `mount=PATH` line,
  `du -x -d1 -k` (or GNU `du --inodes`) lines sorted biggest first, then `== du-end exit=N ==`
  (124: du was cut off by timeout and its list is partial).

Which filesystems are judged comes from the parameters: `ignore_fstypes` are never judged;
filesystems of size 0 (pseudo filesystems BusyBox df lists) neither. The probe passes `paths`
to df itself, so only their filesystems appear at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.fixes import Blank, Command, Note, Step, Word
from fleet.models import ProbeOutput
from fleet.parsers._common import MAX_ITEMS, clip, param, sections, to_int

DEFAULT_IGNORE = "squashfs iso9660 udf erofs cramfs"
# df -P and df -iP: DEVICE TOTAL USED FREE PCT% MOUNTPOINT (the mount point may hold spaces).
_ROW = re.compile(r"^(\S+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s+(\d+%|-)\s+(/.*)$")
_DU = re.compile(r"^(\d+)\s+(/.*)$")


def human_kb(kb: int | None) -> str:
    """KiB as df -h would say it: 1023K, 1.5M, 12G."""
    if kb is None:
        return "?"
    value, unit = float(kb), "K"
    for next_unit in ("M", "G", "T", "P"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{value:.0f}{unit}" if unit == "K" or value >= 10 else f"{value:.1f}{unit}"


@dataclass(frozen=True)
class DirUsage:
    """One line of du: a directory and its size in KiB (or its file count, for kind inodes)."""

    path: str
    amount: int


@dataclass(frozen=True)
class Filesystem:
    """One filesystem as df shows it. Percentages are df's own (rounded up, as df does);
    inode fields are None where df -i gave nothing (unsupported, or a filesystem without inodes)."""

    device: str
    mount: str
    fstype: str | None
    size_kb: int | None
    used_kb: int | None
    avail_kb: int | None
    use_pct: int | None
    inodes: int | None
    iused: int | None
    ifree: int | None
    iuse_pct: int | None
    judged: bool
    line: str
    iline: str
    top: tuple[DirUsage, ...] = ()
    top_complete: bool | None = None  # None: du not run; False: cut off or failed
    top_inodes: tuple[DirUsage, ...] = ()
    top_inodes_complete: bool | None = None

    @property
    def size_human(self) -> str:
        return human_kb(self.size_kb)

    @property
    def used_human(self) -> str:
        return human_kb(self.used_kb)

    @property
    def avail_human(self) -> str:
        return human_kb(self.avail_kb)

    @property
    def describe(self) -> str:
        return (f"{self.mount}: {self.use_pct}% used ({self.used_human} of {self.size_human}, "
                f"{self.avail_human} free), device {self.device}, {self.fstype or 'type unknown'}")

    @property
    def describe_inodes(self) -> str:
        return (f"{self.mount}: {self.iuse_pct}% of inodes used ({self.iused} of {self.inodes}, {self.ifree} free), "
                f"device {self.device}, {self.fstype or 'type unknown'}")

    @property
    def top_evidence(self) -> str:
        """`du` lines: the biggest directories one level down, biggest first."""
        return _top_lines(self.top, self.top_complete, human=True)

    @property
    def top_inodes_evidence(self) -> str:
        return _top_lines(self.top_inodes, self.top_inodes_complete, human=False)

    @property
    def biggest(self) -> DirUsage | None:
        """The biggest directory under the mount point (not the mount point itself)."""
        return next((d for d in self.top if d.path.rstrip("/") != self.mount.rstrip("/")), None)

    @property
    def fixes(self) -> tuple[Step, ...]:
        """Safe, concrete next steps for this full filesystem: look first, delete nothing."""
        m, result = self.mount, []
        biggest = self.biggest
        if biggest:
            result.append(Command(("sudo", "du", "-xh", "-d1", biggest.path),
                                  f"see what fills {biggest.path} ({human_kb(biggest.amount)}, the biggest directory "
                                  f"on {m})", _BIGGEST_FIRST))
        else:
            result.append(Command(("sudo", "du", "-xh", "-d1", m), f"find what fills {m}", _BIGGEST_FIRST))
        paths = {d.path for d in self.top}
        if m in ("/", "/var", "/var/log") or any(p in ("/var", "/var/log") for p in paths):
            result.append(Command(("sudo", "du", "-xh", "-d1", "/var/log"), "logs", (("sort", "-h"), ("tail",))))
            result.append(Command(("journalctl", "--disk-usage"), "how big the systemd journal is, if the host has one"))
            result.append(Command(("sudo", "journalctl", "--vacuum-size=500M"), "if it is big, this shrinks it"))
        if any(p.endswith("/docker") or "/var/lib/docker" in p for p in paths) or m == "/var/lib/docker":
            result.append(Command(("sudo", "docker", "system", "df"),
                                  "docker: images, containers and volumes by size; review before removing anything"))
        result.append(Command(("sudo", "lsof", "-nP", "+L1", m), "space held by deleted files that a process still "
                              "has open (restart that process to release it)"))
        if self.fstype == "tmpfs":
            result.append(Command(("sudo", "mount", "-o", Word(("remount,size=", Blank("bigger"))), m),
                                  f"{m} is a tmpfs (held in memory): find the writer, or give it more room"))
        return tuple(result)

    @property
    def inode_fixes(self) -> tuple[Step, ...]:
        m = self.mount
        biggest = next((d for d in self.top_inodes if d.path.rstrip("/") != m.rstrip("/")), None)
        result: list[Step] = []
        if biggest:
            result.append(Command(("sudo", "du", "--inodes", "-x", "-d1", biggest.path),
                                  f"{biggest.path} holds the most files ({biggest.amount})", _MOST_FIRST))
        else:
            result.append(Command(("sudo", "du", "--inodes", "-x", "-d1", m),
                                  f"find the directory with the most files on {m}", _MOST_FIRST))
            # The directory reaches the inner shell as $1, never inside its script.
            result.append(Command(("sudo", "find", m, "-xdev", "-type", "d", "-exec", "sh", "-c",
                                   'echo "$(ls -A "$1" | wc -l) $1"', "_", "{}", ";"), "without GNU du",
                                  (("sort", "-n"), ("tail",))))
        result.append(Note("typical culprits: session, cache or mail-queue directories with millions of small "
                           "files; clean them with the owning application's own tool"))
        if self.fstype == "tmpfs":
            result.append(Command(("sudo", "mount", "-o", Word(("remount,nr_inodes=", Blank("more"))), m),
                                  f"{m} is a tmpfs: give it more inodes"))
        return tuple(result)


_BIGGEST_FIRST = (("sort", "-h"), ("tail", "-n", "15"))
_MOST_FIRST = (("sort", "-n"), ("tail", "-n", "15"))


def _top_lines(top: tuple[DirUsage, ...], complete: bool | None, human: bool) -> str:
    lines = [f"  {human_kb(d.amount) if human else d.amount}\t{d.path}" for d in top]
    if complete is False:
        lines.append("  (du did not finish: the list may be partial)")
    return "\n".join(lines)


@dataclass(frozen=True)
class FilesystemFacts:
    """Every filesystem df showed, with the ones judged by the rules marked `judged`."""

    source: str
    filesystems: tuple[Filesystem, ...]
    inode_source: str | None  # df-i | statfs | None (no inode counts)
    ignored_fstypes: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        return self.inode_source is None or any(fs.judged and fs.use_pct is None for fs in self.filesystems)

    @property
    def judged(self) -> tuple[Filesystem, ...]:
        return tuple(fs for fs in self.filesystems if fs.judged)

    @property
    def fullest(self) -> Filesystem | None:
        rated = [fs for fs in self.judged if fs.use_pct is not None]
        return max(rated, key=lambda fs: fs.use_pct) if rated else None

    def full(self, threshold: Any) -> tuple[Filesystem, ...]:
        """Judged filesystems at or over `threshold` use%, fullest first."""
        limit = _pct(threshold)
        found = [fs for fs in self.judged if fs.use_pct is not None and fs.use_pct >= limit]
        return tuple(sorted(found, key=lambda fs: -(fs.use_pct or 0)))

    def inodes_full(self, threshold: Any) -> tuple[Filesystem, ...]:
        """Judged filesystems at or over `threshold` inode use%, fullest first."""
        limit = _pct(threshold)
        found = [fs for fs in self.judged if fs.iuse_pct is not None and fs.iuse_pct >= limit]
        return tuple(sorted(found, key=lambda fs: -(fs.iuse_pct or 0)))


def _pct(value: Any) -> int:
    number = to_int(value)
    return 95 if number is None else number


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return tuple(str(value).replace(",", " ").split())


def _rows(lines: list[str]) -> list[tuple[str, ...]]:
    rows = []
    for line in lines:
        match = _ROW.match(line.rstrip())
        if match:
            rows.append(match.groups())
    return rows


def _du(lines: list[str]) -> tuple[str, list[DirUsage]]:
    mount, found = "", []
    for line in lines:
        if line.startswith("mount="):
            mount = line[len("mount="):].rstrip("\n")
            continue
        match = _DU.match(line.rstrip())
        if match:
            found.append(DirUsage(clip(match.group(2)), int(match.group(1))))
    return mount, sorted(found, key=lambda d: -d.amount)[:8]


def parse(output: ProbeOutput, params: Mapping[str, Any]) -> FilesystemFacts:
    """Join df, df -i (or statfs) and du by mount point."""
    ignore = _words(param(params, "ignore_fstypes", DEFAULT_IGNORE))
    fstypes: dict[str, str] = {}
    df_rows: list[tuple[str, ...]] = []
    lines_by_mount: dict[str, str] = {}
    inode_rows: dict[str, tuple] = {}
    du: dict[tuple[str, str], tuple[list[DirUsage], bool]] = {}
    source, inode_source, notes = "unknown", None, []
    df_ran = df_i_ran = False
    df_i_error = ""
    pending: tuple[str, str, list[DirUsage]] | None = None

    for section in sections(output.stdout):
        name, attrs = section.name, section.attrs
        if name == "fstypes":
            for line in section.lines:
                fstype, _, mount = line.strip().partition(" ")
                if fstype and mount:
                    fstypes[mount.replace("\\040", " ").replace("\\011", "\t")] = fstype
        elif name in ("df", "df-i") and attrs.get("exit") in ("124", "137"):
            notes.append(f"{'df -i' if name == 'df-i' else 'df'} cut off after 10 s (a hung network filesystem?): "
                         "the list may be incomplete")
        if name == "df":
            df_ran = True
            source = attrs.get("source", "unknown")
            for line in section.lines:
                match = _ROW.match(line.rstrip())
                if match:
                    df_rows.append(match.groups())
                    lines_by_mount.setdefault(match.group(6), clip(line.strip()))
                elif line.strip() and not line.startswith("Filesystem"):
                    notes.append(clip(line.strip(), 200))
        elif name == "df-i":
            df_i_ran = True
            rows = _rows(section.lines)
            for row in rows:
                inode_rows.setdefault(row[5], row)
            if rows:
                inode_source = "df-i"
            else:
                df_i_error = clip(next((line.strip() for line in section.lines if line.strip()), "no output"), 120)
        elif name == "statfs-i":
            for line in section.lines:
                parts = line.strip().split(" ", 2)
                if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                    total, free = int(parts[0]), int(parts[1])
                    used = total - free
                    pct = -(-used * 100 // total) if total else None
                    inode_rows.setdefault(parts[2], ("", str(total), str(used), str(free),
                                                     f"{pct}%" if pct is not None else "-", parts[2]))
                    inode_source = "statfs"
        elif name == "du":
            mount, entries = _du(section.lines)
            pending = (attrs.get("kind", "blocks"), mount, entries)
        elif name == "du-end" and pending:
            kind, mount, entries = pending
            complete = attrs.get("exit") == "0"
            du[(kind, mount)] = (entries, complete)
            if not complete:
                code = attrs.get("exit")
                reason = ("cut off by its timeout" if code == "124" else
                          "some directories unreadable (no privilege?)" if code == "1" else f"exit {code}")
                notes.append(f"du {'--inodes ' if kind == 'inodes' else ''}on {mount}: {reason}, list partial")
            pending = None

    if not df_ran:
        notes.append("no df output")
    elif not df_rows:
        notes.append("df printed no filesystem")
    if df_ran and not df_i_ran:
        notes.append("df -i did not run")
    if df_i_error and (inode_source == "statfs" or (df_rows and not inode_rows)):
        notes.append(f"df -i unsupported here ({df_i_error}): " + (
            "inode use read with stat -f instead" if inode_source == "statfs" else "inode use not checked"))

    found: list[Filesystem] = []
    seen: set[tuple[str, str]] = set()
    for device, size, used, avail, pct, mount in df_rows:
        if (device, mount) in seen:
            continue
        seen.add((device, mount))
        fstype = fstypes.get(mount)
        irow = inode_rows.get(mount)
        size_kb = to_int(size)
        judged = bool(size_kb) and fstype not in ignore
        blocks = du.get(("blocks", mount))
        inodes = du.get(("inodes", mount))
        itotal = to_int(irow[1]) if irow else None
        found.append(Filesystem(
            device=clip(device, 200), mount=clip(mount), fstype=fstype, size_kb=size_kb, used_kb=to_int(used),
            avail_kb=to_int(avail), use_pct=to_int(pct.rstrip("%")),
            inodes=itotal, iused=to_int(irow[2]) if irow else None, ifree=to_int(irow[3]) if irow else None,
            iuse_pct=to_int(irow[4].rstrip("%")) if irow and itotal else None,
            judged=judged, line=lines_by_mount.get(mount, ""), iline=clip(" ".join(irow)) if irow else "",
            top=tuple(blocks[0]) if blocks else (), top_complete=blocks[1] if blocks else None,
            top_inodes=tuple(inodes[0]) if inodes else (), top_inodes_complete=inodes[1] if inodes else None,
        ))
    ignored = sorted({fs.fstype for fs in found if fs.fstype in ignore and fs.size_kb})
    if ignored:
        notes.append(f"not judged (ignore_fstypes): {', '.join(ignored)}")
    return FilesystemFacts(source, tuple(found[:MAX_ITEMS]), inode_source, ignore, tuple(notes[:20]))
