"""Parser `service_state`: does systemd or docker manage the backend, and is it active?

Input (probe `unit`): `== systemd ==` with `systemctl show -p ...` `Key=Value` lines, or
`== systemd-absent ==` when systemd is not running; then `== docker exit=N ==` with the
`docker inspect --format` line (or docker's error), or `== docker-absent ==`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.parsers._common import clip, key_values, param, sections, to_int

_ARGV = re.compile(r"argv\[\]=([^;]*)")


@dataclass(frozen=True)
class ServiceFacts:
    """What systemd and docker say about `service`.

    `systemd` is "running", "absent" (not PID 1 / no systemctl) or "unknown" (no output);
    `docker` is "present", "absent" (no CLI), "no_daemon", "denied" (no permission on the
    socket), "error" or "unknown". `container_status` is "missing" when docker answers but
    has no such container.
    """

    service: str
    systemd: str
    load_state: str | None
    active_state: str | None
    sub_state: str | None
    main_pid: int | None
    exec_main_status: int | None
    working_directory: str | None
    exec_start: str | None
    fragment_path: str | None
    docker: str
    container_status: str | None
    container_running: bool
    container_pid: int | None
    container_exit_code: int | None
    docker_error: str | None
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
    def active(self) -> bool:
        """The service manager says the backend runs (unit active or container running)."""
        return self.unit_active or self.container_running

    @property
    def manager(self) -> str | None:
        """Who starts the backend: "systemd", "docker", or None (started by hand)."""
        if self.unit_exists:
            return "systemd"
        if self.container_exists:
            return "docker"
        return None

    @property
    def evidence(self) -> str:
        return "\n".join(self.lines)


def _docker(attrs: dict[str, str], lines: list[str]) -> dict[str, Any]:
    """Classify `docker inspect` output: a container's state, or why docker did not answer."""
    text = "\n".join(line for line in lines if line.strip())
    first = clip(text.split("\n")[0]) if text else None
    if attrs.get("exit") == "0" and first:
        state = first.split()[0]
        values = key_values(first)
        return {
            "docker": "present",
            "container_status": state,
            "container_running": values.get("running") == "true",
            "container_pid": to_int(values.get("pid")) or None,
            "container_exit_code": to_int(values.get("exit")),
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


def parse(output: ProbeOutput, params: Mapping[str, Any]) -> ServiceFacts:
    """Read the unit's state and the container's state; absent managers are said so."""
    facts: dict[str, Any] = {
        "service": str(param(params, "service", "")),
        "systemd": "unknown", "load_state": None, "active_state": None, "sub_state": None,
        "main_pid": None, "exec_main_status": None, "working_directory": None,
        "exec_start": None, "fragment_path": None,
        "docker": "unknown", "container_status": None, "container_running": False,
        "container_pid": None, "container_exit_code": None, "docker_error": None,
    }
    evidence = []
    for section in sections(output.stdout):
        if section.name == "systemd-absent":
            facts["systemd"] = "absent"
            evidence.append("systemd: not running on this host")
        elif section.name == "systemd":
            facts["systemd"] = "running"
            show = {}
            for line in section.lines:
                key, sep, value = line.partition("=")
                if sep:
                    show[key.strip()] = value.strip()
            argv = _ARGV.search(show.get("ExecStart", ""))
            facts.update(
                load_state=show.get("LoadState") or None,
                active_state=show.get("ActiveState") or None,
                sub_state=show.get("SubState") or None,
                main_pid=to_int(show.get("MainPID")) or None,
                exec_main_status=to_int(show.get("ExecMainStatus")),
                working_directory=show.get("WorkingDirectory") or None,
                exec_start=clip(argv.group(1).strip()) if argv else None,
                fragment_path=show.get("FragmentPath") or None,
            )
            evidence.append(
                f"systemd: {facts['service']} LoadState={facts['load_state']} "
                f"ActiveState={facts['active_state']} SubState={facts['sub_state']} "
                f"MainPID={facts['main_pid'] or 0}"
            )
        elif section.name == "docker-absent":
            facts["docker"] = "absent"
            evidence.append("docker: not installed")
        elif section.name == "docker":
            facts.update(_docker(section.attrs, section.lines))
            state = facts["container_status"] or facts["docker_error"] or facts["docker"]
            evidence.append(f"docker: {facts['service']}: {state}")
    return ServiceFacts(**facts, lines=tuple(evidence))
