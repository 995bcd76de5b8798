"""Parser `nginx_errors`: what nginx logged about its upstreams lately, and the 502s it served.

Input (probe `nginx_logs`):
  `== clock epoch=S local=YYYY/MM/DD_HH:MM:SS minutes=M ==`   the host's clock and the window
  `== error_log path=P state=read|unreadable|missing ==`      then the log's upstream lines
  `== access_log path=P state=... lines=N ==`                  then its lines with status 502

Error log lines look like
`2026/11/30 06:47:04 [error] 12#12: *3 connect() failed (111: Connection refused) while connecting
to upstream, client: 127.0.0.1, server: _, request: "POST /api/v1/demo-login HTTP/1.1", upstream:
"http://127.0.0.1:8000/api/v1/demo-login", host: "127.0.0.1"`; their time is the host's local time.
Only entries within the last M minutes of the host's clock count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, clip, param, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

_ERROR_LINE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (.*)$")
_UPSTREAM = re.compile(r'upstream: "([^"]*)"')
_REQUEST = re.compile(r'request: "([^"]*)"')
_ACCESS_TIME = re.compile(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")
_ACCESS_STATUS = re.compile(r'" 502 ')

# (kind, what it means, pattern), first match wins. errno texts differ by platform (Linux 111,
# BSD/macOS 61 for refused; 110 and 60 for timed out), so the patterns match the words.
_KINDS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (kind, meaning, re.compile(pattern))
    for kind, meaning, pattern in (
        ("socket_permission", "nginx may not connect to the backend's unix socket",
         r"connect\(\) to unix:\S+ failed \(\d+: Permission denied\)"),
        ("socket_missing", "the backend's unix socket does not exist",
         r"connect\(\) to unix:\S+ failed \(\d+: No such file or directory\)"),
        ("refused", "nothing accepted nginx's connection to the upstream",
         r"connect\(\) (?:to \S+ )?failed \(\d+: Connection refused\) while connecting to upstream"),
        ("timed_out", "the upstream did not answer in time", r"upstream timed out \(\d+: [^)]*\)"),
        ("no_live_upstreams", "every server of the upstream was marked failed", r"no live upstreams"),
        ("premature_close", "the upstream closed the connection before a full answer",
         r"upstream prematurely closed connection"),
        ("too_big_header", "the upstream's response headers do not fit nginx's proxy buffer",
         r"upstream sent too big header"),
        ("reset", "the upstream reset the connection", r"\(\d+: Connection reset by peer\) while reading"),
        ("unreachable", "no route to the upstream",
         r"\(\d+: (?:No route to host|Network is unreachable)\) while connecting to upstream"),
    )
)
_MEANING = {kind: meaning for kind, meaning, _ in _KINDS}


@dataclass(frozen=True)
class UpstreamError:
    """One error log entry about an upstream: its kind, time (host-local), age and the line itself."""

    kind: str
    time: str
    age_s: int | None
    upstream: str | None
    request: str | None
    line: str


@dataclass(frozen=True)
class LogFile:
    path: str
    state: str  # read | unreadable | missing


@dataclass(frozen=True)
class NginxLogFacts:
    """Upstream errors within the window (newest last), and the access log's 502s in it."""

    window_minutes: int
    error_logs: tuple[LogFile, ...]
    access_logs: tuple[LogFile, ...]
    errors: tuple[UpstreamError, ...]
    older: int  # upstream errors in the lines read but before the window
    access_502: int | None  # None when no access log could be read
    access_502_last: str | None

    @property
    def readable(self) -> bool:
        return any(f.state == "read" for f in self.error_logs)

    def for_port(self, port: Any) -> NginxLogFacts:
        """Only the errors that may concern the backend on `port`.

        One nginx often fronts several apps on a server, all logging to one error log: an error
        whose upstream names another port is another app's. Upstreams without a port (a named
        upstream block, a unix socket) cannot be told apart and are kept.
        """
        wanted = to_int(port)
        if wanted is None:
            return self
        return replace(self, errors=tuple(e for e in self.errors if _port(e.upstream) in (None, wanted)))

    @property
    def recent(self) -> bool:
        """Whether nginx logged any upstream error within the window."""
        return bool(self.errors)

    def has(self, kind: str) -> bool:
        return any(e.kind == kind for e in self.errors)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kinds in the window, most frequent first."""
        counts: dict[str, int] = {}
        for error in self.errors:
            counts[error.kind] = counts.get(error.kind, 0) + 1
        return tuple(sorted(counts, key=lambda k: -counts[k]))

    @property
    def last(self) -> UpstreamError | None:
        return self.errors[-1] if self.errors else None

    @property
    def causes(self) -> str:
        """`12 refused (nothing accepted ...), 1 timed_out (...)`."""
        return ", ".join(f"{sum(1 for e in self.errors if e.kind == k)} {k} ({_MEANING.get(k, 'other')})"
                         for k in self.kinds)

    @property
    def evidence(self) -> str:
        """The newest line of each kind in the window, with its time, and the access log's 502 count."""
        newest = {e.kind: e for e in self.errors}
        lines = [e.line for e in sorted(newest.values(), key=lambda e: e.time)]
        if self.access_502:
            lines.append(f"access log: {self.access_502} responses with status 502 in the last "
                         f"{self.window_minutes} minutes, the last: {self.access_502_last}")
        return "\n".join(lines)


