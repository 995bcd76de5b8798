"""Built-in probes as units: runbooks name them (`use:`) and bind their inputs; inputs reach the
probe's shell as variables quoted in one place; shared shell goes once per script; the section
headers the shell prints are the ones the parsers read."""

from __future__ import annotations

import http.server
import shlex
import shutil
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from fleet.errors import RunbookError
from fleet.models import ProbeOutput
from fleet.probes.catalog import BUILTIN
from fleet.probes.comments import without_comments
from fleet.probes.sections import SHELL_FUNCTION, sections
from fleet.runbook import host_params, load_runbook, render_probes, resolve_params
from fleet.script import compose, new_marker

REUSE = """\
name: reuse
parameters:
  backend_port: {default: 9100}
  process_pattern: {default: "gunicorn"}
probes:
  - use: listen
  - use: process
  - use: http
    timeout: 20
    with: {port: "{{ backend_port }}", http_timeout: 2, login_path: /login, health_path: /up,
           proxy_url: "http://localhost:8080", nginx_conf_dir: /etc/nginx}
rules:
  - verdict: up
    severity: ok
    when: http.backend_answers and listen.on_port(params.backend_port)
    summary: "answers on {{ params.backend_port }}"
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "rb.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_every_builtin_probe_has_its_shell_and_a_registered_parser():
    from fleet.parsers import PARSERS

    for name, spec in BUILTIN.items():
        assert spec.shell.strip() and "{{ " not in spec.shell and "{%" not in spec.shell, name
        assert PARSERS[spec.parser] is spec.parse


def test_a_runbook_reuses_a_probe_binding_its_inputs(tmp_path):
    book = load_runbook(write(tmp_path, REUSE))
    assert [p.name for p in book.probes] == ["listen", "process", "http"]
    http = {p.name: p for p in book.probes}["http"]
    assert http.parser == "http_checks" and http.timeout_s == 20
    params = host_params(book, {"backend_port": 9200}, {})
    rendered = {p.name: p for p in render_probes(book, params)}
    first, _, shell = rendered["http"].command.partition("\n")
    assert first == ("http_timeout=2; port=9200; login_path=/login; health_path=/up; "
                     "proxy_url=http://localhost:8080; nginx_conf_dir=/etc/nginx;")
    assert shell == without_comments(BUILTIN["http"].shell)
    assert rendered["process"].command.startswith("process_pattern=gunicorn;\n")
    assert rendered["listen"].command == without_comments(BUILTIN["listen"].shell)  # no inputs: its shell


def test_inputs_are_quoted_once_and_secrets_stay_in_the_environment(tmp_path):
    book = load_runbook(write(tmp_path, REUSE))
    hostile = "gunicorn'; touch /tmp/x; echo '$(id)"
    params = host_params(book, {"process_pattern": hostile}, {})
    [process] = [p for p in render_probes(book, params) if p.name == "process"]
    assignment = process.command.split("\n", 1)[0]
    out = subprocess.run(["sh", "-c", f'{assignment}\nprintf "%s" "$process_pattern"'], capture_output=True,
                         text=True, check=True)
    assert out.stdout == hostile
    secret = load_runbook("502")
    params = host_params(secret, {"proxy_url": "http://user:s3cret@localhost"}, {})
    [http] = [p for p in render_probes(secret, params) if p.name == "http"]
    assert "s3cret" not in http.command and 'proxy_url="$FLEET_P_proxy_url";' in http.command
    assert dict(http.env)["FLEET_P_proxy_url"] == "http://user:s3cret@localhost"


@pytest.mark.parametrize("change, message", [
    (("- use: listen", "- use: listener"), "unknown probe 'listener' (built-in probes: discover, "),
    (("with: {port:", "with: {prot:"), "probe 'http' has no input 'prot' (inputs: http_timeout, port,"),
    (("with: {port: \"{{ backend_port }}\", ", "with: {"), "probe 'http' needs input 'port': declare a "
     "parameter 'port' or bind it"),
    (("{{ backend_port }}", "{{ nope }}"), "input 'port' of probe 'http' names 'nope', which is not a parameter"),
    (("{{ backend_port }}", "{{ backend_port + 1 }}"), "input 'port' of probe 'http': give a parameter"),
    (("    timeout: 20\n", "    timeout: 20\n    parser: text\n"), "unknown key 'parser' in a probe"),
    (("  - use: process\n", "  - use: process\n  - use: listen\n"), "duplicate probe name 'listen'"),
])
def test_bad_probe_uses_are_one_line_errors_with_file_and_line(tmp_path, change, message):
    path = write(tmp_path, REUSE.replace(*change))
    with pytest.raises(RunbookError) as err:
        load_runbook(path)
    text = str(err.value)
    assert message in text and text.startswith(f"{path}:") and "\n" not in text


def test_shared_shell_is_sent_once_per_script():
    book = load_runbook("502")
    script = compose(render_probes(book, resolve_params(book, {}, {})), new_marker())
    assert script.count("fleet_nginx_config() {") == 1 and script.count("fleet_section() {") == 1
    # and each of the nine probes runs with it
    assert script.count('"$fleet_lib1$fleet_lib2"\'') == 9


@pytest.mark.parametrize("words, name, attrs", [
    (["ps", "source=ps-etimes"], "ps", {"source": "ps-etimes"}),
    (["nginx-T"], "nginx-T", {}),
    (["access_log", "path=/var/log/a.log", "state=read", "lines=3"], "access_log",
     {"path": "/var/log/a.log", "state": "read", "lines": "3"}),
    (["pidns", "self="], "pidns", {"self": ""}),
])
def test_the_shell_prints_the_headers_the_parsers_read(words, name, attrs):
    argv = " ".join("'" + w + "'" for w in words)
    out = subprocess.run(["sh", "-c", f"{SHELL_FUNCTION}fleet_section {argv}\necho body"], capture_output=True,
                         text=True, check=True).stdout
    [_, section] = sections(out)
    assert (section.name, section.attrs, section.lines) == (name, attrs, ["body"])


def test_nginx_T_runs_once_and_feeds_the_three_probes_that_read_it():
    book = load_runbook("502")
    script = compose(render_probes(book, resolve_params(book, {}, {})), new_marker())
    assert script.count("fleet_s_nginx_config=$(") == 1
    fed = [line.split("fleet_probe ")[1].split()[0] for line in script.split("\n")
           if line.startswith(("printf '%s\\n' \"$fleet_s_nginx_config\" |", "fleet_out=$(printf '%s\\n' \"$fleet_s_"))]
    assert fed == ["discover", "http", "nginx"]
    # the step comes before the first probe that reads it
    assert script.index("fleet_s_nginx_config=$(") < script.index("fleet_probe discover")


NGINX_CASES = sorted((Path(__file__).parent / "fixtures" / "parsers" / "nginx_state").glob("*.txt"))


@pytest.mark.parametrize("awk", [True, False], ids=["awk", "no-awk"])
@pytest.mark.parametrize("case", NGINX_CASES, ids=[p.stem for p in NGINX_CASES])
def test_the_slimmed_nginx_config_gives_the_same_facts(case, awk, tmp_path):
    """What the nginx probe leaves out of the config (fleet_nginx_slim) changes no fact, and the
    lines it keeps keep their file:line."""
    from fleet.parsers import PARSERS

    text = case.read_text()
    at = max(text.find("== nginx-T =="), text.find("== nginx-files =="))
    if at < 0:
        pytest.skip("no config in this case")
    slim = subprocess.run([shutil.which("sh"), "-c", BUILTIN["nginx"].library_texts()[1] + "fleet_nginx_slim"],
                          input=text[at:], capture_output=True, text=True, check=True,
                          env=None if awk else without_awk(tmp_path)).stdout
    assert awk or slim == text[at:]
    params = {"login_path": "/api/v1/demo-login", "proxy_url": "http://localhost"}
    full = PARSERS["nginx_state"](ProbeOutput("nginx", 0, text, "", None), params)
    cut = PARSERS["nginx_state"](ProbeOutput("nginx", 0, text[:at] + slim, "", None), params)
    assert cut == full
    assert len(slim) < len(text[at:]) or "#fleet-skip" not in slim


def test_the_nginx_slim_keeps_every_directive_the_parser_reads():
    from fleet.probes.nginx import _STATEMENTS

    keep = BUILTIN["nginx"].library_texts()[1].split('keep="', 1)[1].split('"', 1)[0].split()
    assert set(_STATEMENTS) | {"include"} <= set(keep)


PS_CASES = sorted((Path(__file__).parent / "fixtures" / "parsers" / "processes").glob("*.txt"))


def without_awk(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has the few tools these shell functions call, but no awk (the
    real test host's image has none)."""
    for tool in ("cat", "tr"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    return {"PATH": str(tmp_path)}


@pytest.mark.parametrize("awk", [True, False], ids=["awk", "no-awk"])
@pytest.mark.parametrize("case", PS_CASES, ids=[p.stem for p in PS_CASES])
def test_the_process_probe_sends_the_matching_lines_and_a_count_for_the_same_facts(case, awk, tmp_path):
    from fleet.parsers import PARSERS

    params = {"process_pattern": "python main.py"}
    text = case.read_text()
    start = text.find("== ps ")
    if start < 0:
        pytest.skip("no ps section")
    body_at = text.index("\n", start) + 1
    end = text.find("\n== ", body_at)
    end = len(text) if end < 0 else end + 1
    listing = text[body_at:end]
    cut = subprocess.run([shutil.which("sh"), "-c", BUILTIN["process"].library_texts()[1] + 'fleet_ps_matching "$1"',
                          "sh", params["process_pattern"]], input=listing, capture_output=True, text=True,
                         check=True, env=None if awk else without_awk(tmp_path)).stdout
    full = PARSERS["processes"](ProbeOutput("process", 0, text, "", None), params)
    sent = PARSERS["processes"](ProbeOutput("process", 0, text[:body_at] + cut + text[end:], "", None), params)
    assert sent == full
    if not awk:
        assert cut == listing
        return
    *sent_lines, count = cut.rstrip("\n").split("\n")
    assert all(params["process_pattern"] in line for line in sent_lines[2:])
    assert count == f"== ps-lines n={sum(1 for line in listing.split(chr(10)) if line.strip())} =="


SHELL_FILES = sorted((Path(__file__).parent.parent / "fleet" / "probes").glob("*.sh"))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is the oracle")
@pytest.mark.parametrize("path", SHELL_FILES, ids=[p.name for p in SHELL_FILES])
def test_the_shell_sent_means_what_the_file_says(path):
    """Dropping comment lines (fleet.probes.comments) leaves what bash's own parser reads the
    same: `declare -f` of the file as a function body prints comments nowhere and strings whole."""
    def declared(text: str) -> str:
        return subprocess.run(["bash", "-c", 'eval "f() {\n$1\n}" && declare -f f', "bash", text],
                              capture_output=True, text=True, check=True).stdout

    text = path.read_text()
    sent = without_comments(text)
    assert declared(sent) == declared(text)
    assert len(sent) < len(text) or "#" not in text


def test_comment_like_lines_in_strings_and_here_documents_are_kept():
    text = "a='\n# in a string\n'\nb=\"$(echo '\n# in a substitution\n')\"\ncat <<EOF\n# in a here-document\nEOF\n# a comment\necho ok # too\n"
    assert without_comments(text) == text.replace("# a comment\n", "")


class _Answers(http.server.BaseHTTPRequestHandler):
    """A backend on loopback: 200 for GET, 401 for POST (as the demo app's login)."""

    def _answer(self, code: int) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(200)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(401)

    def log_message(self, *args) -> None:
        pass


# Older curls, emulated in front of the real one (each start is logged): before 7.68 the config's
# `parallel-immediate` is an unknown option (exit 2, no transfer); before 7.75 `%{exitcode}` is an
# unknown -w variable (printed as nothing).
_OLD_CURL = {
    "no-parallel": 'case $cfg in *parallel*) echo "curl: option --parallel-immediate: is unknown" >&2; exit 2 ;; esac',
    "no-exitcode": "cfg=$(printf '%s\\n' \"$cfg\" | sed 's/%{exitcode}//')",
}


def _http_probe(tmp_path: Path, curl: str | None, proxy_url: str = "") -> tuple[str, int]:
    """The http probe's stdout against a loopback backend, and how many times curl started."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    log = tmp_path / "starts"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo start >>{log}
        for a in "$@"; do [ "$a" = -K ] && k=1; done
        [ -n "$k" ] || exec {shutil.which("curl")} "$@"
        cfg=$(cat)
        {_OLD_CURL.get(curl, "")}
        printf '%s\\n' "$cfg" | {shutil.which("curl")} "$@"
        """))
    (bin_dir / "curl").chmod(0o755)
    proxy = proxy_url.replace("PORT", str(port)) or f"http://127.0.0.1:{port}"
    inputs = (f"http_timeout=3; port={port}; login_path=/login; health_path=/health; "
              f"proxy_url={shlex.quote(proxy)}; nginx_conf_dir={tmp_path}/none;\n")
    try:
        out = subprocess.run([shutil.which("sh"), "-c", "".join(BUILTIN["http"].library_texts()) + inputs
                              + BUILTIN["http"].shell], capture_output=True, text=True, timeout=60,
                             env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, cwd=tmp_path).stdout
    finally:
        server.shutdown()
    return out.replace(str(port), "PORT"), len(log.read_text().split())


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("curl", [None, *_OLD_CURL], ids=["curl", *_OLD_CURL])
def test_the_http_probe_makes_every_attempt_with_one_curl_or_alone_on_an_older_one(curl, tmp_path):
    """One curl start-up for all attempts, each with its own line and exit code; an older curl's
    attempts without their exit code run alone, so every attempt shows as before either way."""
    out, starts = _http_probe(tmp_path, curl)
    lines = sorted(line.split(" connect=")[0] + " exit=" + line.rsplit("exit=", 1)[1]
                   for line in out.splitlines()[1:])
    loopback = ["target=127.0.0.1:PORT path=/health method=GET code=200",
                "target=127.0.0.1:PORT path=/login method=POST code=401",
                "target=proxy path=/health method=GET code=200", "target=proxy path=/login method=POST code=401"]
    answered = sorted(f"{line} exit={'' if curl == 'no-exitcode' else 0}" for line in loopback)
    assert out.splitlines()[0] == "== http client=curl =="
    assert [line for line in lines if "code=200" in line or "code=401" in line] == answered
    unanswered = [line for line in lines if line not in answered]  # [::1], where nothing listens
    assert len(unanswered) == 2 and all(" code=000 exit=" in u and u[-1].isdigit() for u in unanswered)
    assert starts == {None: 1, "no-parallel": 7, "no-exitcode": 3}[curl]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_url_curls_config_would_misread_never_goes_into_it(tmp_path):
    """A proxy_url closing the config's quotes to add an option of its own: its attempts run
    alone (the URL one argument, as before), the others still with one curl, and no option of it
    took effect (no file written)."""
    (tmp_path / "injected").mkdir()  # where the injected option would write (the path appended)
    out, starts = _http_probe(tmp_path, None, 'http://127.0.0.1:PORT/x"\noutput = "injected')
    assert not list((tmp_path / "injected").iterdir())
    assert starts == 3
    assert len([line for line in out.splitlines() if line.startswith("target=proxy ")]) == 2


