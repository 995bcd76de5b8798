"""Parser `log_signatures`: known failure signatures in the backend's recent log.

Input (probe `logs`): `== logs source=file|file-sudo|journal|docker|none ==` then up to 200
log lines (journal without prefixes: `journalctl -o cat`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from fleet.fixes import Blank, Command, Note, Step, Word
from fleet.models import ProbeOutput
from fleet.probes._common import clip, param, port_param
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec
from fleet.probes.procs import ProcessInfoFacts

_TRACEBACK = "Traceback (most recent call last):"
_MODULE = re.compile(r"No module named '([^']+)'")
_PERMISSION_PATH = re.compile(r"Permission denied: '([^']+)'")
_ENV_KEY = re.compile(r"^KeyError: '([A-Z][A-Z0-9_]*)'")
_DB_PORT = re.compile(r"\b(5432|3306)\b")


@dataclass(frozen=True)
class Signature:
    """A recognised failure: its kind, the (last) log line showing it, what it means, what to do, how often."""

    kind: str
    line: str
    cause: str
    steps: tuple[Step, ...]
    count: int


@dataclass(frozen=True)
class LogFacts:
    """Signatures in log order (by last occurrence) and the last traceback's exception line.

    Log lines are the application's and may hold whatever its users sent: no path or name in a
    fix is taken from them (where the app and its venv live comes from /proc, see
    fleet/probes/procs.py).
    """

    source: str
    lines: int
    signatures: tuple[Signature, ...]
    last_exception: str | None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.signatures)

    def has(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def evidence(self) -> str:
        return "\n".join(s.line for s in self.signatures)

    def fix_steps(self, procs: Any = None, matching: Iterable[Any] = ()) -> tuple[Step, ...]:
        """The signatures' fix steps; a missing module is installed into the venv of the running backend
        (pass the `procs` facts and `process.matching`) where fleet saw it, else the fix says it is unknown."""
        steps: list[Step] = []
        for signature in self.signatures:
            steps.extend(signature.steps)
            if signature.kind == "missing_module":
                seen = procs.venv_pip_steps(matching) if isinstance(procs, ProcessInfoFacts) else ()
                steps.extend(seen or _unknown_venv_pip())
        return tuple(steps)


@dataclass(frozen=True)
class _Context:
    """What fixes may name: the runbook's port and service."""

    port: int
    service: str


def _unknown_venv_pip() -> tuple[Step, ...]:
    return (Command((Word((Blank("backend venv"), "/bin/pip")), "install", "-r", "requirements.txt"),
                    "fleet saw no running backend to read its venv and directory from: fill them in",
                    cwd=Blank("backend directory")),)


def _is_database(line: str) -> bool:
    lowered = line.lower()
    return (
        "operationalerror" in lowered
        or "could not connect to server" in lowered
        or "can't connect to mysql" in lowered
        or ("connection refused" in lowered and bool(_DB_PORT.search(line)))
    )


def _port_in_use(line: str, ctx: _Context) -> tuple[str, tuple[Step, ...]]:
    return (
        f"another process already holds the port (expected {ctx.port})",
        (Command(("sudo", "ss", "-tlnp", f"sport = :{ctx.port}"), "find the process that holds the port"),
         Command(("sudo", "lsof", "-i", f":{ctx.port}"), "or, without ss"),
         Note("then stop that service properly, through its service manager, not by killing a pattern")),
    )


def _missing_module(line: str, ctx: _Context) -> tuple[str, tuple[Step, ...]]:
    match = _MODULE.search(line)
    module = f"module '{match.group(1)}'" if match else "a module"
    # The pip step depends on the running backend's venv: LogFacts.fix_steps adds it.
    return f"missing dependency: {module} is not installed", (
        Note("install the requirements into the service's venv, then start it"),)


def _database(line: str, ctx: _Context) -> tuple[str, tuple[Step, ...]]:
    if "mysql" in line.lower() or "3306" in line:
        check = Command(("mysqladmin", "-h", Blank("db host"), "-P", "3306", "ping"))
    else:
        check = Command(("pg_isready", "-h", Blank("db host"), "-p", "5432"))
    return "the backend cannot reach its database", (
        Note("check the database is running and reachable (the database host from the backend's DATABASE_URL)"),
        check)


