"""Parser `process_info`: the backend's processes as the kernel has them, for fixes that restart them.

Input (probe `procs`): `== procs ns=NS ==` (the probe's own PID namespace), then per process
whose command line holds `process_pattern` (role backend) or that is nginx's master (role
nginx) `== proc pid=N role=R ==` and `key=HEX` lines: `ns` (its PID namespace), `user`,
`argv` (/proc/PID/cmdline: NUL-separated), `user` (`NAME:UID`), `cwd`, `exe`, `cgroup` (its line of
/proc/PID/cgroup), `found` (argv[0] found on the process's own PATH), `venv` (the directory
above the executable's, holding pyvenv.cfg); `requirements=1` when its cwd has a
requirements.txt. Values are hex because paths and arguments may hold any byte.

Nothing here comes from `ps` text or from logs: a restart command is built from what the
kernel says the process is, or not at all.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fleet.fixes import Command, Manager, Note, Service, Signal, StartProcess, Step, Verb
from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, cgroup_container, cgroup_unit, managing_unit, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

_MAX_ARG = 4096
_HEX = re.compile(r"^[0-9a-f]*$")


def _decode(value: str | None) -> str | None:
    """Hex from the probe as text (bytes that are not UTF-8 replaced); None when absent or malformed."""
    if value is None or len(value) % 2 or not _HEX.match(value):
        return None
    return bytes.fromhex(value).decode("utf-8", "replace")


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it. `same_namespace` is None when its namespace could not be read."""

    pid: int
    role: str
    argv: tuple[str, ...] | None
    cwd: str | None
    exe: str | None
    found: str | None
    venv: str | None
    user: str | None
    namespace: str | None
    cgroup: str | None
    same_namespace: bool | None
    requirements: bool

    @property
    def container(self) -> str | None:
        """The container id (12 hex digits) its cgroup names, if any."""
        return cgroup_container(self.cgroup)

    @property
    def unit(self) -> str | None:
        """The systemd service that runs it, if its cgroup names one (a .scope is a login session's)."""
        return cgroup_unit(self.cgroup, ("service",))

    @property
    def executable(self) -> str | None:
        """The program argv[0] named, as an absolute path fleet saw on the host."""
        if not self.argv or not self.argv[0]:
            return None
        first = self.argv[0]
        if first.startswith("/"):
            return first
        if "/" in first:
            return posixpath.normpath(posixpath.join(self.cwd, first)) if self.cwd else None
        # argv[0] looked up on the process's PATH: the probe's hit must end in that very name.
        return self.found if self.found and self.found.endswith("/" + first) else None

    @property
    def unknown(self) -> tuple[str, ...]:
        """What a restart by hand would need and fleet could not read."""
        missing = []
        if self.argv is None:
            missing.append("its command line (/proc/PID/cmdline not readable)")
        elif self.executable is None:
            missing.append(f"where its program {self.argv[0]!r} is (not on the PATH fleet could read)")
        if not self.cwd:
            missing.append("its working directory (/proc/PID/cwd not readable: needs root)")
        elif self.cwd.endswith(" (deleted)"):
            missing.append("its working directory (deleted since it started)")
        return tuple(missing)

    @property
    def where(self) -> str:
        """Whose process it is, for evidence: this host's, or a container's / another namespace's."""
        if self.same_namespace is not False:
            return f"pid {self.pid}"
        owner = f"container {self.container}" if self.container else "another PID namespace"
        return f"pid {self.pid} ({owner}: not this host's own process)"


