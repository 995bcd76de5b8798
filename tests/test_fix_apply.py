"""`fleet fix plan` and `fleet fix apply` against real test hosts (sshd, nginx, the backend), through the CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tests.test_fleet_502 as t502
from fleet.fix.verify import check_url
from fleet.report import document

testfleet = pytest.importorskip("testfleet")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
PREFIX = os.environ.get("FLEET_FIX_E2E_PREFIX", "flfx")
SUBNET = os.environ.get("FLEET_FIX_E2E_SUBNET", "198.18.215.0/24")
RUNBOOK = Path(__file__).resolve().parent.parent / "fleet" / "runbooks" / "502.yml"
# On the test hosts /root is private (the host's roothome/); /var/backups is the machine's own.
BACKUPS = "/root/fleet-backups"
SITE = "etc/nginx/sites-available/backend"


@contextlib.contextmanager
def fleet_up(tmp_path: Path, scenarios: str):
    try:
        with testfleet.TestFleet(tmp_path / "tf", scenarios=scenarios, prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            yield tf
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))


def fleet(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True, text=True, timeout=timeout, **kw)


def make_plan(tf, path: Path, *extra: str) -> dict:
    proc = fleet("fix", "plan", "-i", str(tf.inventory_path), "--known-hosts", str(tf.known_hosts_path),
                 "--ssh-config", "/dev/null", "--backup-dir", BACKUPS, "--timeout", "30", "--plan", str(path), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(path.read_text())


def apply(plan: Path, out: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return fleet("fix", "apply", str(plan), "--out", str(out), *extra, **kw)


def outcomes(out: Path) -> dict[str, str]:
    [summary] = out.glob("*.fix.json")
    return {h["name"]: h["outcome"] for h in json.loads(summary.read_text())["hosts"]}


def journal(out: Path) -> list[dict]:
    [path] = out.glob("*.audit.jsonl")
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def host_files(tf, name: str) -> dict[str, tuple]:
    """Every file of one host's private tree (as test_fleet_502.snapshot, for one host)."""
    return {k: v for k, v in t502.snapshot(tf).items() if k.startswith(f"{name}/")}


def site(tf, name: str) -> str:
    return (tf.hosts[name].hostdir / "root" / SITE).read_text()


def runbook_with(tmp_path: Path, old: str, new: str) -> Path:
    """A user runbook: the built-in 502 with one text changed."""
    text = RUNBOOK.read_text()
    assert old in text
    path = tmp_path / "502-variant.yml"
    path.write_text(text.replace(old, new, 1))
    return path


def quick_restart_runbook(tmp_path: Path) -> Path:
    """The 502 runbook whose restart-from-/proc remedy gives up verifying after 6 s (not 60)."""
    return runbook_with(tmp_path, '        preconditions: ["not unit.manager"]\n',
                        '        preconditions: ["not unit.manager"]\n        verify: {healthy_runs: 2, deadline: 6}\n')


