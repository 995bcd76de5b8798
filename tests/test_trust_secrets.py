"""Signals, secrets and files (issue 12 §4), with real processes, signals and symlinks."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from fleet.diagnose import RunOptions, prepare, run
from fleet.models import Connection, Host
from fleet.report import document
from fleet.runbook import load_runbook

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "inventories/local.yml"
COMMAND = ROOT / "tests/fixtures/runbooks/command.yml"


def fleet(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def local_inventory(path: Path, **vars) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": {"here": {"ansible_connection": "local", **vars}}}}))
    return path


# --- SIGTERM ---------------------------------------------------------------------------------

def test_sigterm_landing_in_a_parser_or_rule_ends_the_run():
    # The CLI's real handler and a real SIGTERM, sent while hosts are being interpreted over and
    # over: it must come out of interpret (once it was an Exception, which parse_facts and the
    # rules caught, so a terminated run could end "healthy" with exit 0).
    script = textwrap.dedent(f"""
        import os, signal, threading
        from fleet.signals import Terminated, _on_sigterm
        from fleet.interpret import interpret
        from fleet.models import Host, ProbeOutput
        from fleet.runbook import load_runbook
        book = load_runbook({str(COMMAND)!r})
        probes = {{"run": ProbeOutput("run", 0, "k=v line\\n" * 20000, "", 0.1)}}
        signal.signal(signal.SIGTERM, _on_sigterm)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        try:
            for _ in range(2000):
                interpret(book, Host("h", ""), probes, {{"cmd": "x"}})
            print("finished: the signal was swallowed")
        except Terminated:
            print("terminated")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "terminated", proc.stderr


# --- become password file --------------------------------------------------------------------

@pytest.mark.parametrize("content", ["pw\nid > /tmp/pwned\n", "pw\rx", "pw\0x", "pw\r\n"])
def test_become_password_file_with_more_than_one_line_is_refused(tmp_path, content):
    secret = tmp_path / "pw"
    secret.write_bytes(content.encode())
    proc = fleet("diagnose", "-i", str(local_inventory(tmp_path / "inv.yml")), "--become-password-file", str(secret),
                 "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "must hold one line" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- report files ----------------------------------------------------------------------------

def _diagnose_local(tmp_path: Path, out: Path, *extra: str, **vars) -> subprocess.CompletedProcess:
    inventory = local_inventory(tmp_path / "inv.yml", cmd="echo ok", **vars)
    return fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--out", str(out), *extra, cwd=tmp_path)


def test_a_report_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    proc = _diagnose_local(tmp_path, shared)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "other users can write" in proc.stderr
    assert list(shared.iterdir()) == []


def test_planted_symlinks_are_never_followed_and_files_are_private(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    # Every name a run of this second could use, pointing at the victim: the names of the old
    # scheme (no run id) and temp names of the old writer.
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for suffix in (".jsonl", ".json", ".md", ".html", ".retry", ".json.tmp"):
        (out / f"{stamp}-command{suffix}").symlink_to(victim)
    proc = _diagnose_local(tmp_path, out)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    made = [p for p in out.iterdir() if not p.is_symlink()]
    assert {p.suffix for p in made} == {".jsonl", ".json", ".md", ".html"}
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_runs_in_the_same_second_get_their_own_files(tmp_path):
    out = tmp_path / "out"
    runs = [subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i",
                              str(local_inventory(tmp_path / f"inv{i}.yml", cmd=f"echo run{i}")),
                              "--runbook", str(COMMAND), "--out", str(out), "--json"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}) for i in range(4)]
    results = [r.communicate(timeout=120) for r in runs]
    assert all(r.returncode == 0 for r in runs), results
    journals = sorted(out.glob("*.jsonl"))
    assert len(journals) == 4 and len(set(out.glob("*.json"))) == 4
    for journal in journals:
        stem = journal.name.removesuffix(".jsonl")
        report = json.loads((out / f"{stem}.json").read_text())
        # The journal's first and last lines describe the run; the one line between is its host.
        [entry] = [e for e in map(json.loads, journal.read_text().splitlines()) if "run" not in e and "end" not in e]
        assert report["hosts"][0]["probes"] == entry["probes"]  # each report is its own run's


