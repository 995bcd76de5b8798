"""Parser `discovery`: the host's platform and what it says about the parameters nobody gave.

Input (probe `discover`), in sections:
  `== platform ==`     see fleet/probes/platform.py
  `== nginx ==`        `master=...`, `conf=... prefix=...`, then from the config: `log kind=error_log|access_log
                       where=FILE:LINE path=P`, `server where=... listen=N ssl=0|1` (the block serving the
                       proxy's port), `location where=... path=P proxy_pass=X` (the one serving login_path)
                       and `target where=... addr=HOST:PORT` (its backends)
  `== listeners ==`    `port pid program address` per listening socket (`-` where unknown)
  `== backend ==`      `pid=N how=...`, `args=`, `cwd=`, `exe=`, `venv=`, `cgroup=`, `fd N PATH` (open files)
  `== nginx-logs ==`   `error_log=PATHS`, `access_log=PATHS`
and anywhere, for each value found, `param NAME=VALUE` with `why NAME=TEXT` (fleet/params.py reads the
`param` lines; the facts keep both to show where a value came from).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, clip, key_values, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec
from fleet.probes.platform import Platform, parse_platform


@dataclass(frozen=True)
class Found:
    """A parameter value the host gave, and why it is that value."""

    name: str
    value: str
    why: str


@dataclass(frozen=True)
class Place:
    """A line of nginx's config: `where` is FILE:LINE."""

    where: str
    text: str


@dataclass(frozen=True)
class Backend:
    """The process taken for the backend, and how it was picked."""

    pid: int | None
    how: str
    args: str
    cwd: str | None
    exe: str | None
    venv: str | None
    cgroup: str | None
    open_files: tuple[str, ...]


@dataclass(frozen=True)
class DiscoveryFacts:
    platform: Platform
    nginx_location: Place | None
    nginx_targets: tuple[Place, ...]
    nginx_logs: tuple[Place, ...]
    listeners: int
    backend: Backend | None
    found: tuple[Found, ...]

    def value(self, name: str) -> str | None:
        """The value discovered for `name`, if any."""
        return next((f.value for f in reversed(self.found) if f.name == name), None)

    @property
    def evidence(self) -> str:
        """One line per discovered value: `port=9100 (nginx sends / to 127.0.0.1:9100 ...)`."""
        return "\n".join(f"{f.name}={f.value} ({f.why})" for f in self.found)


def _backend(section_lines: list[str]) -> Backend | None:
    values: dict[str, str] = {}
    files: list[str] = []
    for line in section_lines:
        if line.startswith("pid="):
            values.update(key_values(line, tail="how"))
        elif line.startswith("fd "):
            parts = line.split(None, 2)
            if len(parts) == 3 and len(files) < MAX_ITEMS:
                files.append(clip(parts[2]))
        else:
            key, sep, value = line.partition("=")
            if sep and key in ("args", "cwd", "exe", "venv", "cgroup"):
                values[key] = clip(value)
    if "pid" not in values:
        return None
    return Backend(to_int(values.get("pid")), values.get("how", ""), values.get("args", ""),
                   values.get("cwd") or None, values.get("exe") or None, values.get("venv") or None,
                   values.get("cgroup") or None, tuple(files))


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> DiscoveryFacts:
    """Platform, nginx's route for the login path, the backend process, and the values found."""
    platform = parse_platform([])
    location, targets, logs, backend, listeners = None, [], [], None, 0
    values: dict[str, str] = {}
    whys: dict[str, str] = {}
    for section in sections(output.stdout):
        if section.name == "platform":
            platform = parse_platform(section.lines)
        elif section.name == "listeners":
            listeners = sum(1 for line in section.lines if line.strip() and not line.startswith(("param ", "why ")))
        elif section.name == "backend":
            backend = _backend(section.lines)
        for line in section.lines:
            head, _, rest = line.partition(" ")
            if head in ("param", "why"):
                name, sep, value = rest.partition("=")
                if sep and value:
                    (values if head == "param" else whys)[name] = clip(value)
            elif section.name == "nginx" and head in ("location", "target", "log"):
                fields = key_values(rest)
                place = Place(fields.get("where", "?"), clip(rest))
                if head == "location":
                    location = place
                elif len(targets if head == "target" else logs) < MAX_ITEMS:
                    (targets if head == "target" else logs).append(place)
    found = tuple(Found(name, value, whys.get(name, "")) for name, value in values.items())
    return DiscoveryFacts(platform, location, tuple(targets), tuple(logs), listeners, backend, found[:MAX_ITEMS])


PROBE = ProbeSpec(
    name="discover",
    parser="discovery",
    parse=parse,
    description="Which platform is this, and where are nginx's location, the backend's port, process and logs?",
    inputs=(
        Input("port", "TCP port the backend listens on"),
        Input("process_pattern", "substring of the backend's command line"),
        Input("login_path", "path users hit"),
        Input("proxy_url", "base URL of nginx as seen from the host"),
        Input("nginx_conf_dir", "where nginx's config lives; read when nginx -T gives nothing"),
    ),
    timeout_s=15,
    discovers=("port", "process_pattern", "app_log", "service",
               "nginx_conf_dir", "nginx_error_log", "nginx_access_log", "proxy_url"),
    libraries=("common",),
    reads="nginx_config",
)