def _permission(line: str, ctx: _Context) -> tuple[str, tuple[Step, ...]]:
    match = _PERMISSION_PATH.search(line)
    if match:
        return (
            f"the service user may not access {match.group(1)}",
            (Command(("ls", "-ld", "--", match.group(1)),
                     "give the service user access (chown/chmod), do not run the backend as root"),),
        )
    return (
        "permission denied (a file, or a port below 1024)",
        (Note(f"check the file permissions, or bind a port >= 1024 (e.g. {ctx.port}) behind nginx"),),
    )


def _traceback(line: str, ctx: _Context) -> tuple[str, tuple[Step, ...]]:
    env = _ENV_KEY.match(line)
    if env:
        return (
            f"the environment variable {env.group(1)} is not set",
            (Note(f"set {env.group(1)} in the environment of the service {ctx.service} (its unit's Environment= "
                  f"or its .env file), then start it"),),
        )
    return f"unhandled exception: {line}", (Note("read the traceback in the log and fix its cause"),)


# (kind, does this line show it?, cause and fix); checked in order, first match wins.
_SIGNATURES: tuple[tuple[str, Callable[[str], bool], Callable[[str, _Context], tuple[str, tuple[Step, ...]]]], ...] = (
    ("port_in_use", lambda line: "address already in use" in line.lower(), _port_in_use),
    ("missing_module", lambda line: "ModuleNotFoundError" in line or "ImportError" in line, _missing_module),
    ("database", _is_database, _database),
    ("permission", lambda line: "permission denied" in line.lower(), _permission),
)


def _classify(line: str) -> tuple[str, Callable[[str, _Context], tuple[str, tuple[Step, ...]]]] | None:
    for kind, matches, explain in _SIGNATURES:
        if matches(line):
            return kind, explain
    return None


def _context(inputs: Mapping[str, Any]) -> _Context:
    return _Context(port_param(inputs), str(param(inputs, "service", "")))


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> LogFacts:
    """Find the signatures and the last traceback's exception line."""
    source, lines = "unknown", []
    for section in sections(output.stdout):
        if section.name == "logs":
            source, lines = section.attrs.get("source", "unknown"), section.lines
    ctx = _context(inputs)
    found: dict[str, list[Any]] = {}  # kind -> [last line, explain, count, last index]
    last_exception = None
    in_traceback = False
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped.endswith(_TRACEBACK):
            in_traceback = True
            continue
        if in_traceback:
            # Frames are indented; the first unindented line is the exception itself.
            # Frames are skipped: their source lines (`raise ImportError(...)`) are code, not events.
            if not stripped or raw[:1].isspace():
                continue
            in_traceback = False
            last_exception = clip(stripped)
        line = clip(stripped)
        hit = _classify(line)
        if hit:
            kind, explain = hit
            previous = found.get(kind)
            found[kind] = [line, explain, (previous[2] if previous else 0) + 1, index]
    if last_exception and _classify(last_exception) is None:
        found["traceback"] = [last_exception, _traceback, 1, len(lines)]
    signatures = []
    for kind, (line, explain, count, _) in sorted(found.items(), key=lambda item: item[1][3]):
        cause, steps = explain(line, ctx)
        signatures.append(Signature(kind, line, cause, steps, count))
    return LogFacts(source, len(lines), tuple(signatures), last_exception)


PROBE = ProbeSpec(
    name="logs",
    parser="log_signatures",
    parse=parse,
    description='What does the backend log say?',
    inputs=(
        Input("app_log", "the backend's log file"),
        Input("service", "systemd unit or docker container whose log is read when the file is not there"),
        # The advice for some log signatures (port in use, privileged port) names the port.
        Input("port", "TCP port the backend listens on", parse_only=True),
    ),
    timeout_s=15,
    libraries=("common",),
)