def curl_in(tf, name: str, url: str) -> str:
    return tf.exec(name, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", url]).stdout


def restart_with_stale_code(tf, name: str, flag: str) -> None:
    """Make the backend run old code that hangs (or never listens): started from a main.py that adds `flag`,
    which a deploy then replaced with the good one, so only a restart (same argv, same directory) fixes it."""
    pid = tf.hosts[name].pids["backend"]
    script = f"""
        kill {pid}; while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status; do sleep 0.1; done
        cd /srv/app && cp main.py main.py.good
        printf 'import sys\\nsys.argv.append("{flag}")\\nexec(open("main.py.good").read())\\n' > main.py
        PATH=/srv/app/venv/bin:$PATH setsid python main.py </dev/null >>/var/log/bandarupay/app.log 2>&1 &
        sleep 1.5; mv main.py.good main.py
    """
    assert tf.exec(name, script).returncode == 0


def test_plan_changes_nothing_then_apply_fixes_nginx_and_leaves_the_rest(tmp_path):
    scenarios = "healthy,nginx_upstream_mismatch,nginx_upstream_wrong_ip,nginx_not_running,backend_not_running," \
                "backend_hanging"
    with fleet_up(tmp_path, scenarios) as tf:
        before = t502.snapshot(tf)
        plan = make_plan(tf, tmp_path / "plan.json")
        assert t502.snapshot(tf) == before  # planning changed nothing anywhere
        planned = {h["name"]: h for h in plan["fix"]}
        assert {n: h["remedy"]["name"] for n, h in planned.items()} == {
            "nginx_upstream_mismatch": "point_nginx_upstream", "nginx_upstream_wrong_ip": "point_nginx_upstream",
            "nginx_not_running": "start_nginx", "backend_hanging": "restart_hanging_backend"}
        assert planned["backend_hanging"]["remedy"]["risk"] == "high"
        edit = planned["nginx_upstream_wrong_ip"]["remedy"]["commands"]["steps"][0]
        assert edit["argv"][-5:] == ["/etc/nginx/sites-enabled/backend", "2", "server 198.18.9.9:8000;",
                                     "server 127.0.0.1:8000;", f"{BACKUPS}/{plan['id']}"]
        assert [c["shell"] for c in planned["nginx_not_running"]["remedy"]["commands"]["steps"]] == \
            ["nginx -t", "nginx"]  # the test hosts log in as root: no sudo (issue: fix takes the probes' privilege)
        assert all(len(h["remedy"]["fingerprint"]) == 64 and h["remedy"]["facts"] for h in plan["fix"])
        alone = {h["name"]: h for h in plan["left_alone"]}
        assert alone["healthy"]["reason"] == "healthy"
        assert "start_backend_service" in alone["backend_not_running"]["reason"]
        assert any("pip install -r requirements.txt" in line for line in alone["backend_not_running"]["manual"])
        markdown = (tmp_path / "plan.md").read_text()
        assert "Manual steps (fleet never runs these)" in markdown and "needs `--allow-risk high`" in markdown
        assert "| backend_hanging | backend_hanging | risk high: above the default --allow-risk medium" in markdown
        assert len(plan["runbook"]["digest"]) == len(plan["inventory"]["digest"]) == 64

        # The same plan from diagnose's JSON report.
        reports = tmp_path / "reports"
        fleet("diagnose", "-i", str(tf.inventory_path), "--known-hosts", str(tf.known_hosts_path), "--ssh-config",
              "/dev/null", "--out", str(reports), "--format", "json")
        [report] = reports.glob("*.json")
        again = make_plan(tf, tmp_path / "again.json", "--from", str(report))
        assert {h["name"]: h["remedy"]["fingerprint"] for h in again["fix"]} == \
            {h["name"]: h["remedy"]["fingerprint"] for h in plan["fix"]}

        healthy = host_files(tf, "healthy")
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%")
        assert proc.returncode == 1, proc.stderr  # the hanging backend needs --allow-risk high
        assert outcomes(out) == {"nginx_upstream_mismatch": "fixed", "nginx_upstream_wrong_ip": "fixed",
                                 "nginx_not_running": "fixed", "backend_hanging": "skipped_risk"}
        assert host_files(tf, "healthy") == healthy  # a healthy host is untouched
        assert "server 127.0.0.1:8000;" in site(tf, "nginx_upstream_wrong_ip")
        backup = tf.hosts["nginx_upstream_wrong_ip"].hostdir / "root" / "roothome" / "fleet-backups" / plan["id"]
        assert "server 198.18.9.9:8000;" in (backup / "%etc%nginx%sites-enabled%backend.orig").read_text()
        for name in ("nginx_upstream_mismatch", "nginx_upstream_wrong_ip", "nginx_not_running"):
            assert curl_in(tf, name, "http://127.0.0.1/health") == "200"
        events = journal(out)
        assert events[0]["event"] == "run_start" and events[0]["who"] and events[-1]["event"] == "run_end"
        commands = [e for e in events if e["event"] == "command" and e["phase"] == "step"]
        assert {"nginx", "/usr/sbin/nginx -s reload"} <= {c["shell"] for c in commands}  # as root: no sudo
        assert all(c["exit_code"] == 0 and len(c["stdout_sha256"]) == 64 for c in commands)
        assert not any(e.get("host") == "healthy" for e in events)
        # before/after are diagnose's own reports
        [after] = out.glob("*-after.json")
        [before] = out.glob("*-before.json")
        verdicts = {h["name"]: h["verdict"] for h in document.load(str(after))["hosts"]}
        assert verdicts == {"nginx_upstream_mismatch": "healthy", "nginx_upstream_wrong_ip": "healthy",
                            "nginx_not_running": "healthy", "backend_hanging": "backend_hanging"}
        assert fleet("diff", str(before), str(after)).returncode == 0


def test_backend_restart_from_proc_fixes_a_backend_running_stale_code(tmp_path):
    with fleet_up(tmp_path, "healthy*2") as tf:
        restart_with_stale_code(tf, "healthy-01", "--no-listen")
        restart_with_stale_code(tf, "healthy-02", "--hang")
        secret = "db_password=hunter2-very-secret"
        log = tf.hosts["healthy-02"].hostdir / "root" / "var/log/bandarupay/app.log"
        log.write_text(log.read_text() + f"connecting with {secret}\n")
        plan = make_plan(tf, tmp_path / "plan.json")
        remedies = {h["name"]: (h["verdict"], h["remedy"]["name"]) for h in plan["fix"]}
        assert remedies == {"healthy-01": ("backend_not_listening", "restart_backend_from_proc"),
                            "healthy-02": ("backend_hanging", "restart_hanging_backend")}
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%", "--allow-risk", "high")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert outcomes(out) == {"healthy-01": "fixed", "healthy-02": "fixed"}
        events = journal(out)
        evidence = [e for e in events if e.get("phase") == "evidence" and e["host"] == "healthy-02"]
        assert evidence and "acquiring connection from pool" in evidence[-1]["stdout_tail"]  # kept before restart
        assert "connecting with db_password=[REDACTED]" in evidence[-1]["stdout_tail"]
        assert not any("hunter2" in path.read_text() for path in out.iterdir())  # masked in journal and reports
        [report] = out.glob("*.fix.md")
        assert "Evidence kept on healthy-02 before acting" in report.read_text()
        assert "acquiring connection from pool" in report.read_text()
        for name in ("healthy-01", "healthy-02"):
            assert curl_in(tf, name, "http://127.0.0.1/api/v1/demo-login") in ("401", "405", "404")
            assert curl_in(tf, name, "http://127.0.0.1:8000/health") == "200"


def test_stale_locked_and_a_failing_nginx_t_restores_the_file(tmp_path):
    with fleet_up(tmp_path, "nginx_upstream_mismatch*3") as tf:
        a, b, c = sorted(tf.hosts)
        plan = make_plan(tf, tmp_path / "plan.json", "--limit", f"{a},{b}")
        # between plan and apply: someone edits a's upstream, and another run holds b's lock
        path = tf.hosts[a].hostdir / "root" / SITE
        path.write_text(path.read_text().replace("127.0.0.1:8001", "127.0.0.1:8002"))
        edited = site(tf, a)
        tf.exec(b, "mkdir /run/fleet-fix.lock && echo 'fleet-fix other-run by alice@laptop' >/run/fleet-fix.lock/owner")
        files = {n: host_files(tf, n) for n in (a, b)}
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%", "--canary", "2")
        assert proc.returncode == 1
        assert outcomes(out) == {a: "stale", b: "locked"}
        summary = json.loads(next(out.glob("*.fix.json")).read_text())
        reasons = {h["name"]: h["reason"] for h in summary["hosts"]}
        assert "nginx.upstream_mismatch" in reasons[a] and "alice@laptop" in reasons[b]
        assert site(tf, a) == edited
        assert {n: host_files(tf, n) for n in (a, b)} == files  # neither host touched
        assert tf.exec(b, "cat /run/fleet-fix.lock/owner").stdout.startswith("fleet-fix other-run")  # not ours to free

        # A remedy whose edit breaks the config: nginx -t fails, the file is restored, nginx keeps serving.
        broken = runbook_with(tmp_path, 'new: "{{ item.text|replace(item.hostport, http.answering[0]) }}"\n'
                                        '          - run: [sudo, -n, nginx, -t]',
                              'new: "{{ item.text|replace(item.hostport, http.answering[0])|replace(\';\', \'\') }}"\n'
                              '          - run: [sudo, -n, nginx, -t]')
        original = site(tf, c)
        make_plan(tf, tmp_path / "broken.json", "--limit", c, "--runbook", str(broken))
        out = tmp_path / "out-broken"
        proc = apply(tmp_path / "broken.json", out, "--yes", "--max-unhealthy", "100%")
        assert proc.returncode == 1
        assert outcomes(out) == {c: "fix_failed"}
        reason = json.loads(next(out.glob("*.fix.json")).read_text())["hosts"][0]["reason"]
        assert "step 2" in reason and "rolled back" in reason
        assert site(tf, c) == original
        assert curl_in(tf, c, "http://127.0.0.1/api/v1/demo-login") == "502"  # nginx still up, old config
        assert tf.exec(c, ["nginx", "-t"]).returncode == 0
        assert tf.exec(c, "test -e /run/fleet-fix.lock").returncode == 1  # released


def test_max_failures_stops_the_wave_and_the_failed_cause(tmp_path):
    with fleet_up(tmp_path, "backend_not_listening*2,nginx_not_running") as tf:
        runbook = quick_restart_runbook(tmp_path)
        make_plan(tf, tmp_path / "plan.json", "--runbook", str(runbook))
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%", "--max-failures", "1")
        assert proc.returncode == 1
        # wave 1: both causes' canaries; the backend's restart cannot fix --no-listen: fix_failed, the run stops
        assert outcomes(out) == {"backend_not_listening-01": "fix_failed", "backend_not_listening-02": "not_attempted",
                                 "nginx_not_running": "fixed"}
        events = journal(out)
        assert [e["number"] for e in events if e["event"] == "wave"] == [1]
        assert not any(e.get("host") == "backend_not_listening-02" for e in events if e["event"] != "run_end")


def test_refusals(tmp_path):
    with fleet_up(tmp_path, "healthy,nginx_not_running,nginx_upstream_mismatch") as tf:
        files = t502.snapshot(tf)
        make_plan(tf, tmp_path / "plan.json")

        def refused(plan: str, *extra: str) -> str:
            proc = apply(tmp_path / plan, tmp_path / "out", *extra)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
            return proc.stderr

        assert "more than --max-unhealthy 50%" in refused("plan.json", "--yes")  # 2 of 3 have a problem
        assert "pass --yes" in refused("plan.json", "--max-unhealthy", "100%")  # no terminal to ask on
        assert "--allow-risk takes" in refused("plan.json", "--yes", "--allow-risk", "manual")
        old = json.loads((tmp_path / "plan.json").read_text())
        old["created_at"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)).isoformat()
        (tmp_path / "old.json").write_text(json.dumps(old))
        assert "minutes old" in refused("old.json", "--yes", "--max-unhealthy", "100%")
        own = runbook_with(tmp_path, "risk: low", "risk: low")
        make_plan(tf, tmp_path / "own.json", "--runbook", str(own))
        own.write_text(own.read_text() + "\n# edited after the plan\n")
        assert "changed since the plan" in refused("own.json", "--yes", "--max-unhealthy", "100%")
        make_plan(tf, tmp_path / "empty.json", "--limit", "healthy")
        assert "no host to fix" in refused("empty.json", "--yes")
        assert t502.snapshot(tf) == files
        assert not list(tmp_path.glob("out/*.audit.jsonl"))  # refused before anything was recorded