_UPSTREAM_PORT = re.compile(r"^[a-z]+://(?:\[[^\]]*\]|[^/:\[]+):(\d{1,5})(?:/|$)")


def _port(upstream: str | None) -> int | None:
    """The port an upstream URL names (`http://127.0.0.1:9301/x`), None for a name or a socket."""
    match = _UPSTREAM_PORT.match(upstream or "")
    return int(match.group(1)) if match else None


def _kind(message: str) -> str | None:
    for kind, _, pattern in _KINDS:
        if pattern.search(message):
            return kind
    return "other" if "upstream" in message else None


def _age(then: datetime | None, now: datetime | None) -> int | None:
    if then is None or now is None:
        return None
    return int((now - then).total_seconds())


def _local(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


def _minutes(value: Any, default: int) -> int:
    """A window length in minutes: a whole number >= 0, else the default."""
    minutes = to_int(value)
    return minutes if minutes is not None and minutes >= 0 else default


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> NginxLogFacts:
    """Classify the upstream errors nginx logged in the window and count the 502s it served."""
    minutes = _minutes(param(inputs, "nginx_log_minutes", 15), 15)
    # What was logged before `since` (when fleet fix fixed the host) is history, not a finding.
    since = to_int(param(inputs, "since", 0)) or 0
    now_local, now_epoch = None, None
    error_logs: list[LogFile] = []
    access_logs: list[LogFile] = []
    errors: list[UpstreamError] = []
    older, access_502, access_last = 0, None, None
    for section in sections(output.stdout):
        attrs = section.attrs
        if section.name == "clock":
            now_local = _local(attrs.get("local", ""), "%Y/%m/%d_%H:%M:%S")
            now_epoch = to_int(attrs.get("epoch"))
            minutes = _minutes(attrs.get("minutes"), minutes)
        elif section.name in ("error_log", "access_log"):
            entry = LogFile(clip(attrs.get("path", "?"), 200), attrs.get("state", "unknown"))
            (error_logs if section.name == "error_log" else access_logs).append(entry)
            if entry.state != "read":
                continue
            if section.name == "access_log":
                access_502 = access_502 or 0
                for line in section.lines:
                    stamp = _ACCESS_TIME.search(line)
                    when = _local(stamp.group(1), "%d/%b/%Y:%H:%M:%S %z") if stamp else None
                    if not _ACCESS_STATUS.search(line) or when is None or now_epoch is None:
                        continue
                    if 0 <= now_epoch - when.timestamp() <= minutes * 60 and when.timestamp() >= since:
                        access_502 += 1
                        access_last = clip(line.strip())
                continue
            for line in section.lines:
                match = _ERROR_LINE.match(line.strip())
                kind = _kind(match.group(3)) if match else None
                if match is None or kind is None:
                    continue
                age = _age(_local(match.group(1), "%Y/%m/%d %H:%M:%S"), now_local)
                # Without the host's clock nothing can be placed in the window: nothing counts.
                before_since = since and now_epoch is not None and now_epoch - age < since
                if age is None or not -60 <= age <= minutes * 60 or before_since:
                    older += 1
                    continue
                upstream, request = _UPSTREAM.search(line), _REQUEST.search(line)
                errors.append(UpstreamError(kind, match.group(1), age, upstream.group(1) if upstream else None,
                                            clip(request.group(1), 200) if request else None, clip(line.strip())))
    errors.sort(key=lambda e: e.time)
    return NginxLogFacts(minutes, tuple(error_logs[:MAX_ITEMS]), tuple(access_logs[:MAX_ITEMS]),
                         tuple(errors[-MAX_ITEMS:]), older, access_502, access_last)


PROBE = ProbeSpec(
    name="nginx_logs",
    parser="nginx_errors",
    parse=parse,
    description='What did nginx log about its upstreams lately (error log), and how many 502s did it serve (access log)?',
    inputs=(
        Input("nginx_log_lines", "lines read from the end of each nginx log"),
        Input("nginx_error_log", "nginx's error log(s), space-separated"),
        Input("nginx_access_log", "nginx's access log(s), space-separated"),
        Input("nginx_log_minutes", "entries older than this many minutes are ignored"),
        Input("since", "epoch seconds: entries from before are ignored (0: none)", parse_only=True),
    ),
    timeout_s=15,
    libraries=("common",),
)
