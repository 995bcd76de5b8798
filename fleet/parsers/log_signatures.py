"""Parser `log_signatures`: known failure signatures in the backend's recent log.

Input (probe `logs`): `== logs source=file|file-sudo|journal|docker|none ==` then up to 200
log lines (journal without prefixes: `journalctl -o cat`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fleet.models import ProbeOutput
from fleet.parsers._common import clip, param, port_param, sections

_TRACEBACK = "Traceback (most recent call last):"
# A traceback's frames name files; a venv shows as .../<venv>/lib/pythonX.Y/site-packages.
_FRAME_FILE = re.compile(r'^\s+File "([^"]+)"')
_VENV = re.compile(r"^(/.+?)/lib/python[0-9.]+/site-packages/")
_MODULE = re.compile(r"No module named '([^']+)'")
_PERMISSION_PATH = re.compile(r"Permission denied: '([^']+)'")
_ENV_KEY = re.compile(r"^KeyError: '([A-Z][A-Z0-9_]*)'")
_DB_PORT = re.compile(r"\b(5432|3306)\b")


@dataclass(frozen=True)
class Signature:
    """A recognised failure: its kind, the (last) log line showing it, what it means and what to do."""

    kind: str
    line: str
    cause: str
    fix: str
    count: int


@dataclass(frozen=True)
class LogFacts:
    """Signatures in log order (by last occurrence), the last traceback's exception line, and
    the app's directory and venv as far as tracebacks show them."""

    source: str
    lines: int
    signatures: tuple[Signature, ...]
    last_exception: str | None
    app_dir: str | None
    venv: str | None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.signatures)

    def has(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def evidence(self) -> str:
        return "\n".join(s.line for s in self.signatures)

    @property
    def fixes(self) -> str:
        return "\n".join(s.fix for s in self.signatures)


@dataclass(frozen=True)
class _Context:
    """What fixes may name: the port, the app's directory and venv seen in tracebacks."""

    port: int
    service: str
    app_dir: str | None
    venv: str | None


def _is_database(line: str) -> bool:
    lowered = line.lower()
    return (
        "operationalerror" in lowered
        or "could not connect to server" in lowered
        or "can't connect to mysql" in lowered
        or ("connection refused" in lowered and bool(_DB_PORT.search(line)))
    )


def _port_in_use(line: str, ctx: _Context) -> tuple[str, str]:
    return (
        f"another process already holds the port (expected {ctx.port})",
        f"find the holder: sudo ss -tlnp 'sport = :{ctx.port}' (or sudo lsof -i :{ctx.port}), "
        "then stop that service properly (sudo systemctl stop <its unit>), not by killing a pattern",
    )


def _missing_module(line: str, ctx: _Context) -> tuple[str, str]:
    match = _MODULE.search(line)
    module = f"module '{match.group(1)}'" if match else "a module"
    if ctx.venv:
        pip = f"{shlex.quote(ctx.venv)}/bin/pip install -r {shlex.quote(ctx.app_dir or '.')}/requirements.txt"
    elif ctx.app_dir:
        pip = f"cd {shlex.quote(ctx.app_dir)} && ./venv/bin/pip install -r requirements.txt"
    else:
        pip = "/path/to/backend/venv/bin/pip install -r requirements.txt"
    return f"missing dependency: {module} is not installed", f"install the requirements into the service's venv: {pip}"


def _database(line: str, ctx: _Context) -> tuple[str, str]:
    if "mysql" in line.lower() or "3306" in line:
        check = "sudo systemctl status mysql (or mariadb); mysqladmin -h <db host> -P 3306 ping"
    else:
        check = "sudo systemctl status postgresql; pg_isready -h <db host> -p 5432"
    return "the backend cannot reach its database", f"check the database is running and reachable: {check}; then check DATABASE_URL"


def _permission(line: str, ctx: _Context) -> tuple[str, str]:
    match = _PERMISSION_PATH.search(line)
    if match:
        path = shlex.quote(match.group(1))
        return (
            f"the service user may not access {match.group(1)}",
            f"ls -l {path}; give the service user access (chown/chmod), do not run the backend as root",
        )
    return (
        "permission denied (a file, or a port below 1024)",
        f"check the file permissions, or bind a port >= 1024 (e.g. {ctx.port}) behind nginx",
    )


def _traceback(line: str, ctx: _Context) -> tuple[str, str]:
    env = _ENV_KEY.match(line)
    if env:
        return (
            f"the environment variable {env.group(1)} is not set",
            f"set {env.group(1)} in the service's environment (systemctl edit {ctx.service} / its .env file), then start it",
        )
    return f"unhandled exception: {line}", "read the traceback in the log and fix its cause"


# (kind, does this line show it?, cause and fix); checked in order, first match wins.
_SIGNATURES: tuple[tuple[str, Callable[[str], bool], Callable[[str, _Context], tuple[str, str]]], ...] = (
    ("port_in_use", lambda line: "address already in use" in line.lower(), _port_in_use),
    ("missing_module", lambda line: "ModuleNotFoundError" in line or "ImportError" in line, _missing_module),
    ("database", _is_database, _database),
    ("permission", lambda line: "permission denied" in line.lower(), _permission),
)


def _classify(line: str) -> tuple[str, Callable[[str, _Context], tuple[str, str]]] | None:
    for kind, matches, explain in _SIGNATURES:
        if matches(line):
            return kind, explain
    return None


def _context(lines: list[str], params: Mapping[str, Any]) -> _Context:
    """The app's directory (the first frame outside the Python install) and venv, from tracebacks."""
    app_dir = venv = None
    for line in lines:
        match = _FRAME_FILE.match(line)
        if not match or not match.group(1).startswith("/"):
            continue
        path = match.group(1)
        site = _VENV.match(path)
        if site:
            if "/dist-packages/" not in path and not path.startswith("/usr/lib/"):
                venv = venv or site.group(1)
        elif not path.startswith(("/usr/lib/", "/usr/local/lib/")):
            app_dir = app_dir or path.rsplit("/", 1)[0] or "/"
    return _Context(port_param(params), str(param(params, "service", "")), app_dir, venv)


def parse(output: ProbeOutput, params: Mapping[str, Any]) -> LogFacts:
    """Find the signatures and the last traceback's exception line."""
    source, lines = "unknown", []
    for section in sections(output.stdout):
        if section.name == "logs":
            source, lines = section.attrs.get("source", "unknown"), section.lines
    ctx = _context(lines, params)
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
        cause, fix = explain(line, ctx)
        signatures.append(Signature(kind, line, cause, fix, count))
    return LogFacts(source, len(lines), tuple(signatures), last_exception, ctx.app_dir, ctx.venv)
