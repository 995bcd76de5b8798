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
from fleet.probes._common import MAX_ITEMS, NOT_UNDERSTOOD, clip, header_columns, param, to_int, unread_note
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

DEFAULT_IGNORE = "squashfs iso9660 udf erofs cramfs"
# Pseudo filesystems are no disks: their use is made up (devfs of macOS and FreeBSD is always at
# 100%), so they are never judged. By type, or, where df shows no type (macOS), by the name df
# shows as their device.
PSEUDO_FSTYPES = frozenset(
    "devfs fdescfs procfs linprocfs linsysfs proc sysfs devpts autofs cgroup cgroup2 mqueue debugfs tracefs "
    "securityfs pstore bpf configfs fusectl binfmt_misc nsfs rpc_pipefs".split()
)
# df header names, and the column each is read as: blocks (in KiB, or 512-byte units where the
# header says so) or inodes. Values are checked against the column's shape, so a table read
# wrongly gives no row rather than a wrong one.
_DF_COLUMNS = {
    "Filesystem": "device", "Type": "fstype", "1024-blocks": "size", "1K-blocks": "size", "512-blocks": "size",
    "Used": "used", "Available": "avail", "Avail": "avail", "Capacity": "pct", "Use%": "pct",
    "Inodes": "inodes", "IUsed": "iused", "IFree": "ifree", "IUse%": "ipct",
    "iused": "iused", "ifree": "ifree", "%iused": "ipct", "Mounted on": "mount",
    # Solaris and illumos `df -k`
    "kbytes": "size", "used": "used", "avail": "avail", "capacity": "pct",
}
_DF_NAMES = frozenset(_DF_COLUMNS)
# A device name may hold blanks (macOS `map -hosts`); it ends on a non-blank, which keeps the
# match linear on a hostile line.
_DF_SHAPES = {"device": r"\S(?:.*?\S)?", "fstype": r"\S+", "pct": r"\d+%|-", "ipct": r"\d+%|-", "mount": r"/.*"}
_DF_NUMBER = r"\d+|-"
_DF_MAX_LINE = 4096 + 200  # the longest mount point (PATH_MAX) and the columns before it
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
    def unread(self) -> str | None:
        """Why no filesystem could be read (df printed a format not understood), or None."""
        return None if self.filesystems else unread_note(self.notes)

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


def _pseudo(fstype: str | None, device: str) -> bool:
    """Whether a filesystem is a pseudo one (see PSEUDO_FSTYPES); macOS autofs maps show as
    `map -hosts`, `map auto_home`."""
    return (fstype or device) in PSEUDO_FSTYPES or (fstype is None and device.startswith("map "))


def _pct(value: Any) -> int:
    number = to_int(value)
    return 95 if number is None else number


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return tuple(str(value).replace(",", " ").split())


@dataclass(frozen=True)
class _DfTable:
    """How to read the rows under one df header."""

    row: re.Pattern[str]
    roles: tuple[str, ...]
    per_kib: int  # blocks per KiB: 2 under a 512-blocks header


def _df_table(header: list[str]) -> _DfTable | None:
    """A df header as a row pattern, or None when it lacks a column a filesystem needs."""
    roles = tuple(_DF_COLUMNS[name] for name in header)
    have = set(roles)
    blocks_or_inodes = {"size", "used", "avail", "pct"} <= have or "inodes" in have or {"iused", "ifree"} <= have
    if "device" not in have or roles[-1] != "mount" or len(have) != len(roles) or not blocks_or_inodes:
        return None
    pattern = r"\s+".join("(" + _DF_SHAPES.get(role, _DF_NUMBER) + ")" for role in roles)
    return _DfTable(re.compile(f"^{pattern}$"), roles, 2 if "512-blocks" in header else 1)


