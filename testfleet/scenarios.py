"""The scenario table: what each test host looks like and the verdict fleet owes it."""

from __future__ import annotations

from dataclasses import dataclass

LOGIN = ("POST", "http://127.0.0.1:80/api/v1/demo-login")
HEALTH = ("GET", "http://127.0.0.1:8000/health")
HEALTH6 = ("GET", "http://[::1]:8000/health")


@dataclass(frozen=True)
class Scenario:
    name: str
    family: str  # inventory group (children of all)
    expected: str  # the verdict fleet must give
    description: str
    backend_args: tuple[str, ...] | None = ()  # None: no backend at all
    backend_expect: str = "listen"  # listen | exit | alive
    nginx: bool = True
    upstream: str = "127.0.0.1:8000"
    blackholes: tuple[str, ...] = ()
    hide_tools: tuple[str, ...] = ()
    latency_ms: int = 0
    slow_shims: bool = False
    user: str = "root"
    authorized: bool = True  # client key in authorized_keys
    known_host_ok: bool = True  # known_hosts has the host's real key
    exists: bool = True  # False: address only, nobody answers
    break_nginx_config: bool = False
    # readiness: (method, url, expected) run inside the host's netns with curl;
    # expected is an HTTP code, "refused" or "timeout"
    http_checks: tuple[tuple[str, str, object], ...] = ((*LOGIN, 401), (*HEALTH, 200))
    log_expect: str | None = None  # substring that must be in app.log
    # verdict under the `host` runbook (fleet/runbooks/host.yml); None: "healthy", or for
    # SSH-level scenarios the same transport verdict as `expected`. See EXPECTED_HOST.
    expected_host: str | None = None
    # private filesystems hostinit mounts and fills: (mount point, tmpfs options, "bytes" | "inodes")
    filesystems: tuple[tuple[str, str, str], ...] = ()
    # The backend's shape (the "zeroconf" family varies it so that no 502 default fits): the
    # command before backend_args (main.py is copied as the script it names), its directory,
    # the port it listens on and its log file.
    app_command: tuple[str, ...] = ("python", "main.py")
    app_dir: str = "/srv/app"
    app_port: int = 8000
    app_log: str = "/var/log/bandarupay/app.log"
    # Requests sent through nginx before the backend starts: real 502s in nginx's error and access logs.
    nginx_warmup_502: int = 0
    # Parameters a tuned run gives (--var) for this scenario; the zero-configuration test gives none.
    tuned: tuple[tuple[str, str], ...] = ()


# The "zeroconf" backend: the machine's python3 without site-packages (-S: no jwt), not the app
# venv's `python`; another script,
# directory, port and log file than the 502 runbook's defaults.
_ZC_LOG = "/var/log/shop/server.log"
_ZC = dict(app_command=("/usr/bin/python3", "-u", "-S", "server.py", "--port", "9100", "--log", _ZC_LOG),
           app_dir="/srv/shop", app_port=9100, app_log=_ZC_LOG, upstream="127.0.0.1:9100",
           tuned=(("port", "9100"), ("process_pattern", "server.py"), ("app_log", _ZC_LOG)))
_ZC_LOGIN = ("POST", "http://127.0.0.1:80/api/v1/demo-login")
_ZC_HEALTH = ("GET", "http://127.0.0.1:9100/health")