@dataclass(frozen=True)
class ProcessInfoFacts:
    """The processes the probe read, keyed by pid, and the probe's own PID namespace."""

    namespace: str | None
    processes: tuple[ProcessInfo, ...]

    def get(self, pid: Any) -> ProcessInfo | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def own(self, matching: Iterable[Any]) -> tuple[Any, ...]:
        """Of `matching` (process.matching), those of this host's PID namespace (or not known otherwise)."""
        return tuple(m for m in matching or () if (info := self.get(getattr(m, "pid", m))) is None
                     or info.same_namespace is not False)

    def foreign(self, matching: Iterable[Any]) -> tuple[ProcessInfo, ...]:
        """Of `matching`, the processes of another PID namespace (a container, a neighbour host)."""
        found = (self.get(getattr(m, "pid", m)) for m in matching or ())
        return tuple(p for p in found if p is not None and p.same_namespace is False)

    def foreign_evidence(self, matching: Iterable[Any]) -> str:
        return "\n".join(f"{p.where}: {' '.join(p.argv or ())[:200]}" for p in self.foreign(matching))

    def backends(self, matching: Iterable[Any]) -> tuple[ProcessInfo, ...]:
        """The /proc view of this host's own matching processes."""
        found = (self.get(getattr(m, "pid", m)) for m in self.own(matching))
        return tuple(p for p in found if p is not None and p.role == "backend")

    def restart_steps(self, matching: Iterable[Any]) -> tuple[Step, ...]:
        """Stop this host's own backend processes by pid and start the first again as /proc shows it.

        Processes of other PID namespaces are never offered to be stopped; where the command
        line or directory could not be read, the fix says so instead of guessing.
        """
        steps: list[Step] = [Note(f"{other.where}: left alone, manage it where it runs")
                             for other in self.foreign(matching)]
        by_hand = []
        for pid in (getattr(m, "pid", m) for m in self.own(matching)):
            runner = self._runner(pid)
            if runner:  # a service manager's process is restarted through it, never by hand
                steps.append(Note(f"pid {pid} runs under {runner}: left alone, restart it through {runner}"))
            else:
                by_hand.append(pid)
        if not by_hand:
            return tuple(steps)
        first = self.get(by_hand[0])
        missing = first.unknown if first else ("its command line and directory (the process was not read)",)
        if first and first.same_namespace is None:
            missing += ("its PID namespace (/proc/PID/ns/pid not readable: it may be a container's)",)
        if missing:
            steps.append(Note(f"pid {by_hand[0]}: cannot give a restart command, fleet could not read "
                              f"{'; '.join(missing)}: restart it the way it is deployed"))
            return tuple(steps)
        # Only the processes of the program that is started again (the same argv and directory),
        # seen in this very namespace, are ever signalled: another app matching the pattern is not.
        confirmed = tuple(pid for pid in by_hand if (info := self.get(pid)) and info.same_namespace
                          and (info.argv, info.cwd) == (first.argv, first.cwd))
        steps += [Note(f"pid {pid}: not the command line and directory of pid {first.pid}: left alone")
                  for pid in by_hand if pid not in confirmed]
        steps.append(Signal(confirmed, "stop it by its pid (SIGTERM), then start it again as it was started"))
        steps.append(StartProcess((first.executable, *first.argv[1:]), first.cwd, first.user,
                                  f"as read from /proc/{first.pid}/cmdline and cwd"
                                  + (f", as user {first.user}" if first.user and first.user != "root" else "")))
        return tuple(steps)

    def _runner(self, pid: Any) -> str | None:
        """The systemd unit or container that runs process `pid`, as its cgroup says; None if none."""
        info = self.get(pid)
        if info is None:
            return None
        unit = managing_unit(info.cgroup)
        return f"systemd unit {unit}" if unit else f"container {info.container}" if info.container else None

    def venv_pip_steps(self, matching: Iterable[Any]) -> tuple[Step, ...]:
        """Install the app's requirements into the venv its process runs from, where fleet saw both."""
        for proc in self.backends(matching):
            if proc.venv and proc.cwd and proc.requirements:
                return (Command((f"{proc.venv}/bin/pip", "install", "-r", "requirements.txt"),
                                f"the venv of pid {proc.pid}, the requirements in its directory", cwd=proc.cwd),)
        return ()

    @property
    def nginx(self) -> ProcessInfo | None:
        return next((p for p in self.processes if p.role == "nginx" and p.same_namespace is not False), None)

    @property
    def nginx_reload(self) -> tuple[Step, ...]:
        """Reload nginx through what runs it: the systemd unit its cgroup names, else its own binary."""
        master = self.nginx
        if master is None:
            return (Note("nginx's master process was not found: reload nginx through its service manager"),)
        if master.unit:
            return (Service(Manager.SYSTEMD, Verb.RELOAD, master.unit),)
        if master.container:
            return (Note(f"nginx runs in container {master.container}: reload it there"),)
        binary = master.exe if master.exe and not master.exe.endswith(" (deleted)") else "nginx"
        return (Command(("sudo", binary, "-s", "reload"), "nginx runs without a service manager"),)


def _entry(pid: int, role: str, values: Mapping[str, str], own_ns: str | None) -> ProcessInfo:
    argv_text = _decode(values.get("argv"))
    argv = None
    if argv_text is not None:
        argv = tuple(arg[:_MAX_ARG] for arg in argv_text.rstrip("\0").split("\0")) if argv_text else None
    namespace = _decode(values.get("ns")) or None
    same = None if namespace is None or own_ns is None else namespace == own_ns
    name, _, uid = (_decode(values.get("user")) or "").rstrip("\n").rpartition(":")
    # GNU stat says UNKNOWN for a uid without a name; sudo -u takes #UID for those.
    user = (f"#{uid}" if name == "UNKNOWN" and uid.isdigit() else name) or None
    return ProcessInfo(pid, role, argv, _decode(values.get("cwd")) or None, _decode(values.get("exe")) or None,
                       _decode(values.get("found")) or None, _decode(values.get("venv")) or None, user, namespace,
                       (_decode(values.get("cgroup")) or "").rstrip("\n") or None, same,
                       values.get("requirements") == "1")


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> ProcessInfoFacts:
    """Decode each process's /proc view and compare its PID namespace with the probe's."""
    own_ns, found = None, []
    for section in sections(output.stdout):
        if section.name == "procs":
            own_ns = section.attrs.get("ns") or None
        elif section.name == "proc":
            pid = to_int(section.attrs.get("pid"))
            if pid is None:
                continue
            values = dict(line.partition("=")[::2] for line in section.lines if "=" in line)
            found.append(_entry(pid, section.attrs.get("role", "backend"), values, own_ns))
    return ProcessInfoFacts(own_ns, tuple(found[:MAX_ITEMS]))


PROBE = ProbeSpec(
    name="procs",
    parser="process_info",
    parse=parse,
    description="The backend's processes as /proc has them, to restart them exactly as they were started",
    inputs=(
        Input("process_pattern", "substring of the backend's command line"),
    ),
    timeout_s=10,
    libraries=("common",),
)
