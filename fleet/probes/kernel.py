"""Parser `kernel_log`: what the kernel's OOM killer killed, and when.

Input (probe `kernel` of the host runbook): `== clock now=EPOCH uptime=SECONDS tz=+HHMM ==`, then
the OOM-related kernel lines from the first source that could be read:

* `== kernel source=dmesg priv=P ==`: `[ 1618.908895] msg` (seconds since boot);
* `== kernel source=journal priv=P ==`: `journalctl -k -o short-unix`: `EPOCH.USEC host kernel: msg`;
* `== kernel source=file priv=P ==`: a `file=PATH` line, then syslog lines, RFC 3339
  (`2024-05-01T12:00:00.123+00:00 host kernel: msg`) or traditional (`May  1 12:00:00 host kernel: msg`,
  BusyBox syslogd adds the facility: `host kern.err kernel: msg`);
* `== kernel source=none priv=P ==`: nothing could be read.

Each source that failed first leaves `== kernel-failed source=S priv=P ==` with its error (dmesg is
restricted for users by kernel.dmesg_restrict=1 on Debian and others): the facts then say the view
is degraded. Kernel lines of one OOM kill, in order: `COMM invoked oom-killer: ...`, for a memory
cgroup `memory: usage NkB, limit NkB, failcnt N`, on kernels >= 4.19
`oom-kill:constraint=...,task_memcg=...,task=COMM,pid=N,uid=N`, and the kill itself,
`[Memory cgroup out of memory|Out of memory]: Killed process PID (COMM) total-vm:NkB, anon-rss:NkB,
file-rss:NkB, shmem-rss:NkB, ...` (older kernels: `Out of memory: Kill process PID (COMM) score N or
sacrifice child` then `Killed process PID (COMM) total-vm:...`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from fleet.fixes import Blank, Command, Manager, Note, Service, Step, Verb, Word
from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, cgroup_container, cgroup_unit, clip, to_float, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import ProbeSpec
from fleet.probes.disk import human_kb

_DMESG_TS = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\]\s?(.*)$")
_UNIX_TS = re.compile(r"^(\d{9,11}(?:\.\d+)?)\s+\S+\s+kernel:\s?(.*)$")
_ISO_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
                     r"\s+\S+\s+(?:\S+\s+)?kernel:\s?(.*)$")
_BSD_TS = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d\d):(\d\d):(\d\d)\s+\S+\s+(?:\S+\s+)?kernel:\s?(.*)$")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                         "Nov", "Dec"), start=1)}

_INVOKED = re.compile(r"^(.*?) invoked oom-killer:")
_MEMCG_USAGE = re.compile(r"^memory: usage (\d+)kB, limit (\d+)kB")
_CONSTRAINT = re.compile(r"^oom-kill:(.*)$")
_KILLED = re.compile(
    r"^(?:(Memory cgroup out of memory|Out of memory)(?: \([a-z_]+\))?: )?"
    r"Killed process (\d+) \((.+?)\)(?=\s+total-vm:|,|\s*$)"
    r"(?: total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB(?:, shmem-rss:(\d+)kB)?)?(?:,? ?UID:(\d+))?"
)
_OLD_KILL = re.compile(r"^(Memory cgroup out of memory|Out of memory): Kill process (\d+) \((.+?)\) score")


@dataclass(frozen=True)
class OomKill:
    """One process killed by the OOM killer. Sizes in KiB; `age_s` is how long ago, None if unknown.
    `constraint` is CONSTRAINT_MEMCG when a memory cgroup's limit was hit (then `limit_kb`,
    `memcg`), CONSTRAINT_NONE when the whole host ran out."""

    pid: int
    comm: str
    rss_kb: int | None
    anon_rss_kb: int | None
    total_vm_kb: int | None
    uid: int | None
    cgroup_oom: bool
    constraint: str | None
    memcg: str | None
    limit_kb: int | None
    trigger: str | None
    age_s: float | None
    when: str
    lines: tuple[str, ...]

    @property
    def rss_human(self) -> str:
        return human_kb(self.rss_kb)

    @property
    def ago(self) -> str:
        if self.age_s is None:
            return "at an unknown time"
        minutes = int(self.age_s // 60)
        if minutes < 1:
            return f"{int(self.age_s)} s ago"
        return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min ago"

    @property
    def unit(self) -> str | None:
        """The systemd unit of the killed task's cgroup, if its path names one."""
        return cgroup_unit(self.memcg)

    @property
    def container(self) -> str | None:
        return cgroup_container(self.memcg)

    @property
    def describe(self) -> str:
        text = f"pid {self.pid} ({self.comm}), RSS {self.rss_human}"
        if self.anon_rss_kb is not None:
            text += f" (anon {human_kb(self.anon_rss_kb)})"
        text += f", {self.ago}"
        if self.cgroup_oom:
            text += f", at the limit of memory cgroup {self.memcg or '?'}"
            if self.limit_kb is not None:
                text += f" ({human_kb(self.limit_kb)})"
        else:
            text += ", the whole host was out of memory"
        return text


