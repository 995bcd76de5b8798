"""Parser `http_checks`: did the backend, nginx's upstream targets and nginx itself answer HTTP?

Input (probe `http`): `== http client=curl|wget|none ==`, then one line per attempt:
  curl: `target=T path=P method=M code=C connect=S total=S exit=N`
  wget: `target=T path=P method=M code=C connected=0|1 exit=N error=TEXT` (error to end of line)
T is `host:port` (`127.0.0.1:8000`, `[::1]:8000`, or an nginx upstream target) or `proxy`
(a request through nginx at `proxy_url`). Code 000 means no HTTP answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, clip, hostport, key_values, param, port_param, to_float, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

# curl exit codes (man curl): 7 could not connect, 28 operation timed out.
_CURL_CONNECT_FAILED = 7
_CURL_TIMEOUT = 28
# `timeout` exits 124 (coreutils) or 143 (BusyBox: killed by SIGTERM).
_KILLED_BY_TIMEOUT = (124, 143)


@dataclass(frozen=True)
class Attempt:
    """One HTTP request. `outcome` is one of:
    answered (any HTTP status, 5xx included), refused (nothing accepted the connection),
    hanging (connected, no answer in time), connect_timeout (the connection itself timed out),
    timeout (timed out, phase unknown: BusyBox wget), error (anything else)."""

    target: str
    path: str
    method: str
    code: int | None
    connect_s: float | None
    total_s: float | None
    exit: int | None
    error: str | None
    outcome: str
    line: str

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def ok(self) -> bool:
        return self.answered and self.code is not None and self.code < 500


def _outcome(client: str, code: int | None, values: dict[str, str], exit_code: int | None) -> str:
    if code:
        return "answered"
    if client == "curl":
        connected = (to_float(values.get("connect")) or 0.0) > 0
        if exit_code == _CURL_CONNECT_FAILED:
            return "refused"
        if exit_code == _CURL_TIMEOUT:
            return "hanging" if connected else "connect_timeout"
        return "error"
    error = (values.get("error") or "").lower()
    if "refused" in error:
        return "refused"
    if "timed out" in error or exit_code in _KILLED_BY_TIMEOUT:
        if values.get("connected") == "1":
            return "hanging"
        return "connect_timeout" if "connecting to" in error else "timeout"
    return "error"


def _targets(targets: Any) -> set[str]:
    """Target strings from a string, or an iterable of strings or objects with `hostport`."""
    if isinstance(targets, str):
        targets = [targets]
    try:
        return {str(getattr(t, "hostport", t)) for t in targets or ()}
    except TypeError:
        return set()


@dataclass(frozen=True)
class HttpFacts:
    """Every attempt, and the judgements rules need.

    "local" attempts go to 127.0.0.1:port and [::1]:port; "proxy" ones through nginx.
    """

    client: str | None
    port: int
    login_path: str
    attempts: tuple[Attempt, ...]
    notes: tuple[str, ...] = ()

    @property
    def local(self) -> tuple[Attempt, ...]:
        wanted = {hostport("127.0.0.1", self.port), hostport("::1", self.port)}
        return tuple(a for a in self.attempts if a.target in wanted)

    @property
    def proxy(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.attempts if a.target == "proxy")

    @property
    def backend_answers(self) -> bool:
        """The backend answers HTTP locally (any status)."""
        return any(a.answered for a in self.local)

    @property
    def backend_ok(self) -> bool:
        """The backend answers the login path locally without a 5xx."""
        return any(a.ok and a.path == self.login_path for a in self.local)

    @property
    def backend_errors(self) -> tuple[Attempt, ...]:
        """Local answers with a 5xx status (the app itself fails)."""
        return tuple(a for a in self.local if a.answered and not a.ok)

    @property
    def backend_hanging(self) -> tuple[Attempt, ...]:
        """Local attempts that connected (or may have) but got no answer, on a path no
        local attempt got an answer for."""
        answered = {a.path for a in self.local if a.answered}
        return tuple(
            a for a in self.local if a.outcome in ("hanging", "timeout") and a.path not in answered
        )

    @property
    def answering(self) -> tuple[str, ...]:
        """Targets (`host:port`) that gave an HTTP answer, any status."""
        return tuple(dict.fromkeys(a.target for a in self.attempts if a.answered and a.target != "proxy"))

    def refused(self, targets: Any) -> tuple[Attempt, ...]:
        """Attempts to `targets` that were refused, for targets that never answered."""
        wanted = _targets(targets) - set(self.answering)
        return tuple(a for a in self.attempts if a.target in wanted and a.outcome == "refused")

    def to(self, targets: Any) -> tuple[Attempt, ...]:
        wanted = _targets(targets)
        return tuple(a for a in self.attempts if a.target in wanted)

    @property
    def proxy_ok(self) -> bool:
        """nginx answers the login path without a 5xx."""
        return any(a.ok and a.path == self.login_path for a in self.proxy)

    @property
    def proxy_502(self) -> bool:
        return any(a.code == 502 for a in self.proxy)

    @property
    def healthy(self) -> bool:
        return self.backend_ok and self.proxy_ok

    @staticmethod
    def lines(attempts: Iterable[Attempt]) -> str:
        """The probe's lines for some attempts, one per line (for evidence)."""
        return "\n".join(a.line for a in attempts)

    @property
    def local_evidence(self) -> str:
        return self.lines(self.local)

    @property
    def proxy_evidence(self) -> str:
        return self.lines(self.proxy)


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> HttpFacts:
    """Read each attempt line and classify it."""
    client: str | None = None
    attempts: list[Attempt] = []
    notes: list[str] = []
    for section in sections(output.stdout):
        if section.name != "http":
            continue
        client = section.attrs.get("client")
        for line in section.lines:
            values = key_values(line, tail="error")
            if "target" not in values:
                continue
            code = to_int(values.get("code")) or None
            exit_code = to_int(values.get("exit"))
            attempts.append(
                Attempt(
                    target=values["target"],
                    path=values.get("path", ""),
                    method=values.get("method", ""),
                    code=code,
                    connect_s=to_float(values.get("connect")),
                    total_s=to_float(values.get("total")),
                    exit=exit_code,
                    error=clip(values["error"]) if values.get("error") else None,
                    outcome=_outcome(client or "", code, values, exit_code),
                    line=clip(line.strip()),
                )
            )
    if client in (None, "none"):
        notes.append("no http client (curl or wget) on the host" if client == "none" else "no http output")
        client = None
    return HttpFacts(
        client=client,
        port=port_param(inputs),
        login_path=str(param(inputs, "login_path", "/api/v1/demo-login")),
        attempts=tuple(attempts[:MAX_ITEMS]),
        notes=tuple(notes),
    )


PROBE = ProbeSpec(
    name="http",
    parser="http_checks",
    parse=parse,
    description="Does the backend answer HTTP locally, at nginx's upstream targets, and through nginx?",
    inputs=(
        Input("http_timeout", "seconds per HTTP attempt"),
        Input("port", "TCP port the backend listens on"),
        Input("login_path", "path POSTed with a dummy login"),
        Input("health_path", "the backend's health endpoint (GET)"),
        Input("proxy_url", "base URL of nginx as seen from the host"),
        Input("nginx_conf_dir", "where nginx's config lives; read when nginx -T gives nothing"),
    ),
    timeout_s=45,
    libraries=("common",),
    reads="nginx_config",
)
