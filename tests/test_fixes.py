"""Fixes are data, quoted in one place: nothing a host says can make a pasted fix run anything else.

The central test renders every fix entry of every rule of every built-in runbook from hostile
facts (parsed by the real parsers from probe output crafted the way a compromised or merely odd
host could print it) and pastes the lines into a real `sh`. Its PATH holds only recording stubs
and `fleet-marker`, the command every payload tries to run: the marker must never run, and every
command that runs must be exactly one of the steps' argvs.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from fleet import fixes, fixspec
from fleet.fixes import Blank, Command, EditFile, Manager, Note, Service, Signal, StartProcess, Verb, Word
from fleet.models import ProbeOutput
from fleet.parsers import PARSERS
from fleet.runbook import builtin_runbooks, host_params, load_runbook

MARK = "fleet-marker"
# What an attacker puts in anything fleet reads: command substitution, separators, quotes,
# comment tricks, and the characters str.splitlines() splits on where the host saw one line.
PAYLOADS = ("$(fleet-marker)", "`fleet-marker`", "; fleet-marker #", "' ; fleet-marker ; '", '" ; fleet-marker ; "',
            "\\'$(fleet-marker)", "x\u2028fleet-marker", "x\x85fleet-marker", "\x1b]8;;x\x07")
EVIL = "".join(PAYLOADS[:6])


def _hex(text: str) -> str:
    return text.encode().hex()


def _proc(pid: int, role: str, argv: list[str], ns: str, cwd: str = "", exe: str = "", found: str = "",
          venv: str = "", cgroup: str = "0::/", requirements: bool = True) -> str:
    lines = [f"== proc pid={pid} role={role} ==", f"ns={_hex(ns)}", f"user={_hex('deploy' + EVIL + ':1000' + chr(10))}",
             f"argv={_hex(chr(0).join(argv) + chr(0))}", f"cwd={_hex(cwd)}", f"exe={_hex(exe)}",
             f"cgroup={_hex(cgroup)}"]
    lines += [f"found={_hex(found)}"] if found else []
    lines += [f"venv={_hex(venv)}"] if venv else []
    lines += ["requirements=1"] if requirements else []
    return "\n".join(lines)


def hostile_outputs(root: Path, manager: str) -> dict[str, str]:
    """Probe outputs of a host that tries to inject through every value a fix may name."""
    app = root / f"app dir;{EVIL}"
    venv = root / f"venv {EVIL}"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    app.mkdir(parents=True, exist_ok=True)
    own, other = "pid:[4026531836]", "pid:[4026532999]"
    argv = ["python", "main.py", *PAYLOADS[:6]]
    unit = {"systemd": "== systemd ==\nLoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n"
                       "== docker-absent ==",
            "docker": "== systemd-absent ==\n== docker exit=0 ==\nexited running=false pid=0 exit=1",
            "none": "== systemd-absent ==\n== docker-absent =="}[manager]
    upstream_file = f"/etc/nginx/sites enabled/a b;{EVIL}.conf"
    return {
        "process": "== ps source=ps-etimes ==\n"
                   f"  101 deploy 50 python main.py {' '.join(PAYLOADS)}\n"
                   f"  202 root 70 python main.py --worker{EVIL}\n== cwd ==\n",
        "procs": "\n".join([
            f"== procs ns={own} ==",
            _proc(101, "backend", argv, own, str(app), "/usr/bin/python3.11", str(venv / "bin/python"), str(venv)),
            _proc(202, "backend", ["python", "main.py", f"--worker{EVIL}"], other, "/srv", "/usr/bin/python3",
                  cgroup="0::/system.slice/docker-" + "ab12" * 16 + ".scope"),
            _proc(303, "nginx", ["nginx: master process /usr/sbin/nginx"], own, "/", f"/usr/sbin/nginx {EVIL}",
                  cgroup="0::/" if manager != "systemd" else "0::/system.slice/nginx.service"),
        ]) + "\n",
        "unit": unit + "\n",
        "listen": "== listen source=netstat ==\nActive Internet connections (only servers)\n"
                  "Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n"
                  f"tcp6 0 0 ::1:8000 :::* LISTEN 101/python{EVIL}\n",
        "http": "== http client=curl ==\n"
                "target=127.0.0.1:8000 path=/health method=GET code=000 connect=0 total=0 exit=7\n"
                "target=[::1]:8000 path=/health method=GET code=200 connect=0.1 total=0.2 exit=0\n"
                "target=[::1]:8000 path=/api/v1/demo-login method=POST code=500 connect=0.1 total=0.2 exit=0\n"
                "target=127.0.0.1:8001 path=/api/v1/demo-login method=POST code=000 connect=0 total=3 exit=28\n"
                "target=proxy path=/api/v1/demo-login method=POST code=502 connect=0.1 total=0.2 exit=0\n",
        "logs": "== logs source=file ==\n"
                "Traceback (most recent call last):\n"
                f'  File "/srv/{EVIL}/main.py", line 1, in <module>\u2028  File "/x/{EVIL}/lib/python3.11/site-packages/a.py"\n'
                f"ModuleNotFoundError: No module named 'jwt{EVIL}'\n"
                "OSError: [Errno 98] Address already in use\n"
                'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed\n'
                f"PermissionError: [Errno 13] Permission denied: '/srv/a b/{PAYLOADS[0]}{PAYLOADS[2]}'\n"
                "Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 3\nKeyError: 'SECRET_KEY'\n"
                f"GET /{EVIL}\u2028  File \"/evil/{EVIL}/x.py\"\x85Traceback\n",
        "discover": "== platform ==\nuname=Linux release=6.1 machine=x86_64\nID=debian\n",
        "nginx_logs": "== clock epoch=1700000100 local=2023/11/14_22:15:00 minutes=15 ==\n"
                      f"== error_log path=/var/log/nginx/e{EVIL}.log state=read ==\n"
                      f"2023/11/14 22:14:00 [crit] 7#7: *1 connect() to unix:/run/a{EVIL}.sock failed (13: Permission "
                      "denied) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET / HTTP/1.1\", "
                      f"upstream: \"http://unix:/run/a{EVIL}.sock:/\", host: \"h\"\n"
                      "2023/11/14 22:14:30 [error] 7#7: *2 upstream sent too big header while reading response header "
                      f"from upstream, client: 127.0.0.1, server: , request: \"GET /{EVIL} HTTP/1.1\", "
                      "upstream: \"http://127.0.0.1:8000/\", host: \"h\"\n",
        "nginx": "== nginx-ps ==\n  303 nginx: master process /usr/sbin/nginx\n== nginx-t exit=1 priv=root ==\n"
                 f"2026/11/24 17:58:12 [emerg] 68#68: unexpected \"}}\" {EVIL} in {upstream_file}:14\n"
                 "nginx: configuration file /etc/nginx/nginx.conf test failed\n== nginx-T ==\n"
                 f"# configuration file {upstream_file}:\n"
                 f"upstream backend {{ server 127.0.0.1:8001 max_fails=3; }}\n"
                 "server { listen 80; server_name localhost; location / { proxy_pass http://backend; } }\n"
                 "server { listen 81; location /api/ { proxy_pass http://127.0.0.1:8000; } }\n",
    }


def hostile_host_outputs(root: Path) -> dict[str, str]:
    """The host runbook's probes on a host with hostile mount points, directories and process names."""
    mount = f"/srv/da ta;{EVIL}"
    return {
        "disk": "== df source=gnu exit=0 ==\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
                f"tmpfs 2048 2048 0 100% {mount}\n/dev/root 100 99 1 99% /\n"
                "== df-i source=gnu exit=0 ==\nFilesystem Inodes IUsed IFree IUse% Mounted on\n"
                f"tmpfs 64 64 0 100% {mount}\n/dev/root 100 99 1 99% /\n"
                f"== fstypes ==\ntmpfs {mount.replace(' ', chr(92) + '040')}\n"
                f"== du kind=blocks timeout=5 ==\nmount={mount}\n2048\t{mount}\n1800\t{mount}/up'loads{EVIL}\n"
                "== du-end exit=0 ==\n"
                "== du kind=blocks timeout=5 ==\nmount=/\n99\t/\n60\t/var\n== du-end exit=0 ==\n"
                f"== du kind=inodes timeout=5 ==\nmount={mount}\n64\t{mount}\n60\t{mount}/sess{EVIL}\n"
                "== du-end exit=0 ==\n",
        "kernel": "== clock now=1700000100 uptime=1000.0 tz=+0000 ==\n== kernel source=dmesg priv=root ==\n"
                  f"[  990.000000] wor'ker{EVIL} invoked oom-killer: gfp_mask=0xcc0, order=0\n"
                  "[  990.100000] memory: usage 49152kB, limit 49152kB, failcnt 12\n"
                  f"[  990.200000] oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/x.slice/a.service,task=w,pid=17\n"
                  f"[  990.300000] Memory cgroup out of memory: Killed process 17 (w'o{EVIL}) total-vm:100kB, "
                  "anon-rss:50kB, file-rss:0kB, shmem-rss:0kB, UID:0\n"
                  f"[  995.000000] oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/docker/{'cd34' * 16},task=d,pid=18\n"
                  f"[  995.100000] Memory cgroup out of memory: Killed process 18 (d{EVIL}) total-vm:100kB, "
                  "anon-rss:50kB, file-rss:0kB, shmem-rss:0kB, UID:0\n"
                  f"[  996.000000] Out of memory: Killed process 19 (h{PAYLOADS[3]}) total-vm:100kB, anon-rss:50kB, "
                  "file-rss:0kB, shmem-rss:0kB, UID:0\n",
        "memory": "== meminfo ==\nMemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 10 kB\nSwapTotal: 0 kB\n"
                  "== loadavg cpus=2 ==\n0.1 0.2 0.3 1/100 123\n",
    }


