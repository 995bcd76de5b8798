"""`fleet fix` acts with the privilege the host's own probes saw (`meta priv=`, fleet/script.py).

As root: no sudo at all (a root login may have none); with passwordless sudo: `sudo -n` (never a
password prompt); as a plain user: the steps that need root are refused in the plan, with the
reason, and never attempted. The report's lines, for a human, print `sudo` by the same one rule.
End to end on real test hosts: a root login whose sudo is gone from the host is fixed, and a
plain user whose sudo asks for a password gets a refused plan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tests.test_fleet_502 as t502
from fleet import fixes
from fleet.fix import actions
from fleet.models import Privilege
from tests.test_fix_apply import BACKUPS, apply, curl_in, fleet, fleet_up, journal, make_plan, outcomes
from tests.test_fix_remedies import hostile_remedies

NGINX_T = ("sudo", "nginx", "-t")


@pytest.mark.parametrize("argv, privilege, runs", [
    (NGINX_T, None, NGINX_T),
    (("sudo", "-n", "nginx", "-t"), None, NGINX_T),  # a report line reads `sudo`, however it was written
    (NGINX_T, Privilege.ROOT, ("nginx", "-t")),
    (("sudo", "-n", "nginx", "-t"), Privilege.ROOT, ("nginx", "-t")),
    (NGINX_T, Privilege.SUDO, ("sudo", "-n", "nginx", "-t")),
    (("sudo", "-n", "nginx", "-t"), Privilege.SUDO, ("sudo", "-n", "nginx", "-t")),
    # switching to another user still needs sudo, as root too
    (("sudo", "-u", "app", "nohup", "/srv/run"), Privilege.ROOT, ("sudo", "-n", "-u", "app", "nohup", "/srv/run")),
    (("curl", "-sS", "http://127.0.0.1:8000/health"), Privilege.ROOT, ("curl", "-sS", "http://127.0.0.1:8000/health")),
])
def test_one_rule_for_sudo(argv, privilege, runs):
    assert fixes.with_privilege(argv, privilege) == runs


def test_a_plain_user_never_runs_a_root_step():
    with pytest.raises(ValueError):
        fixes.with_privilege(NGINX_T, Privilege.USER)
    assert fixes.needs_root(fixes.Service(fixes.Manager.SYSTEMD, fixes.Verb.START, "nginx"))
    assert fixes.needs_root(fixes.EditFile("/etc/nginx/nginx.conf", 3, "a", "b"))
    assert not fixes.needs_root(fixes.Command(("curl", "-sS", "http://127.0.0.1/")))


@pytest.mark.parametrize("manager", ["systemd", "docker", "none"])
def test_every_remedy_runs_as_its_privilege_and_prints_plain_sudo(tmp_path, manager):
    steps = tuple(s for b in hostile_remedies(tmp_path, manager) for s in (*b.evidence, *b.steps, *b.rollback)
                  if not isinstance(s, fixes.Note) and (isinstance(s, fixes.EditFile) or fixes.shell_line(s)))
    assert any(fixes.needs_root(s) for s in steps)
    printed = [line for s in steps for line in fixes.render(s) if not line.startswith("#")]
    assert printed and not any("sudo -n" in line for line in printed)
    assert any(line.startswith("sudo ") for line in printed)
    as_root = actions.for_steps(steps, "/b", Privilege.ROOT) + (actions.lock("me", Privilege.ROOT),)
    assert not any(a.argv[0] == "sudo" and a.argv[1:3] != ("-n", "-u") for a in as_root), as_root
    with_sudo = actions.for_steps(steps, "/b", Privilege.SUDO) + (actions.lock("me", Privilege.SUDO),)
    assert all(a.argv[1] == "-n" for a in with_sudo if a.argv[0] == "sudo")
    assert sum(a.argv[0] == "sudo" for a in with_sudo) >= len([s for s in steps if fixes.needs_root(s)])


def hide_sudo(tf, name: str) -> None:
    """Take sudo off the host, as on a minimal image: an overlay on /usr/bin without it (this host's
    mount namespace only), so `command -v sudo` finds nothing."""
    script = """set -e
        d=$(realpath /usr/bin); o=/tmp/fleet-no-sudo
        mkdir -p $o && mount -t tmpfs tmpfs $o && mkdir $o/upper $o/work
        mount -t overlay overlay -o lowerdir=$d,upperdir=$o/upper,workdir=$o/work $d
        rm -f -- $d/sudo
        ! command -v sudo"""
    proc = tf.exec(name, script)
    assert proc.returncode == 0, proc.stderr


def test_a_root_login_without_sudo_is_fixed_without_sudo(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running,nginx_upstream_mismatch") as tf:
        for name in tf.hosts:
            hide_sudo(tf, name)
        plan = make_plan(tf, tmp_path / "plan.json")
        planned = {h["name"]: h for h in plan["fix"]}
        assert set(planned) == set(tf.hosts) and {h["privilege"] for h in plan["fix"]} == {"root"}
        assert [c["shell"] for c in planned["nginx_not_running"]["remedy"]["commands"]["steps"]] == \
            ["nginx -t", "nginx"]
        assert "ran as root (a root login, or become): the commands run without sudo." in \
            (tmp_path / "plan.md").read_text()
        out = tmp_path / "out"
        proc = apply(tmp_path / "plan.json", out, "--yes", "--max-unhealthy", "100%")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert outcomes(out) == {"nginx_not_running": "fixed", "nginx_upstream_mismatch": "fixed"}
        events = journal(out)
        sent = [e for e in events if e["event"] in ("command", "lock")]
        assert {e.get("phase", "lock") for e in sent} == {"lock", "step", "unlock"}
        assert not any("sudo" in e["argv"] for e in sent), sent  # nothing, not even the lock, went through sudo
        steps = [e["shell"] for e in sent if e.get("phase") == "step"]
        assert {"nginx -t", "nginx", "/usr/sbin/nginx -s reload"} <= set(steps)
        assert all(e["exit_code"] == 0 for e in sent)
        for name in tf.hosts:
            assert curl_in(tf, name, "http://127.0.0.1/health") == "200"
            assert tf.exec(name, "test -e /run/fleet-fix.lock").returncode == 1  # released


def test_a_plain_user_without_sudo_gets_a_refused_plan_and_with_become_is_fixed(tmp_path):
    with fleet_up(tmp_path, "nginx_not_running") as tf:
        # the same host, reached as fleetops, whose sudo asks for a password (so `sudo -n` fails)
        host = tf.hosts["nginx_not_running"]
        keys = host.hostdir / "root" / "etc/ssh/authorized_keys"
        (keys / "fleetops").write_text((keys / "root").read_text())
        inventory = tmp_path / "as-user.yml"
        inventory.write_text(tf.inventory_path.read_text().replace("ansible_user: root", "ansible_user: fleetops"))
        before = t502.snapshot(tf)
        plan_path = tmp_path / "plan.json"
        proc = fleet_plan(tf, inventory, plan_path)
        assert proc.returncode == 0, proc.stderr
        plan = json.loads(plan_path.read_text())
        assert plan["fix"] == []
        [alone] = plan["left_alone"]
        assert alone["verdict"] == "nginx_not_running"
        assert "a plain user without passwordless sudo" in alone["reason"]
        assert "sudo nginx -t" in alone["reason"] and "password prompt" in alone["reason"]
        assert "use become" in alone["reason"]
        assert "plain user without passwordless sudo" in (tmp_path / "plan.md").read_text()
        assert t502.snapshot(tf) == before  # nothing attempted: no lock, no file
        refused = apply(plan_path, tmp_path / "out", "--yes", "--max-unhealthy", "100%")
        assert refused.returncode == 2 and "no host to fix" in refused.stderr

        # The same login with become (its sudo password): the probes and the fix both run as root
        # under become's own sudo, and the fix's commands add no sudo of their own.
        become = tmp_path / "become.yml"
        become.write_text(inventory.read_text().replace("ansible_user: fleetops",
                                                        "ansible_user: fleetops\n      ansible_become: true"))
        password = tmp_path / "pw"
        password.write_text((tf.workdir / "fleetops.password").read_text())
        proc = fleet_plan(tf, become, plan_path, "--become-password-file", str(password))
        assert proc.returncode == 0, proc.stderr
        [entry] = json.loads(plan_path.read_text())["fix"]
        assert entry["privilege"] == "root"
        assert [c["shell"] for c in entry["remedy"]["commands"]["steps"]] == ["nginx -t", "nginx"]
        out = tmp_path / "out-become"
        proc = apply(plan_path, out, "--yes", "--max-unhealthy", "100%", "--become-password-file", str(password))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert outcomes(out) == {"nginx_not_running": "fixed"}
        assert curl_in(tf, "nginx_not_running", "http://127.0.0.1/health") == "200"


def fleet_plan(tf, inventory: Path, plan: Path, *extra: str):
    return fleet("fix", "plan", "-i", str(inventory), "--known-hosts", str(tf.known_hosts_path), "--ssh-config",
                 "/dev/null", "--backup-dir", BACKUPS, "--timeout", "30", "--plan", str(plan), *extra)
