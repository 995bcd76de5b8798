"""Parser `service_state`: does systemd or docker manage the backend, is it active, and which
of the processes matching the pattern are its own?

Input (probe `unit`):
* `== systemd ==` with `systemctl show -p ...` `Key=Value` lines, or `== systemd-absent ==`
  when systemd is not running (not PID 1, or no systemctl);
* `== docker exit=N ==` with the `docker inspect --format` lines (`STATUS running=.. ...`, then
  `compose_project=`, `compose_service=`, `finished=`, `error=` lines) or docker's error, or
  `== docker-absent ==`; `== docker-compose cli=yes|no ==` when the container carries compose's
  labels (whether `docker compose` works on this host);
* `== pidns self=pid:[N] ==` then one `pid=N pidns=pid:[N] cgroup=PATH` line per process whose
  command line holds the pattern: its PID namespace and its cgroup (systemd's hierarchy, or the
  unified one), so processes of containers and other units can be told from this host's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import LOGIN_UNITS, MAX_ITEMS, clip, key_values, param, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

_ARGV = re.compile(r"argv\[\]=([^;]*)")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
# docker compose's own rules for project and service names: such values are safe in a fix.
_COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_COMPOSE_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ProcessOwner:
    """Where one process matching the pattern runs: its PID namespace and its cgroup."""

    pid: int
    pidns: str | None
    cgroup: str | None

    @property
    def container_id(self) -> str | None:
        """The docker container the cgroup names (`/docker/ID`, `docker-ID.scope`), if any."""
        match = _CONTAINER_ID.search(self.cgroup or "")
        return match.group(0) if match else None

    @property
    def unit(self) -> str | None:
        """The systemd service unit the cgroup names (`/system.slice/NAME.service`), if any."""
        # the innermost .service: a unit with Delegate= may have cgroups of its own below it
        return next((part for part in reversed((self.cgroup or "").split("/")) if part.endswith(".service")), None)


@dataclass(frozen=True)
class ServiceFacts:
    """What systemd and docker say about `service`, and who owns the matching processes.

    `systemd` is "running", "absent" (not PID 1 / no systemctl) or "unknown" (no output);
    `docker` is "present", "absent" (no CLI), "no_daemon", "denied" (no permission on the
    socket), "error" or "unknown". `container_status` is "missing" when docker answers but
    has no such container. `compose_cli` is None unless the container is compose-managed.
    """

    service: str
    systemd: str
    load_state: str | None
    active_state: str | None
    sub_state: str | None
    result: str | None
    restarts: int | None
    main_pid: int | None
    exec_main_status: int | None
    working_directory: str | None
    exec_start: str | None
    fragment_path: str | None
    control_group: str | None
    docker: str
    container_status: str | None
    container_running: bool
    container_restarting: bool
    oom_killed: bool
    container_pid: int | None
    container_exit_code: int | None
    container_restarts: int | None
    memory_limit: int | None
    container_id: str | None
    container_finished: str | None
    container_error: str | None
    compose_project: str | None
    compose_service: str | None
    compose_cli: bool | None
    docker_error: str | None
    self_pidns: str | None
    owners: tuple[ProcessOwner, ...]
    # Every matching process of the moment is in `owners` (ps answered, the list not cut).
    owners_complete: bool
    lines: tuple[str, ...]

    @property
    def unit_exists(self) -> bool:
        return self.load_state == "loaded"

    @property
    def unit_active(self) -> bool:
        return self.active_state == "active"

    @property
    def container_exists(self) -> bool:
        return self.container_status not in (None, "missing")

    @property
    def container_up(self) -> bool:
        """The container runs for real: docker says running, and not between two crashes."""
        return self.container_running and not self.container_restarting

    @property
    def active(self) -> bool:
        """The service manager says the backend runs (unit active or container up)."""
        return self.unit_active or self.container_up

    @property
    def manager(self) -> str | None:
        """Who starts the backend: "systemd", "docker", or None (started by hand)."""
        if self.unit_exists:
            return "systemd"
        if self.container_exists:
            return "docker"
        return None

    @property
    def state(self) -> str:
        """The manager's word on the service, for a summary ("failed (result start-limit-hit)")."""
        if self.manager == "systemd":
            text = f"{self.active_state} ({self.sub_state}"
            if self.result and self.result != "success":
                text += f", result {self.result}"
            return text + ")"
        if self.manager == "docker":
            if self.oom_killed and not self.container_up:
                text = f"OOM-killed ({self.container_status}, exit code {self.container_exit_code}"
                if self.memory_limit:
                    text += f", memory limit {self.memory_limit // (1 << 20)} MiB"
                return text + ")"
            if self.container_restarting:
                return (f"restarting (crash loop: exit code {self.container_exit_code}, "
                        f"{self.container_restarts} restarts)")
            if self.container_status == "exited":
                return f"exited (exit code {self.container_exit_code})"
            return str(self.container_status)
        return "not managed by systemd or docker"

    def owner(self, pid: int | None) -> ProcessOwner | None:
        return next((o for o in self.owners if o.pid == pid), None)

    def belongs(self, pid: int | None) -> bool:
        """Whether process `pid` can be this service's backend on this host.

        For a container: only its own processes. Otherwise not a process of some container, of
        another PID namespace (a neighbour machine sharing the kernel), or, for a loaded unit, of
        another systemd service. A process this probe did not list counts, unless its list was
        complete: then the process had ended before this probe looked (a crash loop's).

        A container docker reports restarting owns none: a process caught between two of its
        crashes lives for moments, and taking it for a running backend would turn a crash loop
        into "runs but does not listen" by the luck of when ps ran.
        """
        if self.manager == "docker" and self.container_restarting:
            return False
        owner = self.owner(pid)
        if owner is None:
            return not self.owners_complete
        if self.manager == "docker" and self.container_id:
            return owner.container_id == self.container_id
        if owner.container_id:
            return False
        if self.self_pidns and owner.pidns and owner.pidns != self.self_pidns:
            return False
        if owner.unit and owner.unit not in LOGIN_UNITS:
            # Another systemd service's process is that service's, whether or not the service
            # fleet was told about exists: never this backend's to restart by hand.
            return owner.unit == _unit_name(self.service)
        return True

    def own(self, processes: Iterable[Any]) -> tuple[Any, ...]:
        """The processes (anything with a `pid`) that can be this service's backend."""
        return tuple(p for p in processes or () if self.belongs(getattr(p, "pid", None)))

    def neighbours(self, processes: Iterable[Any]) -> tuple[Any, ...]:
        """The processes that match the pattern but belong to a container or another service."""
        return tuple(p for p in processes or () if not self.belongs(getattr(p, "pid", None)))

    def neighbour_evidence(self, processes: Iterable[Any]) -> str:
        """One line per neighbour process: whose it is, so a reader sees why it was left out."""
        lines = []
        for process in self.neighbours(processes):
            owner = self.owner(process.pid)
            if owner.container_id:
                whose = f"container {owner.container_id[:12]}"
            elif owner.pidns and self.self_pidns and owner.pidns != self.self_pidns:
                whose = f"another PID namespace ({owner.pidns})"
            elif owner.unit:
                whose = f"unit {owner.unit}"
            else:  # the service is a container, and this runs outside it
                whose = f"cgroup {owner.cgroup or '(unreadable)'}, not container {self.service}"
            lines.append(f"not this service's: pid {process.pid} belongs to {whose}: {getattr(process, 'args', '')}")
        return "\n".join(lines)

    @property
    def evidence(self) -> str:
        return "\n".join(self.lines)