HOSTILE_PARAMS = {"service": f"api{EVIL}", "app_log": f"/var/log/a b/{EVIL}.log", "health_path": f"/h{EVIL}\nid\u2028",
                  "paths": f"/srv {EVIL}"}


def every_fix(runbook_name: str, outputs: dict[str, str]) -> list:
    """Every step of every fix entry of every rule, `when`s ignored except the entries' own."""
    book = load_runbook(runbook_name)
    params = host_params(book, {}, {k: v for k, v in HOSTILE_PARAMS.items() if k in book.defaults()})
    probes = {p.name: ProbeOutput(p.name, 0, outputs[p.name], "", 0.1) for p in book.probes}
    facts = {p.name: PARSERS[p.parser](probes[p.name], params) for p in book.probes}
    context = {**facts, "params": params, "host": {"name": "h", "address": "a"}, "probes": probes}
    steps = []
    for rule in book.rules:
        for entry in rule.fix:
            built = fixspec.build(entry, context)
            assert not any(isinstance(s, Note) and s.explain.startswith("(not available") for s in built), \
                (rule.verdict, entry.line, built)
            steps.extend(built)
    return steps


def _stubs(where: Path, names: set[str]) -> Path:
    """A PATH of recording stubs (and stubs at the absolute paths under `where`'s parent that fixes name):
    each call writes its argv, NUL-separated, to a file of its own."""
    bin_dir, log = where / "bin", where / "log"
    bin_dir.mkdir(parents=True)
    log.mkdir()
    record = f"#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" > {log}/$$\n"
    for name in names:
        path = bin_dir / name if "/" not in name else Path(name)
        if "/" in name and not name.startswith(f"{where.parent}/"):
            continue  # never write outside the test's directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record)
        path.chmod(0o755)
    (bin_dir / MARK).write_text(f"#!/bin/sh\n: > {where}/MARKER-RAN\n")
    (bin_dir / MARK).chmod(0o755)
    return bin_dir