_S = [
    Scenario("healthy", "baseline", "healthy", "backend and nginx up, nginx answers 401 on the demo login"),
    Scenario(
        "slow", "baseline", "healthy",
        "healthy, but every round trip and command is slow: 100 ms latency each way on SSH "
        "(netem if available, else an in-namespace delaying TCP proxy in front of sshd), "
        "0.2 s shims in /usr/local/bin for common tools, backend answers after 0.5 s",
        backend_args=("--delay", "0.5"), latency_ms=100, slow_shims=True,
    ),
    Scenario(
        "backend_not_running", "backend", "backend_not_running",
        "no backend process; app.log ends with a real ModuleNotFoundError: No module named 'jwt' traceback",
        backend_args=("--jwt-auth",), backend_expect="exit",
        http_checks=((*LOGIN, 502), (*HEALTH, "refused")), log_expect="ModuleNotFoundError: No module named 'jwt'",
    ),
    Scenario(
        "backend_not_listening", "backend", "backend_not_listening",
        "python main.py --no-listen: alive, logs 'waiting for database', never binds 8000",
        backend_args=("--no-listen",), backend_expect="alive",
        http_checks=((*LOGIN, 502), (*HEALTH, "refused")), log_expect="waiting for database",
    ),
    Scenario(
        "backend_refusing", "backend", "backend_refusing",
        "backend listens only on [::1]:8000; nginx upstream is 127.0.0.1:8000 (connection refused)",
        backend_args=("--ipv6-only",),
        http_checks=((*LOGIN, 502), (*HEALTH, "refused"), (*HEALTH6, 200)),
    ),
    Scenario(
        "backend_hanging", "backend", "backend_hanging",
        "backend listens and accepts on 127.0.0.1:8000 but never answers",
        backend_args=("--hang",), http_checks=((*HEALTH, "timeout"),),
    ),
    Scenario(
        "backend_app_error", "backend", "backend_app_error",
        "backend answers 500 on the login and 503 on /health; app.log has a psycopg2.OperationalError traceback",
        backend_args=("--app-error",), http_checks=((*LOGIN, 500), (*HEALTH, 503)),
        log_expect='psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed',
    ),
    Scenario(
        "nginx_not_running", "nginx", "nginx_not_running",
        "backend healthy, nginx installed and configured but not started",
        nginx=False, http_checks=((*LOGIN, "refused"), (*HEALTH, 200)),
    ),
    Scenario(
        "nginx_config_invalid", "nginx", "nginx_config_invalid",
        "nginx started with a valid config, then sites-enabled/backend broken (missing ';') and not "
        "reloaded: still answers 401, but nginx -t fails",
        break_nginx_config=True,
    ),
    Scenario(
        "nginx_upstream_mismatch", "nginx", "nginx_upstream_mismatch",
        "nginx upstream says 127.0.0.1:8001, the backend is on 8000: nginx answers 502",
        upstream="127.0.0.1:8001", http_checks=((*LOGIN, 502), (*HEALTH, 200)),
    ),
    Scenario(
        "nginx_upstream_wrong_ip", "nginx", "nginx_upstream_mismatch",
        "nginx upstream says 198.18.9.9:8000, blackholed inside the host: nginx answers 502 at once",
        upstream="198.18.9.9:8000", blackholes=("198.18.9.9/32",), http_checks=((*LOGIN, 502), (*HEALTH, 200)),
    ),
    Scenario(
        "no_netstat", "tooling", "healthy",
        "healthy, but netstat does not exist (overlay whiteout over /usr/bin/netstat)",
        hide_tools=("netstat",),
    ),
    Scenario(
        "no_tools", "tooling", "healthy",
        "healthy, but neither netstat nor ss exist (fleet must read /proc/net/tcp)",
        hide_tools=("netstat", "ss"),
    ),
    Scenario(
        "sudo_password", "tooling", "healthy",
        "healthy; login user fleetops (non-root) whose sudo needs a password, so sudo -n fails",
        user="fleetops",
    ),
    Scenario(
        "unreachable", "ssh", "unreachable",
        "an address on the test bridge that no host holds: connections time out",
        exists=False, http_checks=(),
    ),
    Scenario(
        "auth_refused", "ssh", "auth_failed",
        "sshd up, but authorized_keys holds another key, not the client's",
        authorized=False,
    ),
    Scenario(
        "hostkey_changed", "ssh", "host_key_rejected",
        "known_hosts records a different ed25519 key than the host presents",
        known_host_ok=False,
    ),
    # The host runbook's scenarios: healthy for the 502 runbook, sick under `--runbook host`.
    Scenario(
        "disk_full", "host", "healthy",
        "healthy backend and nginx, but a private 2 MiB tmpfs at /srv/data is 100% full "
        "(uploads/ 1.75 MiB, cache/ 256 KiB)",
        expected_host="disk_full", filesystems=(("/srv/data", "size=2m,mode=0755", "bytes"),),
    ),
    Scenario(
        "inodes_exhausted", "host", "healthy",
        "healthy backend and nginx, but a private tmpfs at /srv/data with nr_inodes=64 has no inode "
        "left (sessions/ full of empty files), with its space almost all free",
        expected_host="inodes_exhausted", filesystems=(("/srv/data", "size=4m,nr_inodes=64,mode=0755", "inodes"),),
    ),

    # Zero configuration: apps that fit none of the 502 runbook's defaults, diagnosed without --var.
    Scenario("zc_healthy", "zeroconf", "healthy",
             "/usr/bin/python3 -u -S server.py --port 9100 in /srv/shop, logging to /var/log/shop/server.log; "
             "nginx upstream 127.0.0.1:9100", http_checks=((*_ZC_LOGIN, 401), (*_ZC_HEALTH, 200)), **_ZC),
    Scenario("zc_not_running", "zeroconf", "backend_not_running",
             "the zeroconf backend died at start (ModuleNotFoundError: jwt)", backend_args=("--jwt-auth",),
             backend_expect="exit", http_checks=((*_ZC_LOGIN, 502), (*_ZC_HEALTH, "refused")),
             log_expect="ModuleNotFoundError: No module named 'jwt'", **_ZC),
    Scenario("zc_not_listening", "zeroconf", "backend_not_listening",
             "the zeroconf backend waits for its database and never binds 9100", backend_args=("--no-listen",),
             backend_expect="alive", http_checks=((*_ZC_LOGIN, 502), (*_ZC_HEALTH, "refused")),
             log_expect="waiting for database", **_ZC),
    Scenario("zc_app_error", "zeroconf", "backend_app_error",
             "the zeroconf backend answers 500/503: database down, traceback in /var/log/shop/server.log",
             backend_args=("--app-error",), http_checks=((*_ZC_LOGIN, 500), (*_ZC_HEALTH, 503)),
             log_expect="psycopg2.OperationalError", **_ZC),
    Scenario("zc_refusing", "zeroconf", "backend_refusing",
             "the zeroconf backend listens only on [::1]:9100; nginx upstream is 127.0.0.1:9100",
             backend_args=("--ipv6-only",), http_checks=((*_ZC_LOGIN, 502), (*_ZC_HEALTH, "refused")), **_ZC),
    Scenario("zc_upstream_mismatch", "zeroconf", "nginx_upstream_mismatch",
             "the zeroconf backend answers on 9100; nginx upstream says 127.0.0.1:9101",
             http_checks=((*_ZC_LOGIN, 502), (*_ZC_HEALTH, 200)), **{**_ZC, "upstream": "127.0.0.1:9101"}),
    # nginx's own logs tell what the other probes cannot see any more.
    Scenario("intermittent_502", "nginx", "intermittent_502",
             "healthy now, but nginx answered 3 requests with 502 before the backend started: its error log "
             "has 'connect() failed (111: Connection refused) while connecting to upstream'",
             nginx_warmup_502=3),
]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _S}
EXPECTED: dict[str, str] = {s.name: s.expected for s in _S}
# Verdicts under `--runbook host`, given a machine that is itself healthy: kernel log and
# /proc/meminfo are the machine's (not namespaced), so run it with `--var paths=...`,
# `oom_window_minutes=0` and `mem_available_min_pct=0` to judge only what a scenario made.
EXPECTED_HOST: dict[str, str] = {
    s.name: s.expected_host or (s.expected if s.family == "ssh" else "healthy") for s in _S
}
FAMILIES: tuple[str, ...] = ("baseline", "backend", "nginx", "tooling", "ssh", "host", "zeroconf")