def _unit_name(service: str) -> str:
    return service if "." in service else f"{service}.service"


def _label(value: str | None, pattern: re.Pattern) -> str | None:
    return value if value and pattern.fullmatch(value) else None


def _docker(attrs: dict[str, str], lines: list[str]) -> dict[str, Any]:
    """Classify `docker inspect` output: a container's state, or why docker did not answer."""
    text = "\n".join(line for line in lines if line.strip())
    first = clip(text.split("\n")[0]) if text else None
    if attrs.get("exit") == "0" and first:
        values = key_values(first)
        extra = {}
        for line in lines[1:]:
            key, sep, value = line.partition("=")
            if sep and key in ("compose_project", "compose_service", "finished", "error"):
                # a missing label prints Go's "<no value>"
                extra[key] = None if value.strip() in ("", "<no value>") else clip(value.strip())
        return {
            "docker": "present",
            "container_status": first.split()[0],
            "container_running": values.get("running") == "true",
            "container_restarting": values.get("restarting") == "true",
            "oom_killed": values.get("oom_killed") == "true",
            "container_pid": to_int(values.get("pid")) or None,
            "container_exit_code": to_int(values.get("exit")),
            "container_restarts": to_int(values.get("restarts")),
            "memory_limit": to_int(values.get("memory")) or None,
            "container_id": values.get("id") if _CONTAINER_ID.fullmatch(values.get("id", "")) else None,
            "container_finished": extra.get("finished"),
            "container_error": extra.get("error"),
            "compose_project": _label(extra.get("compose_project"), _COMPOSE_PROJECT),
            "compose_service": _label(extra.get("compose_service"), _COMPOSE_SERVICE),
            "docker_error": None,
        }
    lowered = text.lower()
    if "no such object" in lowered or "no such container" in lowered:
        return {"docker": "present", "container_status": "missing", "docker_error": first}
    if "permission denied" in lowered:
        return {"docker": "denied", "docker_error": first}
    if "cannot connect to the docker daemon" in lowered or "is the docker daemon running" in lowered:
        return {"docker": "no_daemon", "docker_error": first}
    # `timeout` exits 124 (GNU) or 143 (BusyBox, SIGTERM) when the daemon hangs.
    if attrs.get("exit") in ("124", "143"):
        return {"docker": "no_daemon", "docker_error": first or "docker did not answer in time"}
    return {"docker": "error", "docker_error": first}