def paste(tmp_path: Path, steps: list) -> tuple[list[tuple[str, ...]], str]:
    """Paste the rendered fix into a real sh; the argvs the stubs recorded and the pasted text."""
    text = "\n".join(fixes.render_all(steps)) + "\nwait\n"
    names = {str(a) for s in steps for argv in fixes.argvs(s) for a in argv[:1] if isinstance(a, str)}
    names |= {"sort", "tail", "head", "grep", "nohup"}
    bin_dir = _stubs(tmp_path / "sh", names)
    script = tmp_path / "pasted.sh"
    script.write_text(text)
    proc = subprocess.run(["/bin/sh", str(script)], env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert not (tmp_path / "sh" / "MARKER-RAN").exists(), (text, proc.stderr)
    recorded = []
    for record in (tmp_path / "sh" / "log").iterdir():
        first, *rest = record.read_bytes().decode().split("\0")[:-1]
        recorded.append((first.removeprefix(f"{bin_dir}/"), *rest))
    return recorded, text


def word(arg) -> str:
    """The one argument the shell makes of a rendered arg (a blank is its `<what>`)."""
    if isinstance(arg, Blank):
        return f"<{arg.what}>"
    if isinstance(arg, Word):
        return "".join(word(part) for part in arg.parts)
    return str(arg)


def expected_argvs(steps: list, cwd_ok) -> set[tuple[str, ...]]:
    """The argvs a faithful shell runs for these steps: complete ones whose directory exists."""
    runs = set()
    for step in steps:
        if not fixes.complete(step) or not fixes.render(step) or fixes.render(step)[-1].startswith("#"):
            continue
        cwd = getattr(step, "cwd", None)
        if cwd is not None and not cwd_ok(cwd):
            continue
        runs.update(tuple(word(a) for a in argv) for argv in fixes.argvs(step))
    return runs


@pytest.mark.parametrize("runbook, manager", [("502", "systemd"), ("502", "docker"), ("502", "none"), ("host", "-")])
def test_pasting_every_fix_of_every_rule_runs_only_its_argvs(tmp_path, runbook, manager):
    assert set(builtin_runbooks()) == {"502", "host"}  # a new built-in runbook joins this test
    outputs = hostile_outputs(tmp_path, manager) if runbook == "502" else hostile_host_outputs(tmp_path)
    steps = every_fix(runbook, outputs)
    assert len(steps) > 15
    recorded, text = paste(tmp_path, steps)
    allowed = {tuple(word(a) for a in argv) for s in steps for argv in fixes.argvs(s)}
    for argv in recorded:
        assert argv in allowed, (argv, text)
    missing = expected_argvs(steps, lambda cwd: isinstance(cwd, str) and os.path.isdir(cwd)) - set(recorded)
    assert not missing, (missing, text)
    assert any(MARK in line for line in text.split("\n"))  # the payloads did reach the fix text
    if runbook == "502":  # a parameter holding a newline: its command is shown commented out, never run
        assert "# not shown as a command, an argument holds control characters: curl -sS -o /dev/null -w " \
               "'%{http_code}\\n' 'http://127.0.0.1:8000/h" in text
        assert not any(argv[0] == "curl" for argv in recorded)


def test_hostile_502_fixes_are_the_right_ones(tmp_path):
    steps = every_fix("502", hostile_outputs(tmp_path, "none"))
    signals = [s for s in steps if isinstance(s, Signal)]
    # pid 202 runs in another PID namespace (a container): never offered to be stopped
    assert signals and all(s.pids == (101,) for s in signals)
    assert any("pid 202 (container ab12ab12ab12: not this host's own process): left alone" in s.explain
               for s in steps if isinstance(s, Note))
    [start] = {s for s in steps if isinstance(s, StartProcess)}
    assert start.argv[0] == str(tmp_path / f"venv {EVIL}" / "bin/python")  # argv[0] as found on its PATH
    assert start.argv[1:] == ("main.py", *PAYLOADS[:6]) and start.cwd == str(tmp_path / f"app dir;{EVIL}")
    pip = [s for s in steps if isinstance(s, Command) and "install" in s.argv]
    assert pip and all(s.argv[0] == f"{tmp_path}/venv {EVIL}/bin/pip" for s in pip)  # the venv fleet saw
    # nothing derived from the log's `File "..."` lines
    assert not any("/evil/" in line or "/x/" in line for line in fixes.render_all(steps))
    # the file nginx -t names, spaces, `;` and all, is the one to edit, quoted
    edits = {s.path for s in steps if isinstance(s, EditFile) and s.line == 14}
    assert edits == {f"/etc/nginx/sites enabled/a b;{EVIL}.conf"}
    # no systemctl on a host without systemd: nginx reloads through its own binary
    assert not any(isinstance(s, Service) for s in steps)
    assert Command(("sudo", f"/usr/sbin/nginx {EVIL}", "-s", "reload"), "nginx runs without a service manager") in steps


def test_hostile_fixes_use_the_manager_the_host_has(tmp_path):
    systemd = every_fix("502", hostile_outputs(tmp_path / "s", "systemd"))
    docker = every_fix("502", hostile_outputs(tmp_path / "d", "docker"))
    assert Service(Manager.SYSTEMD, Verb.RESTART, f"api{EVIL}") in systemd
    assert Service(Manager.SYSTEMD, Verb.RELOAD, "nginx.service") in systemd  # nginx's cgroup names its unit
    assert Service(Manager.DOCKER, Verb.START, f"api{EVIL}") in docker
    assert not any(isinstance(s, Service) and s.manager is Manager.SYSTEMD for s in docker)


def test_blanks_name_what_fleet_did_not_see():
    step = Command((Word((Blank("backend venv"), "/bin/pip")), "install", "-r", "requirements.txt"),
                   cwd=Blank("backend's directory"))
    assert fixes.render(step) == (
        "cd -- '<backend'\"'\"'s directory>' && '<backend venv>'/bin/pip install -r requirements.txt",)
    assert not fixes.complete(step)
    assert fixes.complete(Command(("ls",)))


def test_prose_is_one_comment_line_and_control_characters_are_never_a_command():
    note = Note("a\nb\u2028c\x85d\u202ee\x1b[31m")
    assert fixes.render(note) == ("# a<U+000A>b<U+2028>c<U+0085>d<U+202E>e<U+001B>[31m",)
    [line] = fixes.render(Command(("ls", "x\ny")))
    assert line == "# not shown as a command, an argument holds control characters: ls 'x<U+000A>y'"
    assert fixes.render(Command(("rm", "\u202e"), "why")) == (
        "# why", "# not shown as a command, an argument holds control characters: rm '<U+202E>'")


def test_typed_actions_render_to_quoted_lines():
    assert fixes.render(Service(Manager.SYSTEMD, Verb.RESTART, "-x y")) == ("sudo systemctl restart -- '-x y'",)
    assert fixes.render(Service(Manager.DOCKER, Verb.LOGS, "api")) == ("sudo docker logs --tail 50 api",)
    assert fixes.render(EditFile("/etc/a b", 3, "server a;", "server b;")) == (
        '# line 3 of /etc/a b: replace "server a;" with "server b;"', "sudoedit -- '/etc/a b'")
    assert fixes.render(StartProcess(("/v/python", "main.py", "; id #"), "/srv/a b", "deploy")) == (
        "cd -- '/srv/a b' && sudo -u deploy nohup /v/python main.py '; id #' >/dev/null 2>&1 &",)
    assert fixes.render(Signal(())) == ()


def test_plain_text_fix_entries_stay_prose(tmp_path):
    book = tmp_path / "rb.yml"
    book.write_text("name: t\nparameters: {svc: x}\nprobes:\n  - {name: p, parser: text, command: 'true'}\n"
                    "rules:\n  - verdict: v\n    when: 'true'\n    summary: s\n"
                    "    fix:\n      - sudo systemctl restart {{ params.svc }}\n"
                    "      - {explain: restart it, run: [sudo, systemctl, restart, '{{ params.svc }}']}\n"
                    "      - {for_each: '[1, 2]', run: [echo, {args: '[item, params.svc]'}]}\n")
    from fleet.rules import evaluate
    rb = load_runbook(str(book))
    out = ProbeOutput("p", 0, "", "", 0.1)
    d = evaluate(rb, {"p": PARSERS["text"](out, {})}, {"p": out}, {"svc": "a; id"}, {})
    assert d.fix == ("# sudo systemctl restart a; id", "# restart it", "sudo systemctl restart 'a; id'",
                     "echo 1 'a; id'", "echo 2 'a; id'")


@pytest.mark.parametrize("entry, message", [
    ("{run: 'sudo ls'}", "run must be a non-empty list"),
    ("{run: [ls], service: {action: start, manager: systemd, name: x}}", "not run and service"),
    ("{service: {action: kill, manager: systemd, name: x}}", "service action must be one of"),
    ("{edit: {line: 3}}", "edit must be a mapping with path"),
    ("{run: [ls, {argz: x}]}", "is a text or {args: EXPR}"),
    ("{explain: x, shell: 'ls'}", "unknown key 'shell'"),
    ("{run: ['{{ nope }}']}", "uses nope"),
])
def test_malformed_fix_entries_are_refused_at_load(tmp_path, entry, message):
    from fleet.errors import RunbookError
    book = tmp_path / "rb.yml"
    book.write_text("name: t\nprobes:\n  - {name: p, parser: text, command: 'true'}\n"
                    f"rules:\n  - verdict: v\n    when: 'true'\n    summary: s\n    fix:\n      - {entry}\n")
    with pytest.raises(RunbookError, match=message.replace("{", r"\{").replace("(", r"\(")):
        load_runbook(str(book))


def test_steps_in_the_json_report_match_the_schema(tmp_path):
    import jsonschema

    from fleet.report.document import jsonable
    from tests.test_report import schema

    steps = [*every_fix("502", hostile_outputs(tmp_path / "s", "systemd")), *every_fix("502", hostile_outputs(tmp_path / "n", "none")),
             *every_fix("host", hostile_host_outputs(tmp_path))]
    steps.append(EditFile("/etc/x", 2, "a", "b"))
    kinds = {s.kind for s in steps}
    assert kinds == {"note", "command", "service", "start_process", "edit_file", "signal"}
    full = schema()
    step_schema = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/step"}
    for step in jsonable(steps):
        jsonschema.validate(step, step_schema)


def test_a_container_s_process_is_not_this_host_s_backend(tmp_path):
    from fleet.rules import evaluate

    outputs = hostile_outputs(tmp_path, "none")
    outputs["process"] = "== ps source=ps-etimes ==\n  202 root 70 python main.py --worker\n== cwd ==\n"
    # sshd listens on any host fleet reached (an empty table would be output not understood)
    outputs["listen"] = ("== listen source=netstat ==\nActive Internet connections (only servers)\n"
                         "Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n"
                         "tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 1/sshd\n")
    outputs["http"] = ("== http client=curl ==\n"
                       "target=127.0.0.1:8000 path=/health method=GET code=000 connect=0 total=0 exit=7\n"
                       "target=proxy path=/api/v1/demo-login method=POST code=502 connect=0.1 total=0.2 exit=0\n")
    book = load_runbook("502")
    params = book.defaults()
    probes = {p.name: ProbeOutput(p.name, 0, outputs[p.name], "", 0.1) for p in book.probes}
    facts = {p.name: PARSERS[p.parser](probes[p.name], params) for p in book.probes}
    assert [p.pid for p in facts["process"].matching] == [202]  # ps alone cannot tell
    d = evaluate(book, facts, probes, params, {"name": "h", "address": "a"})
    assert d.verdict == "backend_not_running"
    assert "but 1 in other PID namespaces (containers), not this host's" in d.summary
    assert any(line.startswith("pid 202 (container ab12ab12ab12: not this host's own process): python main.py --worker")
               for line in d.evidence)
    assert not any(isinstance(s, Signal) for s in d.steps) and not any("sudo kill" in line for line in d.fix)
    # without the procs probe's facts, the verdict is what ps alone says (as before)
    del facts["procs"]
    assert evaluate(book, facts, probes, params, {"name": "h", "address": "a"}).verdict == "backend_not_listening"


def test_restart_runs_as_the_process_s_own_user(tmp_path):
    steps = every_fix("502", hostile_outputs(tmp_path, "none"))
    [start] = {s for s in steps if isinstance(s, StartProcess)}
    assert start.user == "deploy" + EVIL
    assert fixes.argvs(start)[0][:4] == ("sudo", "-u", "deploy" + EVIL, "nohup")


def test_a_journal_line_holding_u2028_reads_back_as_one_host(tmp_path):
    from fleet.report.journal import Journal, load

    entry = {"name": "web-01", "verdict": "backend_app_error", "severity": "critical",
             "summary": "logged: a\u2028  File \"/evil\"\x85b", "evidence": [], "fix": [], "probes": {},
             "parameters": {}, "facts": {}, "notes": [], "duration_s": 0.1, "address": "a", "groups": []}
    with Journal(tmp_path, dt.datetime(2026, 11, 30, 7, tzinfo=dt.timezone.utc), "502") as journal:
        journal.write(entry)
        journal.write({**entry, "name": "web-02"})
    doc = load(journal.path)
    assert [h["name"] for h in doc["hosts"]] == ["web-01", "web-02"]
    assert doc["hosts"][0]["summary"] == entry["summary"]
    assert not any("cut off" in note for note in doc["notes"])


def test_probe_output_is_split_on_newlines_only():
    from fleet.probes._common import lines_of
    from fleet.probes.sections import sections

    text = "== logs source=file ==\na\u2028b\x85c\x1cd\x0be\x0cf\r\ng\n"
    [_, section] = sections(text)
    assert section.lines == ["a\u2028b\x85c\x1cd\x0be\x0cf\r", "g"]
    assert lines_of("x\n\ny\n") == ["x", "", "y"] and lines_of("") == [] and lines_of(None) == []


def test_a_restart_by_hand_stops_only_the_program_it_starts_again():
    """Several apps match the pattern: only the processes of the one started again (its argv and
    directory: the app and its workers) are stopped; another app, or a process a systemd unit or
    a container runs, is left alone with a note, never signalled."""
    own = "pid:[4026531836]"
    app = ["/srv/a/venv/bin/python", "main.py"]
    out = "\n".join([
        f"== procs ns={own} ==",
        _proc(101, "backend", app, own, "/srv/a", "/usr/bin/python3", app[0]),
        _proc(102, "backend", app, own, "/srv/a", "/usr/bin/python3", app[0]),  # its worker
        _proc(103, "backend", ["python", "main.py", "--other"], own, "/srv/b", "/usr/bin/python3", "/usr/bin/python"),
        _proc(104, "backend", app, own, "/srv/a", "/usr/bin/python3", app[0], cgroup="0::/system.slice/billing.service"),
        _proc(105, "backend", app, own, "/srv/a", "/usr/bin/python3", app[0], cgroup="0::/docker/" + "cd34" * 16),
        _proc(106, "backend", app, own, "/srv/a", "/usr/bin/python3", app[0], cgroup="0::/system.slice/ssh.service"),
    ]) + "\n"
    procs = PARSERS["process_info"](ProbeOutput("procs", 0, out, "", 0.1), {})
    steps = procs.restart_steps([101, 102, 103, 104, 105, 106])
    [signal] = [s for s in steps if isinstance(s, Signal)]
    assert signal.pids == (101, 102, 106)  # ssh.service: a login's process, started by hand
    notes = " | ".join(s.explain for s in steps if isinstance(s, Note))
    assert "pid 103: not the command line and directory of pid 101: left alone" in notes
    assert "pid 104 runs under systemd unit billing.service: left alone" in notes
    assert "pid 105 runs under container cd34cd34cd34: left alone" in notes