def test_hostile_process_and_directory_inject_nothing(tmp_path):
    with fleet_up(tmp_path, "healthy") as tf:
        pid = tf.hosts["healthy"].pids["backend"]
        hostile_dir = "/srv/app/x;touch /tmp/INJECTED-cwd #$(touch /tmp/INJECTED-sub)"
        script = f"""
            kill {pid}; while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status; do sleep 0.1; done
            mkdir -p '{hostile_dir}' && cd '{hostile_dir}'
            PATH=/srv/app/venv/bin:$PATH setsid python -c 'import time; time.sleep(600)' \
                'python main.py; touch /tmp/INJECTED-argv #' '$(touch /tmp/INJECTED-dollar)' '`touch /tmp/INJECTED-tick`' \
                </dev/null >/dev/null 2>&1 &
            sleep 0.5
        """
        assert tf.exec("healthy", script).returncode == 0
        plan = make_plan(tf, tmp_path / "plan.json", "--runbook", str(quick_restart_runbook(tmp_path)))
        [entry] = plan["fix"]
        assert entry["remedy"]["name"] == "restart_backend_from_proc"
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%")
        assert proc.returncode == 1  # the restarted sleeper does not listen: verification fails
        assert outcomes(out) == {"healthy": "fix_failed"}
        started = [e for e in journal(out) if e.get("phase") == "step" and "nohup" in e["argv"]]
        assert started and started[0]["exit_code"] == 0
        assert "'python main.py; touch /tmp/INJECTED-argv #'" in started[0]["shell"]
        tmp = tf.hosts["healthy"].hostdir / "root" / "tmp"
        assert not list(tmp.glob("INJECTED*"))  # no marker: nothing was injected
        ps = tf.exec("healthy", "for p in /proc/[0-9]*; do tr '\\0' '|' <$p/cmdline; echo; done").stdout
        assert "|python main.py; touch /tmp/INJECTED-argv #|$(touch /tmp/INJECTED-dollar)|" in ps  # exact argv again


