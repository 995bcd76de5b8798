"""--workers: hosts over worker processes give the verdicts one process gives; Ctrl-C and SIGTERM
still leave a partial report, and the workers do not outlive the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.models import Host
from fleet.workers import choose_workers, shard
from tests.test_faults import COMMAND, _default_sigint
from tests.test_ssh_e2e import only_report, write_inventory

# A local host's command printing the pid of the Python process that runs it (the worker).
OWNER = ('p=$$; while [ "$p" -gt 1 ]; do case "$(cat /proc/$p/comm)" in python*) echo "$p"; break;; esac; '
         "p=$(awk '{print $4}' /proc/$p/stat); done")


def test_hosts_behind_one_jump_host_share_a_worker_and_shards_are_even() -> None:
    hosts = [Host(name=f"h{i}", address="127.0.0.1") for i in range(10)]
    jump = {"h0": "b1", "h3": "b1", "h5": "b1", "h7": "b1", "h2": "b2", "h9": "b2"}
    shards = shard(hosts, lambda h: jump.get(h.name), 3)
    where = {h.name: i for i, part in enumerate(shards) for h in part}
    assert len({where[n] for n in ("h0", "h3", "h5", "h7")}) == 1
    assert where["h2"] == where["h9"]
    assert sorted(len(s) for s in shards) == [3, 3, 4]
    assert sorted(h.name for s in shards for h in s) == sorted(h.name for h in hosts)
    assert all([h.name for h in s] == sorted((h.name for h in s), key=lambda n: int(n[1:])) for s in shards)


def test_worker_count_follows_hosts_cores_and_forks() -> None:
    assert choose_workers(0, 10, 50) == 1
    assert choose_workers(2, 10, 50) == 2
    assert choose_workers(4, 3, 50) == 3  # never more workers than hosts
    assert choose_workers(4, 100, 2) == 2  # nor than forks
    assert choose_workers(0, 100_000, 50) == 1  # one process keeps 50 forks fed
    assert choose_workers(0, 100_000, 1000) == min(os.cpu_count() or 1, 10)
    assert choose_workers(0, 300, 1000) == 1  # too few hosts to pay for a second start-up


def _diagnose(tmp_path: Path, inventory: Path, workers: int) -> dict:
    out = tmp_path / f"reports-{workers}"
    proc = subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook", str(COMMAND),
                           "--out", str(out), "--workers", str(workers)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode in (0, 1), proc.stderr
    return only_report(out)


def test_two_workers_run_the_hosts_in_two_processes_with_the_same_verdicts(tmp_path):
    hosts = {f"h{i}": {"ansible_connection": "local", "cmd": OWNER} for i in range(4)}
    hosts["bad"] = {"ansible_connection": "local", "cmd": "exit 3"}
    inventory = write_inventory(tmp_path / "inv.yml", hosts)
    one, two = _diagnose(tmp_path, inventory, 1), _diagnose(tmp_path, inventory, 2)

    def owners(doc):
        return {h["probes"]["run"]["stdout"].strip() for h in doc["hosts"] if h["name"].startswith("h")}

    assert len(owners(one)) == 1 and len(owners(two)) == 2
    assert [(h["name"], h["verdict"]) for h in one["hosts"]] == [(h["name"], h["verdict"]) for h in two["hosts"]]
    assert {h["verdict"] for h in two["hosts"]} == {"ran", "failed"}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_sigint_and_sigterm_with_workers_leave_a_partial_report_and_no_worker(tmp_path):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        owner = tmp_path / f"slow-owner-{sig.name}"
        inventory = write_inventory(tmp_path / "inv.yml", {
            "quick": {"ansible_connection": "local", "cmd": "echo done"},
            "slow": {"ansible_connection": "local", "cmd": f"({OWNER}) > {owner}; exec sleep 30"},
        })
        out = tmp_path / f"reports-{sig.name}"
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                                 str(COMMAND), "--out", str(out), "--workers", "2"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=_default_sigint,
                                start_new_session=True)
        deadline = time.monotonic() + 30
        while not (list(out.glob("*.jsonl")) and '"verdict"' in list(out.glob("*.jsonl"))[0].read_text()
                   and owner.exists() and owner.read_text().strip()):
            assert time.monotonic() < deadline, "the quick host never finished"
            time.sleep(0.1)
        worker = int(owner.read_text())
        assert worker != proc.pid and _alive(worker)
        # As a terminal does: Ctrl-C reaches the whole foreground group, workers included.
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        assert proc.wait(timeout=20) == code
        assert "Traceback" not in proc.stderr.read().decode()
        report = only_report(out)
        assert report["partial"] is True
        assert [h["name"] for h in report["hosts"]] == ["quick"]
        assert report["not_diagnosed"] == ["slow"]
        end = json.loads(list(out.glob("*.jsonl"))[0].read_text().splitlines()[-1])
        assert end["end"]["not_diagnosed"] == ["slow"]
        gone = time.monotonic() + 5
        while _alive(worker) and time.monotonic() < gone:
            time.sleep(0.1)
        assert not _alive(worker), "a worker outlived the run"


def test_a_worker_that_dies_leaves_its_hosts_a_verdict_and_the_run_a_report(tmp_path):
    owner = tmp_path / "owner"
    inventory = write_inventory(tmp_path / "inv.yml", {
        # Short: killing its worker outright leaves this command to end by itself.
        "doomed": {"ansible_connection": "local", "cmd": f"({OWNER}) > {owner}; exec sleep 8"},
        "fine": {"ansible_connection": "local", "cmd": "echo fine"},
    })
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                             str(COMMAND), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (owner.exists() and owner.read_text().strip()):
        assert time.monotonic() < deadline, "host doomed never started"
        time.sleep(0.1)
    os.kill(int(owner.read_text()), signal.SIGKILL)
    assert proc.wait(timeout=20) == 1
    assert "Traceback" not in proc.stderr.read().decode()
    verdicts = {h["name"]: (h["verdict"], h["summary"]) for h in only_report(out)["hosts"]}
    assert verdicts["fine"][0] == "ran"
    assert verdicts["doomed"] == ("unreachable", "internal error: worker process ended (exit code -9)")


def test_workers_die_with_a_parent_killed_outright(tmp_path):
    owner = tmp_path / "owner"
    inventory = write_inventory(tmp_path / "inv.yml", {
        "a": {"ansible_connection": "local", "cmd": f"({OWNER}) > {owner}; exec sleep 30"},
        "b": {"ansible_connection": "local", "cmd": "sleep 30"},
    })
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                             str(COMMAND), "--out", str(tmp_path / "out"), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (owner.exists() and owner.read_text().strip()):
        assert time.monotonic() < deadline, "host a never started"
        time.sleep(0.1)
    worker = int(owner.read_text())
    proc.kill()
    proc.wait(timeout=10)
    gone = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < gone:
        time.sleep(0.1)
    assert not _alive(worker), "a worker outlived its killed parent"


testfleet = pytest.importorskip("testfleet")
PREFIX = os.environ.get("FLEET_E2E_PREFIX", "flte")
SUBNET = os.environ.get("FLEET_E2E_SUBNET", "198.18.210.0/24")


@pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
def test_real_hosts_get_the_same_verdicts_from_two_workers_as_from_one(tmp_path):
    """Every 502 scenario on real sshd/nginx/backend test hosts, diagnosed by 1 and by 2 workers."""
    try:
        with testfleet.TestFleet(tmp_path / "tf", scenarios="all", prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            verdicts = {}
            for workers in (1, 2):
                out = tmp_path / f"reports-{workers}"
                proc = subprocess.run(
                    [sys.executable, "-m", "fleet", "diagnose", "-i", str(tf.inventory_path), "--known-hosts",
                     str(tf.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--timeout", "30",
                     "--workers", str(workers)],
                    capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
                assert proc.returncode == 1, proc.stderr
                doc = only_report(out)
                # Verdict and severity: a summary's wording may list what the host answered in its own order.
                verdicts[workers] = {h["name"]: (h["verdict"], h["severity"]) for h in doc["hosts"]}
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))
    assert {name: v for name, (v, _) in verdicts[1].items()} == tf.expected
    assert verdicts[2] == verdicts[1]
