"""Faults a run meets during an outage: each ends with a verdict for the host and a report for the rest."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.limits import REPORT_OUTPUT_CHARS
from tests import sshd as sshd_mod
from tests.conftest import needs_root
from tests.test_ssh_e2e import only_report, write_inventory

COMMAND = Path(__file__).resolve().parent / "fixtures/runbooks/command.yml"


def ssh_host(sshd, **vars) -> dict:
    return {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(sshd.user_key), **vars}


def known_hosts(sshd, path: Path) -> Path:
    path.write_text("".join(f"[{a}]:{sshd.port} {sshd.host_pub}\n" for a in sshd.addresses))
    return path


def diagnose(tmp_path, sshd, hosts: dict, *extra: str, env: dict | None = None):
    inventory = write_inventory(tmp_path / "inv.yml", hosts)
    out = tmp_path / "reports"
    args = [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook", str(COMMAND),
            "--known-hosts", str(known_hosts(sshd, tmp_path / "known")), "--ssh-config", "/dev/null",
            "--out", str(out), *extra]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=env)
    return proc, out, time.monotonic() - started


@needs_root
def test_command_that_never_ends_is_killed_on_the_host_before_the_deadline(sshd, tmp_path):
    proc, out, elapsed = diagnose(tmp_path, sshd, {"hung": ssh_host(sshd, cmd="echo started; sleep 31.5"),
                                                   "fine": ssh_host(sshd, cmd="echo ok")}, "--timeout", "3")
    hosts = {h["name"]: h for h in only_report(out)["hosts"]}
    assert hosts["fine"]["verdict"] == "ran"
    hung = hosts["hung"]
    # The probe's host-side time limit is clamped below the deadline: it is killed there, its
    # partial output comes back, and the host is inconclusive rather than judged on half a probe.
    assert hung["verdict"] == "inconclusive"
    assert hung["probes"]["run"]["stdout"] == "started\n"
    assert hung["evidence"] == ["run: probe timed out on the host"]
    assert elapsed < 3 + 3  # deadline + interpreter start-up
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep 31.5"]
    assert leftovers == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@needs_root
def test_huge_and_binary_output_is_capped_and_decoded(sshd, tmp_path):
    proc, out, _ = diagnose(tmp_path, sshd, {
        "huge": ssh_host(sshd, cmd="yes 0123456789 | head -c 300000000"),
        "binary": ssh_host(sshd, cmd=r"printf '\377\376 caf\303\251 \033[31mred\033[0m\n'"),
    })
    hosts = {h["name"]: h for h in only_report(out)["hosts"]}
    huge = hosts["huge"]["probes"]["run"]
    # The host cut the output at exactly 1 MiB; the report keeps its first REPORT_OUTPUT_CHARS and
    # says how much more arrived (issue 12 §6: what a run holds until its end must not grow with
    # what hosts send).
    kept, _, rest = huge["stdout"].partition("\n... (")
    assert huge["truncated"] and len(kept) == REPORT_OUTPUT_CHARS
    assert rest.startswith(f"{1024 * 1024 - REPORT_OUTPUT_CHARS} more characters not kept")
    binary = hosts["binary"]["probes"]["run"]["stdout"]
    assert "\ufffd\ufffd café" in binary
    assert "\x1b" not in proc.stderr  # nothing from a host reaches the terminal raw


@needs_root
def test_stale_agent_socket_does_not_hang_the_run(sshd, tmp_path):
    path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(path)
    agent.listen(8)  # accepts into the backlog, never answers
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": path}
        proc, out, elapsed = diagnose(tmp_path, sshd, {"h": ssh_host(sshd, cmd="echo ok")}, env=env)
    finally:
        agent.close()
    assert proc.returncode == 0, proc.stderr
    assert "did not answer" in " ".join(only_report(out)["notes"])
    assert elapsed < 15


@needs_root
def test_maxstartups_drops_are_retried_with_backoff(tmp_path):
    workdir = tmp_path / "sshd-tight"
    workdir.mkdir()
    info, server = sshd_mod.start(workdir, max_startups=3)
    try:
        hosts = {f"h{i:02}": ssh_host(info, cmd="echo ok") for i in range(12)}
        proc, out, _ = diagnose(tmp_path, info, hosts, "--forks", "12")
    finally:
        server.terminate()
        server.wait(10)
    report = only_report(out)
    verdicts = {h["name"]: h["verdict"] for h in report["hosts"]}
    assert set(verdicts.values()) == {"ran"}, verdicts
    assert any("connection attempts" in n for h in report["hosts"] for n in h["notes"])


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python only installs its Ctrl-C handler over the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_until_one_host_lands(inventory, out, **popen) -> subprocess.Popen:
    """`fleet diagnose` of `inventory` with the command runbook, started and left running once the
    first host's result is in its journal."""
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                             str(COMMAND), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + 20
    # The journal's first line describes the run (issue 16); a host's result is a line with its verdict.
    while not list(out.glob("*.jsonl")) or '"verdict"' not in list(out.glob("*.jsonl"))[0].read_text():
        assert time.monotonic() < deadline, "the quick host never finished"
        time.sleep(0.1)
    return proc