@pytest.mark.parametrize("kind, message", [("a file", "not a directory"),
                                           ("impossible", "cannot create the report directory")])
def test_an_out_that_is_a_file_or_cannot_exist_is_one_line(tmp_path, kind, message):
    out = tmp_path / "taken"
    if kind == "a file":
        out.write_text("x")
    else:
        out = Path("/proc/1/nope")  # procfs takes no new directories, even from root
    proc = _diagnose_local(tmp_path, out)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_a_runbook_name_with_a_slash_stays_in_the_report_directory(tmp_path):
    book = tmp_path / "slash.yml"
    book.write_text(COMMAND.read_text().replace("name: command", "name: ../../escape/x"))
    out = tmp_path / "out"
    proc = fleet("diagnose", "-i", str(local_inventory(tmp_path / "inv.yml", cmd="true")), "--runbook", str(book),
                 "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "escape").exists()
    assert len(list(out.glob("*_escape_x.json"))) == 1


# --- secrets ---------------------------------------------------------------------------------

SECRETS = ("S3cretMy", "S3cretPass", "S3cretRedis", "S3cretCurl", "S3cretDb", "S3cretTok")


def test_secret_flags_of_real_processes_are_redacted_from_ps_output(tmp_path):
    # Real processes whose command lines carry secrets the way ps shows them to every user.
    lines = ["mysql -h db -pS3cretMy app", "sshpass -p S3cretPass ssh web1", "redis-cli -h r -a S3cretRedis ping",
             "curl -sS -u admin:S3cretCurl http://x/", "app --db-password S3cretDb --port 80",
             "worker --api-token=S3cretTok"]
    procs = [subprocess.Popen(["x", "-c", "import time;time.sleep(60)", *line.split()], executable=sys.executable)
             for line in lines]
    try:
        out = tmp_path / "out"
        proc = _diagnose_local(tmp_path, out, "--var", "cmd=ps -ww -eo pid,args")
        text = "".join(p.read_text() for p in out.iterdir())
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert proc.returncode == 0, proc.stderr
    for shown in ("mysql -h db -p[REDACTED] app", "sshpass -p [REDACTED] ssh web1", "redis-cli -h r -a [REDACTED] ping",
                  "curl -sS -u admin:[REDACTED] http://x/", "app --db-password [REDACTED] --port 80",
                  "worker --api-token=[REDACTED]"):
        assert shown in text, shown
    for secret in SECRETS:
        assert secret not in text, secret


def test_reports_keep_only_the_ps_lines_the_rules_use(tmp_path):
    # The 502 runbook's own process probe on this machine, with a real backend look-alike and a
    # real neighbour whose command line holds a secret no pattern knows.
    # Short command lines: the probe's `ps` cuts lines at 80 columns when it has no terminal.
    marker = f"fbk{os.getpid()}"
    procs = [subprocess.Popen(["be", "-c", "import time;time.sleep(60)", marker], executable=sys.executable),
             subprocess.Popen(["nb", "-c", "import time;time.sleep(60)", "hunter2-unknown"], executable=sys.executable)]
    try:
        book = load_runbook("502")
        process_only = dataclasses.replace(book, probes=tuple(p for p in book.probes if p.name == "process"), rules=())
        host = Host("here", "localhost", connection=Connection.LOCAL, vars={"process_pattern": marker})
        options = RunOptions(timeout_s=30)
        [result] = run(prepare([host], process_only, options), process_only, options)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.pid for p in result.facts["process"].matching] == [procs[0].pid]
    entry = document.host_entry(result)
    kept = entry["probes"]["process"]["stdout"]
    assert marker in kept and "hunter2-unknown" not in kept
    assert any("line(s) of probe process not kept in the report" in n for n in entry["notes"])


