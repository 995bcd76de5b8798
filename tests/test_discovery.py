"""Zero configuration and platforms, without test hosts: parameter sources, the script handing
discovered values to later probes (run by a real sh), the platform fact, and the rules that use
them, evaluated on real captured probe outputs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.diagnose import host_result
from fleet.errors import RunbookError
from fleet.models import Execution, Host, ProbeOutput, TransportStatus
from fleet.params import HostValue, Resolved, Source, discovered_values, resolve, with_discovered
from fleet.parsers import PARSERS
from fleet.probes.platform import Family, parse_platform, windows_shell
from fleet.redact import Redactor
from fleet.rules import evaluate
from fleet.runbook import load_runbook, render_probes, resolve_params
from fleet.script import ProbeCommand, compose, new_marker, split

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def run_script(probes: list[ProbeCommand]) -> dict[str, ProbeOutput]:
    marker = new_marker()
    proc = subprocess.run(["sh", "-s"], input=compose(probes, marker), capture_output=True, text=True, timeout=30)
    return split(proc.stdout, proc.stderr, marker, [p.name for p in probes]).probes


# ------------------------------------------------------------------ parameters and their sources
def test_precedence_default_discovered_inventory_var() -> None:
    defaults = {"port": 8000, "app_log": "/var/log/app.log", "service": "app", "login_path": "/login"}
    resolved = resolve(defaults, frozenset({"port", "app_log", "service"}), {"app_log": "/srv/given.log"},
                       {"service": "shop"})
    assert resolved.open == {"port"}  # given values are never discovered
    after = with_discovered(resolved, {"port": "9100", "app_log": "/elsewhere.log", "service": "other"})
    assert after.values == {"port": 9100, "app_log": "/srv/given.log", "service": "shop", "login_path": "/login"}
    assert after.sources == {"port": Source.DISCOVERED, "app_log": Source.INVENTORY, "service": Source.VAR,
                             "login_path": Source.DEFAULT}


def test_a_numeric_parameter_given_as_text_must_be_a_number() -> None:
    with pytest.raises(RunbookError, match="whole number"):
        resolve({"port": 8000}, frozenset(), {}, {"port": "eighty"})


def test_discovered_values_are_read_as_the_script_reads_them() -> None:
    out = ProbeOutput("discover", 0, "param port=1\nparam port=9100\nparam port=\nparam other=x\nparam app_log=/a b\r\n",
                      "", 0.1)
    assert discovered_values(out, frozenset({"port", "app_log"})) == {"port": "9100", "app_log": "/a b\r"}
    assert discovered_values(ProbeOutput("discover", None, "param port=1\n", "", None), frozenset({"port"})) == {}


def test_open_parameters_render_as_host_variables_and_given_ones_as_literals() -> None:
    book = load_runbook("502")
    open_port = {p.name: p for p in render_probes(book, resolve_params(book, {}, {}))}
    assert 'port="$FLEET_D_port"' in open_port["http"].command
    assert dict(open_port["discover"].exports)["port"] == "8000"
    assert not open_port["http"].exports
    given = {p.name: p for p in render_probes(book, resolve_params(book, {"port": 9100}, {}))}
    assert "port=9100;" in given["http"].command and "FLEET_D_port" not in given["http"].command
    assert "port" not in dict(given["discover"].exports)
    assert str(HostValue("port")) == '"$FLEET_D_port"'


def test_later_probes_see_discovered_values_and_never_run_them(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    hostile = f"$(touch {flag}); `touch {flag}` \"'; touch {flag}"
    printed = tmp_path / "out"  # what a host could make the probe print
    printed.write_text(f"param port=9100\n{hostile}\nparam pattern={hostile}\nparam unasked=1\nnoise param port=1\n")
    find = ProbeCommand("find", f"cat {printed}",
                        exports=(("port", "8000"), ("pattern", "python main.py"), ("log", "/var/log/app.log")))
    use = ProbeCommand("use", 'printf "%s|%s|%s|%s\\n" "$FLEET_D_port" "$FLEET_D_pattern" "$FLEET_D_log" '
                              '"${FLEET_D_unasked-unset}"')
    outputs = run_script([find, use])
    assert outputs["use"].stdout == f"9100|{hostile}|/var/log/app.log|unset\n"
    assert not flag.exists()
    # The controller reads the very same values from the same output.
    assert discovered_values(outputs["find"], frozenset({"port", "pattern", "log"})) == {"port": "9100",
                                                                                       "pattern": hostile}


def test_a_discovering_probe_that_times_out_leaves_the_defaults() -> None:
    find = ProbeCommand("find", "sleep 5; echo 'param port=9100'", timeout_s=1, exports=(("port", "8000"),))
    use = ProbeCommand("use", 'echo "$FLEET_D_port"')
    outputs = run_script([find, use])
    assert outputs["use"].stdout == "8000\n"
    assert discovered_values(outputs["find"], frozenset({"port"})) == {}


@pytest.mark.parametrize("discovers, message", [
    ("[nope]", "not a parameter"),
    ("port", "must be a list"),
])
def test_runbook_discovers_is_checked_at_load(tmp_path: Path, discovers: str, message: str) -> None:
    path = tmp_path / "rb.yml"
    path.write_text(f"name: t\nparameters: {{port: 1}}\nprobes:\n  - name: a\n    parser: text\n    discovers: {discovers}\n"
                    "    command: echo\nrules: []\n")
    with pytest.raises(RunbookError, match=message):
        load_runbook(str(path))


def test_a_parameter_is_discovered_by_one_probe_only(tmp_path: Path) -> None:
    path = tmp_path / "rb.yml"
    path.write_text("name: t\nparameters: {port: 1}\nprobes:\n"
                    "  - {name: a, parser: text, discovers: [port], command: echo}\n"
                    "  - {name: b, parser: text, discovers: [port], command: echo}\nrules: []\n")
    with pytest.raises(RunbookError, match="discovered by two probes"):
        load_runbook(str(path))


# ------------------------------------------------------------------------------------ platforms
@pytest.mark.parametrize("lines, family, label", [
    (["uname=Linux release=6.1.0 machine=x86_64", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', "ID=debian"],
     Family.DEBIAN, "Debian GNU/Linux 12 (bookworm)"),
    (["uname=Linux release=5.15 machine=x86_64", 'PRETTY_NAME="Ubuntu 22.04.4 LTS"', "ID=ubuntu", "ID_LIKE=debian"],
     Family.DEBIAN, "Ubuntu 22.04.4 LTS"),
    (["uname=Linux release=6.6 machine=x86_64", 'PRETTY_NAME="Alpine Linux v3.19"', "ID=alpine"], Family.LINUX,
     "Alpine Linux v3.19"),
    (["uname=Linux release=5.14 machine=x86_64", 'ID="rocky"', 'ID_LIKE="rhel centos fedora"'], Family.LINUX,
     "Linux 5.14"),
    (["uname=Darwin release=23.4.0 machine=arm64", "macos_version=14.4.1"], Family.MACOS, "macOS 14.4.1"),
    (["uname=FreeBSD release=14.0-RELEASE machine=amd64", "freebsd_version=14.0-RELEASE-p6"], Family.FREEBSD,
     "FreeBSD 14.0-RELEASE-p6"),
    (["uname=OpenBSD release=7.5 machine=amd64"], Family.OTHER_BSD, "OpenBSD 7.5"),
    (["uname=MINGW64_NT-10.0-19045 release=3.4.10 machine=x86_64"], Family.WINDOWS, "MINGW64_NT-10.0-19045 3.4.10"),
    (["uname=CYGWIN_NT-10.0 release=3.5.1 machine=x86_64"], Family.WINDOWS, "CYGWIN_NT-10.0 3.5.1"),
    (["uname=unknown release= machine="], Family.UNKNOWN, "an unknown platform"),
])
def test_platform_from_uname_and_os_release(lines: list[str], family: Family, label: str) -> None:
    platform = parse_platform(lines)
    assert (platform.family, platform.label) == (family, label)
    assert platform.supported is (family not in (Family.WINDOWS, Family.UNKNOWN))


# What Windows' own shells say to `sh -s` (cmd.exe, then PowerShell), as Microsoft's shells word it.
CMD_EXE = "'sh' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
POWERSHELL = ("sh : The term 'sh' is not recognized as the name of a cmdlet, function, script file, or operable "
              "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
              "and try again.\r\n")


@pytest.mark.parametrize("stderr", [CMD_EXE, POWERSHELL])
def test_a_windows_host_gets_unsupported_platform_not_a_crash(stderr: str) -> None:
    book = load_runbook("502")
    execution = Execution(TransportStatus.OK, stderr=stderr.encode(), exit_code=1, duration_s=0.2)
    result = host_result(Host("win01", "198.18.0.9"), execution, book, resolve_params(book, {}, {}), new_marker(),
                         Redactor.build(()))
    assert result.diagnosis.verdict == "unsupported_platform"
    assert "Windows is not supported" in result.diagnosis.summary
    assert result.diagnosis.evidence == (windows_shell(stderr),)
    assert windows_shell("sh: 1: nginx: not found\n") is None


def facts_of(**outputs: str) -> dict:
    """Facts of the named probes from captured outputs (`probe=parser/case` under tests/fixtures/parsers)."""
    book = load_runbook("502")
    parsers = {p.name: p.parser for p in book.probes}
    params = book.defaults()
    return {name: PARSERS[parsers[name]](ProbeOutput(name, 0, (FIXTURES / f"{case}.txt").read_text(), "", 0.1), params)
            for name, case in outputs.items()}


def verdict(facts: dict, sources: dict | None = None, **params) -> tuple[str, str, tuple[str, ...]]:
    book = load_runbook("502")
    d = evaluate(book, facts, {}, {**book.defaults(), **params}, {"name": "h", "address": ""}, sources)
    return d.verdict, d.summary, d.evidence


@pytest.mark.parametrize("uname, expected", [
    ("uname=MINGW64_NT-10.0-19045 release=3.4.10 machine=x86_64", "unsupported_platform"),
    ("uname=NetBSD release=10.0 machine=amd64", "inconclusive"),
])
def test_untested_platforms_get_no_verdict_from_the_probes(uname: str, expected: str) -> None:
    facts = facts_of(process="processes/procps_root", listen="listeners/ss_root", http="http_checks/curl_healthy")
    discover = PARSERS["discovery"](ProbeOutput("discover", 0, f"== platform ==\n{uname}\n", "", 0.1), {})
    got, summary, evidence = verdict({**facts, "discover": discover})
    assert got == expected
    assert uname.split()[0].removeprefix("uname=") in " ".join((summary, *evidence))


# ------------------------------------------------------------------ rules on nginx's error log
def test_intermittent_502_needs_a_healthy_host_with_recent_upstream_errors() -> None:
    facts = facts_of(http="http_checks/curl_healthy", nginx_logs="nginx_errors/upstream_errors")
    # The capture's refusing backend listened on 9301 (nginx_errors/capture.py).
    got, summary, evidence = verdict(facts, port=9301)
    assert got == "intermittent_502"
    assert "2026/11/30 06:50:36 [error] 25903#25903: *5 connect() failed (111: Connection refused)" in evidence[0]
    assert "9 responses with status 502" in summary
    assert verdict(facts_of(http="http_checks/curl_healthy", nginx_logs="nginx_errors/outside_window"),
                   port=9301)[0] == "healthy"
    # One nginx in front of several apps logs all their errors in one file: another app's
    # upstream errors say nothing about this backend (port 8000 here, which no error names);
    # errors whose upstream names no port (a named upstream, a unix socket) cannot be told apart.
    logs = facts["nginx_logs"]
    assert "9301" not in logs.for_port(8000).evidence and logs.for_port(8000).errors
    with_ports = dataclasses.replace(logs, errors=tuple(e for e in logs.errors if ":93" in (e.upstream or "")))
    assert verdict({**facts, "nginx_logs": with_ports}, port=9301)[0] == "intermittent_502"
    assert verdict({**facts, "nginx_logs": with_ports})[0] == "healthy"


@pytest.mark.parametrize("kind, expected", [
    ("socket_permission", "nginx_socket_permission"),
    ("too_big_header", "nginx_upstream_header_too_big"),
])
def test_error_log_names_the_cause_of_a_502_the_other_probes_cannot_see(kind: str, expected: str) -> None:
    # The captured log holds every kind; keep the one under test, as a host with only that fault would log.
    logs = facts_of(nginx_logs="nginx_errors/upstream_errors")["nginx_logs"]
    only = dataclasses.replace(logs, errors=tuple(e for e in logs.errors if e.kind == kind))
    facts = {**facts_of(http="http_checks/curl_upstream_port"), "nginx_logs": only}
    got, _, evidence = verdict(facts, port=9304)  # the capture's big-header backend
    assert got == expected
    assert only.errors[-1].line in evidence
    # Without that line in the log, the error log decides nothing.
    assert verdict({**facts, "nginx_logs": dataclasses.replace(logs, errors=())}, port=9304)[0] != expected


def test_nothing_given_nothing_found_is_no_backend_found_not_backend_not_running() -> None:
    facts = facts_of(process="processes/no_match", listen="listeners/netstat_root_no_backend", http="http_checks/curl_nothing_answers",
                     discover="discovery/zeroconf_backend_dead")
    book = load_runbook("502")
    unit = PARSERS["service_state"](ProbeOutput("unit", 0, "== systemd-absent ==\n== docker-absent ==\n", "", 0.1), {})
    facts["unit"] = unit
    sources = {name: "default" for name in book.defaults()}
    assert verdict(facts, sources)[0] == "no_backend_found"
    # The same host with its port discovered from nginx: the backend nginx needs is not running.
    assert verdict(facts, {**sources, "port": "discovered"})[0] == "backend_not_running"


NGINX_CONF = """\
error_log /var/log/custom/error.log warn;
events { }
http {
    access_log /var/log/custom/access.log combined;
    upstream shop {
        server 127.0.0.1:9100 max_fails=3;
        server 127.0.0.1:9101 backup;
    }
    server {
        listen 8081;
        location / { proxy_pass http://127.0.0.1:7000; }
    }
    server {
        listen 8080 default_server;
        location / { proxy_pass http://127.0.0.1:6000; }
        location ^~ /static/ { root /srv; }
        location ~ ^/api/v[0-9]+/ { proxy_pass http://shop; }
        location = /api/v1/exact { proxy_pass http://127.0.0.1:5000/; }
    }
}
"""


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root for a private namespace")
@pytest.mark.parametrize("login_path, port, location", [
    ("/api/v1/demo-login", "9100", "path=^/api/v[0-9]+/ proxy_pass=http://shop"),  # regex, upstream block
    ("/api/v1/exact", "5000", "path=/api/v1/exact proxy_pass=http://127.0.0.1:5000/"),  # exact match wins
    ("/other", "6000", "path=/ proxy_pass=http://127.0.0.1:6000"),  # prefix
    ("/static/app.js", None, "path=/static/ proxy_pass="),  # ^~ stops the regexes; no backend
])
def test_discover_probe_reads_nginx_config_as_nginx_routes(tmp_path: Path, login_path: str, port: str | None,
                                                           location: str) -> None:
    """The real discover probe, in a namespace with no nginx running and nothing listening, on a config file."""
    (tmp_path / "nginx.conf").write_text(NGINX_CONF)
    book = load_runbook("502")
    resolved = resolve_params(book, {"nginx_conf_dir": str(tmp_path)}, {"login_path": login_path})
    [discover] = [p for p in render_probes(book, resolved) if p.name == "discover"]
    marker = new_marker()
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--net", "sh", "-s"],
                          input=compose([discover], marker), capture_output=True, text=True, timeout=60)
    output = split(proc.stdout, proc.stderr, marker, ["discover"]).probes["discover"]
    found = discovered_values(output, resolved.open)
    assert found.get("port") == port
    assert found["proxy_url"] == "http://localhost:8080"  # the default server: nothing listens on 80
    assert found["nginx_error_log"] == "/var/log/custom/error.log"
    assert found["nginx_access_log"] == "/var/log/custom/access.log"
    facts = PARSERS["discovery"](output, resolved.values)
    assert location in facts.nginx_location.text


def test_a_host_without_an_http_client_is_inconclusive_and_says_so() -> None:
    facts = facts_of(process="processes/procps_root", listen="listeners/ss_root", http="http_checks/no_client")
    facts["discover"] = PARSERS["discovery"](ProbeOutput(
        "discover", 0, "== platform ==\nuname=FreeBSD release=14.0-RELEASE machine=amd64\n"
                       "freebsd_version=14.0-RELEASE-p6\n", "", 0.1), {})
    got, summary, _ = verdict(facts)
    assert got == "inconclusive"
    assert "No HTTP client on this host (FreeBSD 14.0-RELEASE-p6)" in summary and "fetch cannot" in summary


def test_a_backend_answering_http_is_never_called_not_running_or_not_listening() -> None:
    """A listener table fleet cannot read (BSD netstat before its parser knows it) must not win over
    a backend that answers: no absence verdict then."""
    healthy = facts_of(process="processes/procps_root", http="http_checks/curl_healthy")
    unreadable = PARSERS["listeners"](ProbeOutput("listen", 0, "== listen source=netstat ==\n"
                                                  "tcp4  0  0  127.0.0.1.8000  *.*  LISTEN\n", "", 0.1), {})
    assert not unreadable.on_port(8000)  # the misreading this guards against
    assert verdict({**healthy, "listen": unreadable})[0] not in ("backend_not_listening", "backend_not_running")
    gone = facts_of(process="processes/no_match", listen="listeners/netstat_root_no_backend",
                    http="http_checks/curl_healthy")
    assert verdict(gone)[0] not in ("backend_not_listening", "backend_not_running")