def test_sigint_and_sigterm_leave_a_partial_report(tmp_path):
    inventory = write_inventory(tmp_path / "inv.yml", {
        "quick": {"ansible_connection": "local", "cmd": "echo done"},
        "slow": {"ansible_connection": "local", "cmd": "sleep 30"},
    })
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = tmp_path / f"reports-{sig.name}"
        proc = _start_until_one_host_lands(inventory, out, preexec_fn=_default_sigint)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == code
        report = only_report(out)
        assert report["partial"] is True
        assert [h["name"] for h in report["hosts"]] == ["quick"]
        assert "slow" in " ".join(report["notes"])
        [journal] = out.glob("*.jsonl")
        # Issue 16: the journal starts with a line describing the run and ends with one saying how it
        # ended, so `fleet report X.jsonl` has the inventory and the real duration; between them, hosts.
        run, *hosts, end = [json.loads(line) for line in journal.read_text().splitlines()]
        assert [h["name"] for h in hosts] == ["quick"]
        assert run["run"]["inventory"] == str(inventory) and run["run"]["hosts"] == ["quick", "slow"]
        assert end["end"]["partial"] is True and end["end"]["not_diagnosed"] == ["slow"]


@needs_root
def test_handshake_that_stalls_after_the_banner_is_bounded(sshd, mute_after_banner, tmp_path):
    hosts = {"stalls": {**ssh_host(sshd), "ansible_port": mute_after_banner},
             "fine": ssh_host(sshd, cmd="echo ok")}
    proc, out, elapsed = diagnose(tmp_path, sshd, hosts, "--connect-timeout", "2", "--timeout", "4")
    verdicts = {h["name"]: (h["verdict"], h["duration_s"]) for h in only_report(out)["hosts"]}
    assert verdicts["fine"][0] == "ran"
    assert verdicts["stalls"][0] in ("unreachable", "timeout")
    assert verdicts["stalls"][1] < 4 + 1
    assert elapsed < 4 + 1 + 3


@needs_root
def test_script_killed_mid_run_keeps_what_finished(sshd, tmp_path):
    """The host's shell dies mid-script (channel closes early): finished probes are kept, the rest marked."""
    runbook = tmp_path / "two.yml"
    runbook.write_text(COMMAND.read_text().replace("""    command: sh -c {{ cmd }}
""", """    command: sh -c {{ cmd }}
  - name: killer
    parser: text
    command: kill -9 -"$(ps -o sid= -p $$ | tr -d ' ')"
  - name: after
    parser: text
    command: echo never
"""))
    inventory = write_inventory(tmp_path / "inv.yml", {"dies": ssh_host(sshd, cmd="echo partial")})
    out = tmp_path / "reports"
    subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook", str(runbook),
                    "--known-hosts", str(known_hosts(sshd, tmp_path / "known")), "--ssh-config", "/dev/null",
                    "--out", str(out)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    [host] = only_report(out)["hosts"]
    assert (host["probes"]["run"]["stdout"], host["probes"]["run"]["exit_code"]) == ("partial\n", 0)
    assert host["probes"]["killer"]["exit_code"] is None
    assert host["probes"]["after"]["exit_code"] is None
    # `run` alone decides this runbook's verdict; the probes that never finished are said, not guessed.
    assert host["verdict"] == "ran"
    assert "probe(s) gave no result: killer (the script ended before this probe finished), " \
           "after (the script ended before this probe started)" in host["notes"]