@dataclass(frozen=True)
class KernelLogFacts:
    """OOM kills found in the kernel log, oldest first, and how much of the log could be seen."""

    source: str  # dmesg | journal | file | none | unknown
    file: str | None
    priv: str | None
    now: int | None
    uptime_s: float | None
    kills: tuple[OomKill, ...]
    failures: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def readable(self) -> bool:
        return self.source in ("dmesg", "journal", "file")

    @property
    def degraded(self) -> bool:
        """True when the kernel log could not be read directly (restricted dmesg, no journal)."""
        return not self.readable or bool(self.failures)

    @property
    def source_note(self) -> str:
        if self.source == "dmesg":
            return "dmesg"
        if self.source == "journal":
            return "journalctl -k (dmesg not readable)"
        if self.source == "file":
            return f"{self.file} (dmesg not readable)"
        return "kernel log not readable: OOM kills not checked"

    def kills_within(self, minutes: Any) -> tuple[OomKill, ...]:
        """Kills at most `minutes` old; kills of unknown age never count."""
        window = to_float(minutes)
        if window is None:
            return ()
        return tuple(k for k in self.kills if k.age_s is not None and k.age_s <= window * 60)

    def fixes(self, minutes: Any) -> tuple[Step, ...]:
        """Concrete next steps for the recent kills: which limit to raise, which process to watch."""
        result: list[Step] = []
        seen: set[tuple] = set()
        for kill in reversed(self.kills_within(minutes)):
            key = (kill.comm, kill.memcg, kill.cgroup_oom)
            if key in seen:
                continue
            seen.add(key)
            who = f"{kill.comm} (pid {kill.pid} when killed, RSS {kill.rss_human})"
            if kill.cgroup_oom:
                limit = human_kb(kill.limit_kb) if kill.limit_kb is not None else "its limit"
                said = (f"{who} hit the {limit} memory limit of cgroup {kill.memcg or '?'}: if it needs more, raise "
                        "it; if it keeps growing it leaks: find why before raising the limit")
                more = Blank(f"more than {limit}")
                if kill.unit:
                    result.append(Command(("sudo", "systemctl", "set-property", kill.unit, Word(("MemoryMax=", more))),
                                          said))
                elif kill.container:
                    result.append(Command(("sudo", "docker", "update", "--memory", more, kill.container), said))
                else:
                    result.append(Note(f"{said}: raise memory.max (cgroup v2) or memory.limit_in_bytes (v1) of "
                                       f"{kill.memcg or 'its cgroup'}"))
            else:
                result.append(Command(("ps", "-eo", "pid,rss,comm", "--sort=-rss"),
                                      f"the host ran out of memory and the kernel killed {who}: see what holds "
                                      "memory now", (("head", "-n", "15"),)))
            if kill.unit:
                # The kernel named a .service cgroup: systemd runs that task.
                result.append(Service(Manager.SYSTEMD, Verb.STATUS, kill.unit))
                result.append(Service(Manager.SYSTEMD, Verb.LOGS, kill.unit))
            result.append(Command(("ps", "-eo", "pid,rss,etime,args"), f"watch {kill.comm}'s memory after it restarts",
                                  (("grep", "-F", "--", kill.comm),)))
        if result:
            result.append(Command(("sudo", "dmesg", "-T"), "the kernel's full report (memory per task at the time)",
                                  (("grep", "-A", "40", "invoked oom-killer"),)))
        return tuple(result)


def _clock(attrs: Mapping[str, str]) -> tuple[int | None, float | None, timezone]:
    now, uptime = to_int(attrs.get("now")), to_float(attrs.get("uptime"))
    if uptime is not None and not math.isfinite(uptime):
        uptime = None
    tz = timezone.utc
    match = re.match(r"^([+-])(\d\d)(\d\d)$", attrs.get("tz", ""))
    if match:
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        tz = timezone(-delta if match.group(1) == "-" else delta)
    return now, uptime, tz


def _stamp(line: str, source: str, now: int | None, uptime: float | None,
           tz: timezone) -> tuple[float | None, str, str]:
    """(age in seconds or None, the timestamp as printed, the kernel message) of one log line."""
    if source == "dmesg":
        match = _DMESG_TS.match(line)
        if not match:
            return None, "", line.strip()
        since_boot = float(match.group(1))
        age = max(0.0, uptime - since_boot) if uptime is not None else None
        return age, f"[{match.group(1)}]", match.group(2).strip()
    epoch, when, message = None, "", line.strip()
    match = _UNIX_TS.match(line)
    if match:
        epoch, when, message = float(match.group(1)), match.group(1), match.group(2)
    elif (match := _ISO_TS.match(line)):
        when, message = match.group(1), match.group(2)
        try:
            stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
            epoch = (stamp if stamp.tzinfo else stamp.replace(tzinfo=tz)).timestamp()
        except (ValueError, OverflowError, OSError):
            epoch = None
    elif (match := _BSD_TS.match(line)) and now is not None:
        month = _MONTHS.get(match.group(1))
        when, message = " ".join(line.split()[:3]), match.group(6)
        if month:
            try:
                today = datetime.fromtimestamp(now, tz)
                stamp = datetime(today.year, month, int(match.group(2)), int(match.group(3)), int(match.group(4)),
                                 int(match.group(5)), tzinfo=tz)
                if stamp.timestamp() > now + 86400:  # a December line read in January
                    stamp = stamp.replace(year=today.year - 1)
                epoch = stamp.timestamp()
            except (ValueError, OverflowError, OSError):
                epoch = None
    # syslog lines often carry the kernel's own [seconds since boot] too: drop it from the message.
    inner = _DMESG_TS.match(message)
    if inner:
        message = inner.group(2).strip()
    age = now - epoch if epoch is not None and now is not None else None
    # a little clock skew is "just now"; a line from far in the future has no usable time
    return (None if age is None or age < -86400 else max(0.0, age)), when, message