def test_ctrl_c_between_waves_leaves_the_journal_complete(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running*3") as tf:
        make_plan(tf, tmp_path / "plan.json")
        out = tmp_path / "out"
        command = [sys.executable, "-m", "fleet", "fix", "apply", str(tmp_path / "plan.json"), "--out", str(out),
                   "--yes", "--max-unhealthy", "100%", "--batch", "1"]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not any(e["event"] == "lock" for e in (journal(out) if list(out.glob("*.audit.jsonl")) else [])):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # while the canary is being fixed
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        events = journal(out)
        started = [e["host"] for e in events if e["event"] == "host_start"]
        ended = {e["host"]: e["outcome"] for e in events if e["event"] == "host_end"}
        assert started and set(started) == set(ended) and set(ended.values()) == {"fixed"}  # none half-fixed
        assert events[-1]["event"] == "run_end" and "SIGINT" in events[-1]["interrupted"]
        results = outcomes(out)
        assert sorted(results.values()) == ["fixed", "not_attempted", "not_attempted"]
        for name, outcome in results.items():
            assert curl_in(tf, name, "http://127.0.0.1/health") == ("200" if outcome == "fixed" else "000")


def test_url_is_checked_from_the_controller_over_http_and_tls(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running,nginx_upstream_mismatch") as tf:
        host = tf.hosts["nginx_not_running"]
        tf.check_route(host.ip)
        cert, key = tmp_path / "cert.pem", host.hostdir / "root" / "etc/nginx/tls.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=fleet-test", "-addext", f"subjectAltName=IP:{host.ip}", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True)
        (host.hostdir / "root" / "etc/nginx/tls.crt").write_text(cert.read_text())
        (host.hostdir / "root" / "etc/nginx/conf.d/tls.conf").write_text(
            "server {\n    listen 443 ssl;\n    ssl_certificate /etc/nginx/tls.crt;\n"
            "    ssl_certificate_key /etc/nginx/tls.key;\n    location / { proxy_pass http://backend_app; }\n}\n")
        make_plan(tf, tmp_path / "plan.json", "--limit", "nginx_not_running")
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%",
                     "--url", "https://{address}/health", "--url-ca", str(cert))
        assert proc.returncode == 0, proc.stderr
        [summary] = json.loads(next(out.glob("*.fix.json")).read_text())["hosts"]
        url = summary["verification"]["url"]
        assert url["url"] == f"https://{host.ip}/health" and url["status"] == 200 and url["ok"]
        assert url["layer"] == "application (through nginx)" and 0 < url["connect_s"] <= url["total_s"]
        # Without the CA the certificate is refused; plain HTTP through the other host's nginx names the layer.
        assert "CERTIFICATE_VERIFY_FAILED" in check_url(f"https://{host.ip}/health").error
        other = tf.hosts["nginx_upstream_mismatch"]
        tf.check_route(other.ip)
        failing = check_url(f"http://{other.ip}/health")
        assert (failing.status, failing.ok, failing.layer) == (502, False, "nginx (no answer from the application)")