@needs_root
def test_secrets_in_output_are_redacted_and_the_report_says_so(sshd, tmp_path):
    secret_lines = ("Authorization: Bearer abcdefghijklmnop; password=hunter2; "
                    "key AKIAIOSFODNN7EXAMPLE; postgres://app:s3cr3t@db:5432/app")
    proc, out, _ = diagnose(tmp_path, sshd, {"leaky": ssh_host(sshd, cmd=f"echo '{secret_lines}'")})
    text = (next(out.glob("*.json")).read_text() + next(out.glob("*.md")).read_text()
            + next(out.glob("*.html")).read_text() + next(out.glob("*.jsonl")).read_text())
    for secret in ("abcdefghijklmnop", "hunter2", "AKIAIOSFODNN7EXAMPLE", "s3cr3t"):
        assert secret not in text
    [host] = only_report(out)["hosts"]
    assert "[REDACTED]" in host["probes"]["run"]["stdout"]
    assert any("redacted 4 secret(s)" in n for n in host["notes"])


@needs_root
def test_host_that_stops_sending_mid_output_ends_at_the_deadline(sshd, tmp_path):
    """The sshd serving us is frozen (SIGSTOP) halfway through the script: the deadline ends the host."""
    pid_file = tmp_path / "frozen.pid"
    runbook = tmp_path / "freeze.yml"
    runbook.write_text(COMMAND.read_text().replace("""  - name: run
""", """  - name: first
    parser: text
    command: echo first
  - name: run
"""))
    freeze = (f"p=$$; while [ $p -gt 1 ]; do case $(cat /proc/$p/comm) in sshd*) break;; esac; "
              f"p=$(cut -d' ' -f4 /proc/$p/stat); done; echo $p > {pid_file}; sleep 0.5; kill -STOP $p; sleep 5")
    inventory = write_inventory(tmp_path / "inv.yml", {"frozen": ssh_host(sshd, cmd=freeze),
                                                       "fine": ssh_host(sshd, cmd="echo ok")})
    out = tmp_path / "reports"
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook", str(runbook),
                        "--known-hosts", str(known_hosts(sshd, tmp_path / "known")), "--ssh-config", "/dev/null",
                        "--timeout", "4", "--out", str(out)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    finally:
        if pid_file.exists():  # the sshd session process our probe froze: ours to end
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    hosts = {h["name"]: h for h in only_report(out)["hosts"]}
    assert hosts["fine"]["verdict"] == "ran"
    frozen = hosts["frozen"]
    assert frozen["verdict"] == "timeout"
    assert frozen["probes"]["first"]["stdout"] == "first\n"  # what arrived before the freeze is kept
    assert frozen["probes"]["run"]["exit_code"] is None
    assert frozen["duration_s"] < 4 + 1.5
    assert elapsed < 4 + 1.5 + 3


def test_open_file_limit_caps_concurrency_instead_of_failing(tmp_path):
    import resource

    inventory = write_inventory(tmp_path / "inv.yml", {f"h{i}": {"ansible_connection": "local", "cmd": "echo ok"}
                                                       for i in range(12)})
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                           str(COMMAND), "--forks", "50", "--out", str(out)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (90, 90)))
    assert proc.returncode == 0, proc.stderr
    report = only_report(out)
    assert [h["verdict"] for h in report["hosts"]] == ["ran"] * 12
    assert "forks reduced from 50 to 4: the open-file limit is 90" in report["notes"]


def test_names_that_do_not_resolve_are_a_verdict_not_a_hang(tmp_path):
    """Run in an empty network namespace: no DNS query can leave it, lookups fail at once."""
    inventory = write_inventory(tmp_path / "inv.yml", {
        "ghost": {"ansible_host": "no-such-host.invalid", "ansible_user": "root"},
        "here": {"ansible_connection": "local", "cmd": "echo ok"},
    })
    out = tmp_path / "reports"
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory),
                           "--runbook", str(COMMAND), "--known-hosts", "/dev/null", "--ssh-config", "/dev/null",
                           "--connect-timeout", "3", "--out", str(out)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode not in (0, 1) and "unshare" in proc.stderr:
        pytest.skip(f"cannot unshare the network namespace: {proc.stderr.strip()}")
    hosts = {h["name"]: h for h in only_report(out)["hosts"]}
    assert hosts["here"]["verdict"] == "ran"
    assert hosts["ghost"]["verdict"] == "unreachable"
    assert hosts["ghost"]["summary"].startswith("DNS: no-such-host.invalid does not resolve")