def _df(lines: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    """The rows of df output (as {role: value}, sizes in KiB, with the `line`), and its other
    lines: df's own errors, or a note that its table was not understood (whose rows are then
    not read at all)."""
    table: _DfTable | None = None
    understood = True
    rows, others = [], []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        header = header_columns(text, _DF_NAMES)
        if header or text.startswith("Filesystem"):
            table = _df_table(header) if header else None
            understood = table is not None
            if not understood:
                others.append(f"df output {NOT_UNDERSTOOD}: {clip(text, 120)}")
            continue
        match = table.row.match(text) if table and len(text) <= _DF_MAX_LINE else None
        if match:
            row = dict(zip(table.roles, match.groups()))
            for role in ("size", "used", "avail"):
                if row.get(role, "-") != "-" and table.per_kib > 1:
                    row[role] = str(int(row[role]) // table.per_kib)
            row["line"] = clip(text)
            rows.append(row)
        elif understood:
            others.append(clip(text, 200))
    return rows, others


def _inodes(row: dict[str, str]) -> tuple[str, ...] | None:
    """A df -i row as (device, total, used, free, pct, mount). GNU names its columns Inodes IUsed
    IFree IUse%, BusyBox Inodes Used Available Capacity; BSD df -i has no total column."""
    if "inodes" in row:
        used, free = row.get("iused", row.get("used", "-")), row.get("ifree", row.get("avail", "-"))
        return row["device"], row["inodes"], used, free, row.get("ipct", row.get("pct", "-")), row["mount"]
    if "iused" in row and "ifree" in row:
        used, free = to_int(row["iused"]), to_int(row["ifree"])
        total = str(used + free) if used is not None and free is not None else "-"
        return row["device"], total, row["iused"], row["ifree"], row.get("ipct", "-"), row["mount"]
    return None


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


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> FilesystemFacts:
    """Join df, df -i (or statfs) and du by mount point."""
    ignore = _words(param(inputs, "ignore_fstypes", DEFAULT_IGNORE))
    fstypes: dict[str, str] = {}
    df_rows: list[dict[str, str]] = []
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
            rows, others = _df(section.lines)
            df_rows += [row for row in rows if "size" in row]
            notes += others
        elif name == "df-i":
            df_i_ran = True
            rows = [irow for irow in map(_inodes, _df(section.lines)[0]) if irow]
            for irow in rows:
                inode_rows.setdefault(irow[5], irow)
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
    for row in df_rows:
        device, mount = row["device"], row["mount"]
        if (device, mount) in seen:
            continue
        seen.add((device, mount))
        fstype = fstypes.get(mount) or row.get("fstype")
        irow = inode_rows.get(mount)
        size_kb = to_int(row["size"])
        judged = bool(size_kb) and fstype not in ignore and not _pseudo(fstype, device)
        blocks = du.get(("blocks", mount))
        inodes = du.get(("inodes", mount))
        itotal = to_int(irow[1]) if irow else None
        found.append(Filesystem(
            device=clip(device, 200), mount=clip(mount), fstype=fstype, size_kb=size_kb, used_kb=to_int(row["used"]),
            avail_kb=to_int(row["avail"]), use_pct=to_int(row["pct"].rstrip("%")),
            inodes=itotal, iused=to_int(irow[2]) if irow else None, ifree=to_int(irow[3]) if irow else None,
            iuse_pct=to_int(irow[4].rstrip("%")) if irow and itotal else None,
            judged=judged, line=row["line"], iline=clip(" ".join(irow)) if irow else "",
            top=tuple(blocks[0]) if blocks else (), top_complete=blocks[1] if blocks else None,
            top_inodes=tuple(inodes[0]) if inodes else (), top_inodes_complete=inodes[1] if inodes else None,
        ))
    ignored = sorted({fs.fstype for fs in found if fs.fstype in ignore and fs.size_kb})
    if ignored:
        notes.append(f"not judged (ignore_fstypes): {', '.join(ignored)}")
    pseudo = sorted({fs.mount for fs in found if fs.size_kb and _pseudo(fs.fstype, fs.device)})
    if pseudo:
        notes.append(f"not judged (pseudo filesystems, not disks): {', '.join(pseudo)}")
    return FilesystemFacts(source, tuple(found[:MAX_ITEMS]), inode_source, ignore, tuple(notes[:20]))


PROBE = ProbeSpec(
    name="disk",
    parser="filesystems",
    parse=parse,
    description='How full is each filesystem (blocks and inodes), and what fills the full ones?',
    inputs=(
        Input("disk_threshold_pct", "a filesystem at or over this use% is full"),
        Input("inode_threshold_pct", "a filesystem at or over this inode use% is out of inodes"),
        Input("du_timeout", "seconds du may spend on each full filesystem"),
        Input("ignore_fstypes", "filesystem types never judged (space or comma separated)"),
        Input("paths", "paths whose filesystems are judged (space or comma separated; empty: all)"),
    ),
    timeout_s=40,
)
