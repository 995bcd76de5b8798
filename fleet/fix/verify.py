"""Is a fixed host really fixed: the runbook healthy K times in a row, and the public URL answering.

The URL is checked from the controller (the path users take), with the status, which layer
answered (an edge/CDN, nginx itself, or the application behind it) and the timings.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

from fleet.fix.remedies import Verify
from fleet.fix.remote import Remote
from fleet.models import Host, HostResult, Severity

PAUSE_S = 1.0
_EDGE_HEADERS = ("via", "cf-ray", "x-amz-cf-id", "x-cache", "x-served-by", "fastly-debug-digest")
_NGINX_ERRORS = {502, 503, 504}


@dataclass(frozen=True)
class UrlCheck:
    """One request to the public URL from the controller."""

    url: str
    ok: bool
    status: int | None = None
    layer: str = ""
    server: str = ""
    connect_s: float | None = None
    first_byte_s: float | None = None
    total_s: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Verification:
    ok: bool
    runs: tuple[str, ...]
    last: HostResult | None
    url: UrlCheck | None = None
    reason: str = ""
    seconds: float = field(default=0.0)


def url_for(template: str, host: Host) -> str:
    """The URL to check for a host: `{address}` and `{name}` in it are the host's."""
    return template.replace("{address}", host.address).replace("{name}", host.name)


def layer(status: int, headers: http.client.HTTPMessage) -> str:
    """Which layer produced the answer, from what it says about itself."""
    server = (headers.get("Server") or "").lower()
    edge = any(headers.get(h) for h in _EDGE_HEADERS)
    if "nginx" in server:
        # nginx's own error pages are HTML; an application behind it answers in its own format.
        own_page = status in _NGINX_ERRORS and "text/html" in (headers.get("Content-Type") or "")
        return "nginx (no answer from the application)" if own_page else "application (through nginx)"
    if edge and status >= 500:
        return "edge (did not reach the origin)"
    return "application" if server else "unknown"


def check_url(url: str, timeout_s: float = 10.0, ca_file: str | None = None) -> UrlCheck:
    """GET `url` once from the controller, without any proxy from the environment."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return UrlCheck(url, False, error="not an http(s) URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout_s,
                                                                       context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    started = time.monotonic()
    try:
        conn.connect()
        connected = time.monotonic()
        conn.request("GET", path, headers={"User-Agent": "fleet-fix-verify", "Connection": "close"})
        response = conn.getresponse()
        first = time.monotonic()
        response.read(1 << 20)
        done = time.monotonic()
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return UrlCheck(url, False, error=" ".join(f"{type(exc).__name__}: {exc}".split())[:300],
                        total_s=round(time.monotonic() - started, 3))
    finally:
        conn.close()
    return UrlCheck(url, response.status < 500, response.status, layer(response.status, response.headers),
                    response.headers.get("Server") or "", round(connected - started, 3), round(first - started, 3),
                    round(done - started, 3))


def until_healthy(remote: Remote, host: Host, verify: Verify, url: str | None = None,
                  ca_file: str | None = None) -> Verification:
    """Diagnose the host until it is healthy `verify.healthy_runs` times in a row, within the deadline."""
    started, since = time.monotonic(), time.time()
    runs: list[str] = []
    streak, last = 0, None
    while True:
        # Each run judges only what the logs gained since the previous one ended: errors logged
        # before the fix, or while a reload was taking effect, are history, not a failed fix.
        last = remote.diagnose(host, since=since)
        since = time.time()
        runs.append(last.diagnosis.verdict)
        streak = streak + 1 if last.diagnosis.severity is Severity.OK else 0
        elapsed = time.monotonic() - started
        if streak >= verify.healthy_runs:
            break
        if elapsed + PAUSE_S >= verify.deadline_s:
            return Verification(False, tuple(runs), last, reason=f"not healthy {verify.healthy_runs} times in a row "
                                f"within {verify.deadline_s:g} s (last: {last.diagnosis.verdict})",
                                seconds=round(elapsed, 3))
        time.sleep(PAUSE_S)
    checked = check_url(url_for(url, host), ca_file=ca_file) if url else None
    if checked is not None and not checked.ok:
        return Verification(False, tuple(runs), last, checked, f"{checked.url}: {checked.status or checked.error}",
                            round(time.monotonic() - started, 3))
    return Verification(True, tuple(runs), last, checked, seconds=round(time.monotonic() - started, 3))