@needs_root
def test_keys_from_a_real_ssh_agent_are_used(sshd, tmp_path):
    """No key in the inventory: authentication goes through ssh-agent, which holds the only right key."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "HOME": str(tmp_path)}  # no ~/.ssh/id_* either
        subprocess.run(["ssh-add", str(sshd.user_key)], env=env, check=True, capture_output=True)
        host = {k: v for k, v in ssh_host(sshd, cmd="echo ok").items() if k != "ansible_ssh_private_key_file"}
        proc, out, _ = diagnose(tmp_path, sshd, {"via-agent": host}, env=env)
    finally:
        agent.terminate()
        agent.wait(10)
    assert proc.returncode == 0, proc.stderr
    assert only_report(out)["hosts"][0]["verdict"] == "ran"


@needs_root
@pytest.mark.parametrize("workers", [1, 2])  # with 2, the parent asks for both worker processes
def test_an_encrypted_key_asks_for_its_passphrase_once(sshd, tmp_path, workers):
    key = tmp_path / "locked"
    subprocess.run(["cp", str(sshd.user_key), str(key)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "correct horse", "-f", str(key)], check=True, capture_output=True)
    hosts = {f"h{i}": {**ssh_host(sshd, cmd="echo ok"), "ansible_ssh_private_key_file": str(key)} for i in range(3)}
    inventory = write_inventory(tmp_path / "inv.yml", hosts)
    known = known_hosts(sshd, tmp_path / "known")
    out, log = tmp_path / "reports", tmp_path / "tty.log"
    command = (f"{sys.executable} -m fleet diagnose -i {inventory} --runbook {COMMAND} --known-hosts {known} "
               f"--ssh-config /dev/null --out {out} --workers {workers}")
    # `script` gives fleet a terminal, so getpass prompts on it; the passphrase is typed once the
    # prompt shows (getpass discards what was typed before it).
    proc = subprocess.Popen(["script", "-qefc", command, str(log)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)})
    deadline = time.monotonic() + 30
    while "Passphrase for" not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, "no passphrase prompt"
        time.sleep(0.05)
    proc.stdin.write(b"correct horse\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0
    assert log.read_text(errors="replace").count("Passphrase for") == 1
    assert [h["verdict"] for h in only_report(out)["hosts"]] == ["ran"] * 3
    assert "correct horse" not in "".join(p.read_text() for p in out.iterdir())


def test_a_run_killed_outright_is_rebuilt_from_its_journal(tmp_path):
    """SIGKILL leaves no report, only the journal: `fleet report run.jsonl` makes the report from it."""
    inventory = write_inventory(tmp_path / "inv.yml", {
        "quick": {"ansible_connection": "local", "cmd": "echo done"},
        # Its shell runs in a session of its own, so it outlives the kill: kept short to end soon.
        "slow": {"ansible_connection": "local", "cmd": "sleep 8"},
    })
    out = tmp_path / "reports"
    proc = _start_until_one_host_lands(inventory, out, start_new_session=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    [journal] = out.glob("*.jsonl")
    assert not list(out.glob("*.json"))
    with journal.open("a") as handle:
        handle.write('{"name": "half-writ')  # as if killed mid-write
    rebuilt = subprocess.run([sys.executable, "-m", "fleet", "report", str(journal), "--format", "json,md"],
                             capture_output=True, text=True, timeout=60)
    assert rebuilt.returncode == 0, rebuilt.stderr
    doc = json.loads(journal.with_suffix(".json").read_text())
    assert doc["partial"] is True and doc["runbook"] == "command"
    assert [h["name"] for h in doc["hosts"]] == ["quick"]
    assert any("cut off mid-write" in n for n in doc["notes"])