def parse_scenarios(spec, count: int = 1) -> list[tuple[str, str]]:
    """Turn "all" / "a,b*3" / ["a", "b*3"] into [(host name, scenario), ...].

    ``name*N`` (or ``count=N`` for every entry) gives N hosts of that scenario,
    named ``name-01`` ... ``name-NN``; a single host is named after its scenario.
    """
    if isinstance(spec, str):
        items = [x.strip() for x in spec.split(",") if x.strip()]
    else:
        items = list(spec)
    expanded: list[str] = []
    for item in items:
        if item == "all":
            expanded.extend(SCENARIOS)
        else:
            expanded.append(item)
    counts: dict[str, int] = {}
    for item in expanded:
        name, _, n = item.partition("*")
        name = name.strip()
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        try:
            k = int(n) if n else 1
        except ValueError:
            raise ValueError(f"bad count in {item!r}") from None
        if k < 1:
            raise ValueError(f"bad count in {item!r}")
        counts[name] = counts.get(name, 0) + k * count
    if not counts:
        raise ValueError("no scenarios given")
    hosts: list[tuple[str, str]] = []
    for name, k in counts.items():
        if k == 1:
            hosts.append((name, name))
        else:
            width = max(2, len(str(k)))
            hosts.extend((f"{name}-{i:0{width}d}", name) for i in range(1, k + 1))
    return hosts