def _kills(lines: list[str], source: str, now: int | None, uptime: float | None, tz: timezone) -> list[OomKill]:
    kills: list[OomKill] = []
    context: dict[str, Any] = {}
    context_lines: list[str] = []
    reported: set[tuple[int, str]] = set()
    for raw in lines:
        if not raw.strip():
            continue
        age, when, message = _stamp(raw, source, now, uptime, tz)
        if (match := _INVOKED.match(message)):
            context, context_lines = {"trigger": clip(match.group(1).strip(), 64)}, [clip(raw.strip())]
        elif (match := _MEMCG_USAGE.match(message)):
            context["limit_kb"] = int(match.group(2))
            context_lines.append(clip(raw.strip()))
        elif (match := _CONSTRAINT.match(message)):
            fields = dict(part.split("=", 1) for part in match.group(1).split(",") if "=" in part)
            context.update(constraint=fields.get("constraint"), memcg=fields.get("task_memcg") or None,
                           oom_memcg=fields.get("oom_memcg") or None)
            context_lines.append(clip(raw.strip()))
        elif (match := _OLD_KILL.match(message)):
            context["cgroup_oom"] = match.group(1).startswith("Memory cgroup")
            context_lines.append(clip(raw.strip()))
        elif (match := _KILLED.match(message)):
            pid, comm = int(match.group(2)), clip(match.group(3), 64)
            parts = [to_int(match.group(i)) for i in (5, 6, 7)]
            rss = sum(p for p in parts if p is not None) if parts[0] is not None else None
            cgroup_oom = bool(match.group(1) and match.group(1).startswith("Memory cgroup")) \
                or context.get("cgroup_oom", False) or context.get("constraint") == "CONSTRAINT_MEMCG"
            key = (pid, when)
            if key in reported:
                continue
            reported.add(key)
            kills.append(OomKill(
                pid=pid, comm=comm, rss_kb=rss, anon_rss_kb=parts[0], total_vm_kb=to_int(match.group(4)),
                uid=to_int(match.group(8)), cgroup_oom=cgroup_oom, constraint=context.get("constraint"),
                memcg=clip(context.get("memcg") or context.get("oom_memcg") or "", 200) or None,
                limit_kb=context.get("limit_kb") if cgroup_oom else None, trigger=context.get("trigger"),
                age_s=round(age, 1) if age is not None else None, when=when,
                lines=tuple(context_lines + [clip(raw.strip())])[-6:],
            ))
            context, context_lines = {}, []
    return kills


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> KernelLogFacts:
    """Find the OOM kills in whichever kernel log the probe could read."""
    now, uptime, tz = None, None, timezone.utc
    source, file, priv = "unknown", None, None
    failures: list[str] = []
    kills: list[OomKill] = []
    notes: list[str] = []
    for section in sections(output.stdout):
        if section.name == "clock":
            now, uptime, tz = _clock(section.attrs)
        elif section.name == "kernel-failed":
            said = next((line.strip() for line in section.lines if line.strip()), "failed")
            src = section.attrs.get("source", "?")
            failures.append(clip(said if said.startswith(src) else f"{src}: {said}", 200))
            priv = section.attrs.get("priv") or priv
        elif section.name == "kernel":
            source = section.attrs.get("source", "unknown")
            priv = section.attrs.get("priv") or priv
            lines = section.lines
            if source == "file" and lines and lines[0].startswith("file="):
                file, lines = clip(lines[0][len("file="):]), lines[1:]
            kills += _kills(lines, source, now, uptime, tz)
    if failures:
        notes.extend(f"kernel log: {f}" for f in failures)
    if source in ("none", "unknown"):
        notes.append("kernel log not readable" + (f" (privilege: {priv})" if priv else "") +
                     ": OOM kills not checked")
    elif failures:
        notes.append(f"kernel log read from {file or source} instead")
    unknown_age = [k for k in kills if k.age_s is None]
    if unknown_age:
        notes.append(f"{len(unknown_age)} OOM kill(s) of unknown time (no timestamps): not counted as recent")
    return KernelLogFacts(source, file, priv, now, uptime, tuple(kills[-MAX_ITEMS:]), tuple(failures[:5]),
                          tuple(notes))


PROBE = ProbeSpec(
    name="kernel",
    parser="kernel_log",
    parse=parse,
    description="Has the kernel's OOM killer killed anything, and what?",
    timeout_s=20,
)