_MASTER = "      7 nginx: master process /usr/sbin/nginx"
_CONF = "# configuration file /etc/nginx/nginx.conf:\nhttp {\n\n  server { listen 80; }\n}"


@pytest.mark.parametrize("fd6, masters, t, t_exit, conf", [
    (f"{_MASTER}\n#fleet-dump\nnginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
     f"nginx: configuration file /etc/nginx/nginx.conf test is successful\n{_CONF}\n\n\n#fleet-t exit=0\n",
     _MASTER, "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
     "nginx: configuration file /etc/nginx/nginx.conf test is successful", "0", _CONF),
    (f"{_MASTER}\n{_MASTER}\n#fleet-dump\nnginx: [emerg] unknown directive \"sever\" in /etc/nginx/nginx.conf:3\n"
     "nginx: configuration file /etc/nginx/nginx.conf test failed\n\n#fleet-t exit=1\n",
     f"{_MASTER}\n{_MASTER}", "nginx: [emerg] unknown directive \"sever\" in /etc/nginx/nginx.conf:3\n"
     "nginx: configuration file /etc/nginx/nginx.conf test failed", "1", ""),
    (f"{_MASTER}\n#fleet-dump\n{_CONF}\n\n#fleet-t exit=0\n", _MASTER, "", "0", _CONF),  # -T said nothing else
    ("\n#fleet-dump\n", "", "", "", ""),  # nginx not running: no -T
], ids=["ok", "invalid", "quiet", "stopped"])
def test_the_shared_step_is_read_back_into_masters_t_and_config(fd6, masters, t, t_exit, conf, tmp_path):
    """What the nginx, discover and http probes read of the shared step (fleet_shared): nginx's
    master lines, -t's result from -T's other lines and exit status, and the config alone."""
    shared = tmp_path / "fd6"
    shared.write_text(fd6)
    show = 'fleet_shared; printf "%s|" "$fleet_masters" "$fleet_t" "$fleet_t_exit" "$fleet_conf"'
    out = subprocess.run([shutil.which("sh"), "-c", 'exec 6<"$1"; eval "$2"', "sh", str(shared),
                          "".join(BUILTIN["nginx"].library_texts()) + show],
                         capture_output=True, text=True, check=True).stdout
    assert out.split("|")[:4] == [masters, t, t_exit, conf]
