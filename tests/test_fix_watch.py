"""`fleet diagnose --watch`: rounds of diagnosis against real test hosts, showing what changed."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.test_fix_apply import fleet, fleet_up, pytestmark  # noqa: F401 - the same skip conditions


def watch(tf, out, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fleet", "diagnose", "-i", str(tf.inventory_path), "--known-hosts",
                             str(tf.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_watch_shows_a_host_recover_and_stops_once_healthy(tmp_path):
    with fleet_up(tmp_path, "healthy,nginx_not_running") as tf:
        proc = watch(tf, tmp_path / "out", "--watch", "1", "--until", "healthy", "--deadline", "90")
        time.sleep(4)  # a round or more with nginx down
        assert proc.poll() is None
        assert tf.exec("nginx_not_running", ["/usr/sbin/nginx"]).returncode == 0  # fixed by hand
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        rounds = [line for line in stderr.split("\n") if line.startswith("round ")]
        assert "1 of 2 hosts has a problem (1 nginx_not_running)" in rounds[0]
        assert "All 2 hosts healthy" in rounds[-1] and len(rounds) >= 2
        assert "1 fixed, 1 still healthy" in stderr
        assert len(list((tmp_path / "out").glob("*.json"))) == 1  # the last round's report


def test_watch_gives_up_at_the_deadline_and_refuses_bad_options(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running") as tf:
        proc = watch(tf, tmp_path / "out", "--watch", "1", "--until", "healthy", "--deadline", "3")
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert "deadline of 3 s reached" in stderr and "still broken" in stderr
        for bad in (["--until", "healthy"], ["--watch", "2", "--until", "green"]):
            proc = fleet("diagnose", "-i", str(tf.inventory_path), "--out", str(tmp_path / "o2"), *bad)
            assert proc.returncode == 2 and proc.stderr.startswith("fleet: error:"), proc.stderr