def _systemd(lines: list[str]) -> dict[str, Any]:
    show = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            show[key.strip()] = value.strip()
    argv = _ARGV.search(show.get("ExecStart", ""))
    return {
        "systemd": "running",
        "load_state": show.get("LoadState") or None,
        "active_state": show.get("ActiveState") or None,
        "sub_state": show.get("SubState") or None,
        "result": show.get("Result") or None,
        "restarts": to_int(show.get("NRestarts")),
        "main_pid": to_int(show.get("MainPID")) or None,
        "exec_main_status": to_int(show.get("ExecMainStatus")),
        "working_directory": show.get("WorkingDirectory") or None,
        "exec_start": clip(argv.group(1).strip()) if argv else None,
        "fragment_path": show.get("FragmentPath") or None,
        "control_group": show.get("ControlGroup") or None,
    }


def _owners(lines: list[str]) -> tuple[ProcessOwner, ...]:
    owners = []
    for line in lines:
        values = key_values(line, tail="cgroup")
        pid = to_int(values.get("pid"))
        if pid is not None:
            owners.append(ProcessOwner(pid, values.get("pidns") or None, clip(values.get("cgroup", "")) or None))
    return tuple(owners[:MAX_ITEMS])


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> ServiceFacts:
    """Read the unit's state, the container's state and the matching processes' owners."""
    facts: dict[str, Any] = {
        "service": str(param(inputs, "service", "")),
        "systemd": "unknown", "load_state": None, "active_state": None, "sub_state": None,
        "result": None, "restarts": None, "main_pid": None, "exec_main_status": None,
        "working_directory": None, "exec_start": None, "fragment_path": None, "control_group": None,
        "docker": "unknown", "container_status": None, "container_running": False,
        "container_restarting": False, "oom_killed": False, "container_pid": None,
        "container_exit_code": None, "container_restarts": None, "memory_limit": None,
        "container_id": None, "container_finished": None, "container_error": None,
        "compose_project": None, "compose_service": None, "compose_cli": None,
        "docker_error": None, "self_pidns": None, "owners": (), "owners_complete": False,
    }
    for section in sections(output.stdout):
        if section.name == "systemd-absent":
            facts["systemd"] = "absent"
        elif section.name == "systemd":
            facts.update(_systemd(section.lines))
        elif section.name == "docker-absent":
            facts["docker"] = "absent"
        elif section.name == "docker":
            facts.update(_docker(section.attrs, section.lines))
        elif section.name == "docker-compose":
            facts["compose_cli"] = section.attrs.get("cli") == "yes"
        elif section.name == "pidns":
            facts["self_pidns"] = section.attrs.get("self") or None
            facts["owners"] = _owners(section.lines)
            # The probe cuts its list at 50 lines: a list that long may miss some.
            facts["owners_complete"] = section.attrs.get("listed") == "all" and len(section.lines) < 50
    result = ServiceFacts(**facts, lines=())
    return replace(result, lines=_evidence(result))


def _evidence(facts: ServiceFacts) -> tuple[str, ...]:
    """The lines a report shows for the service managers' state."""
    lines = []
    if facts.systemd == "absent":
        lines.append("systemd: not running on this host")
    elif facts.systemd == "running":
        line = (f"systemd: {facts.service} LoadState={facts.load_state} ActiveState={facts.active_state} "
                f"SubState={facts.sub_state} MainPID={facts.main_pid or 0}")
        if facts.unit_exists and facts.result:
            line += f" Result={facts.result} NRestarts={facts.restarts or 0} ExecMainStatus={facts.exec_main_status}"
        lines.append(line)
    if facts.docker == "absent":
        lines.append("docker: not installed")
    elif facts.docker != "unknown":
        if facts.container_exists:
            state = (f"{facts.container_status} running={str(facts.container_running).lower()} "
                     f"restarting={str(facts.container_restarting).lower()} "
                     f"oom_killed={str(facts.oom_killed).lower()} exit={facts.container_exit_code} "
                     f"restarts={facts.container_restarts}")
            if facts.memory_limit:
                state += f" memory_limit={facts.memory_limit}"
            if facts.container_finished and not facts.container_up:
                state += f" finished={facts.container_finished}"
            if facts.compose_project:
                state += f" compose project={facts.compose_project} service={facts.compose_service}"
        else:
            state = facts.container_status or facts.docker_error or facts.docker
        lines.append(f"docker: {facts.service}: {state}")
    return tuple(lines)


PROBE = ProbeSpec(
    name="unit",
    parser="service_state",
    parse=parse,
    description='Does a systemd unit or docker container manage the backend, is it active, and whose are the matching processes?',
    inputs=(
        Input("service", "systemd unit or docker container running the backend"),
        Input("process_pattern", "substring of the backend's command line"),
    ),
    timeout_s=10,
    libraries=("common",),
)