def test_inventory_variables_that_are_not_parameters_stay_out_of_reports(tmp_path):
    out = tmp_path / "out"
    proc = _diagnose_local(tmp_path, out, vault_addr_note="https://vault.internal/v1", db_pw="hunter2",
                           deploy_key_id="k-123", team="payments")
    assert proc.returncode == 0, proc.stderr
    text = "".join(p.read_text() for p in out.iterdir())
    for value in ("vault.internal", "hunter2", "k-123", "payments"):
        assert value not in text
    [report] = out.glob("*.json")
    assert json.loads(report.read_text())["hosts"][0]["parameters"] == {"cmd": "echo ok"}


def test_fleet_hosts_masks_secret_looking_names_widely(tmp_path):
    names = ["db_pw", "pwd", "auth_header", "ssh_key", "vault_addr", "gh_token", "gpg_passphrase", "mysql_pass"]
    inventory = local_inventory(tmp_path / "inv.yml", **{n: f"value-{n}" for n in names}, region="eu")
    proc = fleet("hosts", "-i", str(inventory), "--json", cwd=tmp_path)
    [row] = json.loads(proc.stdout)
    assert row["vars"]["region"] == "eu"
    assert all(row["vars"][n] == "****" for n in names), row["vars"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200, and records, while the request is in flight, every command line on this machine."""

    seen: list[tuple[str | None, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        cmdlines = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
        self.seen.append((self.headers.get("Authorization"), "\n".join(cmdlines)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def test_credentials_in_proxy_url_never_reach_a_command_line_on_the_host():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        book = load_runbook("502")
        http_only = dataclasses.replace(book, probes=tuple(p for p in book.probes if p.name == "http"), rules=())
        url = f"http://probe:S3cretProxy@127.0.0.1:{server.server_address[1]}"
        host = Host("here", "localhost", connection=Connection.LOCAL, vars={"proxy_url": url, "port": 1})
        options = RunOptions(timeout_s=30)
        [result] = run(prepare([host], http_only, options), http_only, options)
    finally:
        server.shutdown()
    assert _Recorder.seen, result.probes["http"]
    for authorization, cmdlines in _Recorder.seen:
        assert authorization == "Basic cHJvYmU6UzNjcmV0UHJveHk="  # probe:S3cretProxy, sent by curl
        assert "S3cretProxy" not in cmdlines
        assert "127.0.0.1" in cmdlines  # the recorder saw the probe's curl command line
    assert "S3cretProxy" not in json.dumps(document.host_entry(result))


# --- untrusted working directories -----------------------------------------------------------

def test_config_and_runbooks_in_a_directory_others_can_write_are_ignored(tmp_path):
    shared = tmp_path / "shared"
    (shared / "runbooks").mkdir(parents=True)
    shared.chmod(0o1777)
    (shared / "fleet.toml").write_text('[diagnose]\nforks = 7\n')
    (shared / "runbooks" / "planted.yml").write_text(COMMAND.read_text())
    proc = fleet("runbooks", cwd=shared, env={"COLUMNS": "200"})
    assert "planted" not in proc.stdout
    assert "fleet: warning: ignoring runbooks in runbooks:" in proc.stderr
    assert "fleet: warning: ignoring fleet.toml:" in proc.stderr
    out = tmp_path / "out"
    inventory = local_inventory(tmp_path / "inv.yml", cmd="true")
    ran = fleet("diagnose", "-i", str(inventory), "--runbook", str(COMMAND), "--out", str(out), "--json", cwd=shared)
    assert json.loads(ran.stdout)["options"]["forks"] == 50  # the planted fleet.toml said 7
    assert json.loads(ran.stdout)["runbook_source"] == str(COMMAND)