def test_without_yes_it_asks_once_per_cause_on_the_terminal(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running*2,nginx_upstream_mismatch") as tf:
        make_plan(tf, tmp_path / "plan.json")
        out, log = tmp_path / "out", tmp_path / "tty.log"
        command = f"{sys.executable} -m fleet fix apply {tmp_path / 'plan.json'} --out {out} --max-unhealthy 100%"
        proc = subprocess.Popen(["script", "-qefc", command, str(log)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL)
        answers = {"start_nginx": b"y\n", "point_nginx_upstream": b"n\n"}
        deadline = time.monotonic() + 60
        while answers:
            seen = log.read_text(errors="replace") if log.exists() else ""
            for remedy in list(answers):
                if f"Apply {remedy} to these" in seen:
                    proc.stdin.write(answers.pop(remedy))
                    proc.stdin.flush()
            assert time.monotonic() < deadline and proc.poll() is None, seen
            time.sleep(0.05)
        assert proc.wait(timeout=180) == 1
        text = log.read_text(errors="replace")
        assert text.count("Apply start_nginx to these 2 host(s)?") == 1  # once for the whole cause
        # the group's commands were shown before asking, as they run on a root login: without sudo
        assert "  nginx -t" in text and "sudo -n nginx -t" not in text
        assert outcomes(out) == {"nginx_not_running-01": "fixed", "nginx_not_running-02": "fixed",
                                 "nginx_upstream_mismatch": "declined"}
        assert "127.0.0.1:8001" in site(tf, "nginx_upstream_mismatch")
