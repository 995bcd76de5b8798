"""Remedies as runbook data: what they may run, how they load, and that hostile facts inject nothing.

The central test builds every remedy of every rule of the 502 runbook from hostile facts (the
probe outputs of tests/test_fixes.py, parsed by the real parsers) and runs the exact shell lines
`fleet fix apply` would send, in a real sh whose PATH holds recording stubs and the marker:
the marker never runs, and every command that runs is exactly one of the actions' argvs.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.errors import InputError, RunbookError
from fleet.fixes import EditFile, Manager, Service, Signal, StartProcess, Verb
from fleet.fix import actions, audit, policy
from fleet.fix import plan as plan_file
from fleet.fix import remedies as remedy_spec
from fleet.fix.apply import Refused, batch_size
from fleet.models import ProbeOutput
from fleet.parsers import PARSERS
from fleet.runbook import host_params, load_runbook
from tests.test_fixes import HOSTILE_PARAMS, MARK, _stubs, hostile_outputs

RUNBOOK = Path(__file__).resolve().parent.parent / "fleet" / "runbooks" / "502.yml"


def hostile_remedies(root: Path, manager: str) -> list[remedy_spec.Built]:
    """Every remedy of every rule built from hostile facts (their `when`s ignored)."""
    book = load_runbook("502")
    params = host_params(book, {}, {k: v for k, v in HOSTILE_PARAMS.items() if k in book.defaults()})
    outputs = hostile_outputs(root, manager)
    probes = {p.name: ProbeOutput(p.name, 0, outputs[p.name], "", 0.1) for p in book.probes}
    facts = {p.name: PARSERS[p.parser](probes[p.name], params) for p in book.probes}
    context = {**facts, "params": params, "host": {"name": "h", "address": "a"}, "probes": probes}
    return [remedy_spec.build(r, context, rule.verdict) for rule in book.rules for r in rule.remedies]


@pytest.mark.parametrize("manager", ["systemd", "docker", "none"])
def test_every_remedy_from_hostile_facts_runs_only_its_argvs(tmp_path, manager):
    built = hostile_remedies(tmp_path, manager)
    assert len(built) == 6
    runnable = [s for b in built for s in (*b.evidence, *b.steps, *b.rollback) if policy.step_problem(s) is None]
    acts = actions.for_steps(tuple(runnable), "/var/backups/fleet/x") + actions.restores(
        tuple(s for b in built for s in b.steps), "/var/backups/fleet/x")
    assert len(acts) >= 5
    bin_dir = _stubs(tmp_path / "sh", {a.argv[0] for a in acts if "/" not in a.argv[0]} | {"nohup"})
    script = "\n".join(a.shell for a in acts) + "\nwait\n"
    (tmp_path / "sent.sh").write_text(script)
    subprocess.run(["/bin/sh", str(tmp_path / "sent.sh")], env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
                   cwd=tmp_path, capture_output=True, timeout=60)
    assert not (tmp_path / "sh" / "MARKER-RAN").exists(), script
    recorded = set()
    for record in (tmp_path / "sh" / "log").iterdir():
        first, *rest = record.read_bytes().decode().split("\0")[:-1]
        recorded.add((first.removeprefix(f"{bin_dir}/"), *rest))
    expected = {a.argv for a in acts if not a.argv[0].startswith("/") and not a.shell.startswith("cd -- ")}
    assert recorded and recorded <= {a.argv for a in acts} | {a.argv[a.argv.index("nohup"):] for a in acts
                                                              if "nohup" in a.argv}
    assert expected <= recorded
    assert MARK in script  # the payloads did reach the commands, as data


def test_hostile_remedies_name_the_right_process_and_never_a_pattern(tmp_path):
    built = {b.remedy.name: b for b in hostile_remedies(tmp_path, "none")}
    restart = built["restart_backend_from_proc"]
    assert not restart.problems
    kills = [a.argv for a in actions.for_steps(restart.steps, "/b") if "kill" in a.argv]
    assert kills == [("sudo", "kill", "101")]  # only this namespace's pid, by number


@pytest.mark.parametrize("argv, reason", [
    (["pkill", "-f", "python main.py"], "name pattern"),
    (["sudo", "killall", "python"], "name pattern"),
    (["sudo", "kill", "-9", "123"], "kill -9"),
    (["kill", "python"], "kill -9"),
    (["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], "drop_caches"),
    (["/srv/app/venv/bin/pip", "install", "-r", "requirements.txt"], "pip install"),
    (["python3", "-m", "pip", "install", "x"], "pip install"),
    (["docker-compose", "up", "-d"], "recreate containers"),
    (["sudo", "-u", "app", "docker", "compose", "up"], "recreate containers"),
    (["tail", "-f", "/var/log/app.log"], "never ends"),
    (["sudo", "journalctl", "-u", "x", "-f"], "never ends"),
    (["sudo", "nano", "/etc/nginx/nginx.conf"], "interactive"),
    (["nohup", "bash", "-c", "x"], "interactive"),
])
def test_never_automated(argv, reason):
    assert reason in policy.forbidden(argv)


@pytest.mark.parametrize("argv", [["sudo", "-n", "nginx", "-t"], ["sudo", "kill", "12", "13"],
                                  ["sudo", "systemctl", "restart", "api"], ["tail", "-n", "50", "--", "/x"],
                                  ["sudo", "docker", "restart", "api"]])
def test_allowed(argv):
    assert policy.forbidden(argv) is None


def test_risk_ceiling():
    assert policy.allowed(policy.Risk.MEDIUM, policy.Risk.MEDIUM)
    assert not policy.allowed(policy.Risk.HIGH, policy.Risk.MEDIUM)
    assert not policy.allowed(policy.Risk.MANUAL, policy.Risk.HIGH)


@pytest.mark.parametrize("spec, group, size", [("1", 10, 1), ("3", 2, 3), ("25%", 10, 3), ("100%", 7, 7),
                                               ("1%", 3, 1)])
def test_batch_sizes(spec, group, size):
    assert batch_size(spec, group) == size


@pytest.mark.parametrize("spec", ["0", "-1", "x", "150%", "%"])
def test_bad_batch_is_refused(spec):
    with pytest.raises(Refused):
        batch_size(spec, 5)


def _runbook_with_remedy(tmp_path: Path, remedy: str) -> Path:
    text = RUNBOOK.read_text()
    anchor = "    remedies:\n      - name: start_nginx\n"
    assert anchor in text
    path = tmp_path / "own.yml"
    path.write_text(text.replace(anchor, "    remedies:\n" + remedy + "      - name: start_nginx\n", 1))
    return path


@pytest.mark.parametrize("remedy, message", [
    ("      - {name: x, risk: extreme, steps: [{run: [echo]}]}\n", "risk must be one of"),
    ("      - {name: x, risk: low}\n", "steps must be a non-empty list"),
    ("      - {name: X!, risk: low, steps: [{run: [echo]}]}\n", "unique name"),
    ("      - {name: x, risk: low, steps: [{run: [echo]}], colour: red}\n", "unknown key 'colour'"),
    ("      - {name: x, risk: low, steps: [{run: [echo]}], max_per_day: 0}\n", "max_per_day"),
    ("      - {name: x, risk: low, steps: [{run: [echo]}], verify: {healthy_runs: 0}}\n", "healthy_runs"),
    ("      - {name: x, risk: low, steps: [{run: [echo]}], preconditions: [nosuchprobe.x]}\n", "nosuchprobe"),
    ("      - {name: x, risk: low, steps: [{sudo: [echo]}]}\n", "unknown key 'sudo'"),
])
def test_malformed_remedies_are_refused_at_load(tmp_path, remedy, message):
    with pytest.raises(RunbookError) as err:
        load_runbook(str(_runbook_with_remedy(tmp_path, remedy)))
    assert message in str(err.value) and "own.yml:" in str(err.value)


def test_a_user_remedy_that_names_a_forbidden_command_stays_manual(tmp_path):
    path = _runbook_with_remedy(tmp_path, "      - {name: big_hammer, risk: low, steps: [{run: [pkill, -f, nginx]}]}\n")
    book = load_runbook(str(path))
    rule = next(r for r in book.rules if r.verdict == "nginx_not_running")
    built = remedy_spec.build(remedy_spec.choose(rule.remedies, {}), {}, rule.verdict)
    assert built.remedy.name == "big_hammer" and any("name pattern" in p for p in built.problems)


def test_runbook_show_lists_remedies():
    proc = subprocess.run([sys.executable, "-m", "fleet", "runbook", "show", "502"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    for name in ("point_nginx_upstream", "start_nginx", "restart_backend_from_proc", "restart_hanging_backend"):
        assert name in proc.stdout
    assert "remedies" in proc.stdout


@pytest.mark.parametrize("step, problem", [
    (EditFile("etc/nginx/x.conf", 2, "a", "b"), "not an absolute path"),
    (EditFile("/etc/nginx/x.conf", None, "a", "b"), "exact old and new"),
    (EditFile("/etc/nginx/x.conf", 2, "a\nb", "c"), "control characters"),
    (Signal((1,)), "not process ids"),
    (StartProcess(("python", "main.py"), "/srv/app"), "absolute program"),
    (Service(Manager.SYSTEMD, Verb.RESTART, " "), "without a service name"),
])
def test_steps_with_values_of_the_wrong_kind_are_not_run(step, problem):
    assert problem in policy.step_problem(step)


def test_attempts_per_day_are_counted_from_the_journals(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    journal = audit.Audit(str(tmp_path / "a.audit.jsonl"), "r1")
    for host, remedy in (("web1", "start_nginx"), ("web1", "start_nginx"), ("web2", "start_nginx"),
                         ("web1", "point_nginx_upstream")):
        journal.record("act", host=host, remedy=remedy)
    journal.record("host_start", host="web1", remedy="start_nginx")  # not an attempt to act
    journal.close()
    assert audit.attempts_today(str(tmp_path), "web1", "start_nginx", now) == 2
    assert audit.attempts_today(str(tmp_path), "web1", "start_nginx", now + dt.timedelta(hours=25)) == 0
    with pytest.raises(FileExistsError):  # a journal is never reopened or followed through a link
        audit.Audit(str(tmp_path / "a.audit.jsonl"), "r2")


@pytest.mark.parametrize("text, message", [
    ("[]", "not a fleet plan"),
    ('{"fleet_plan": 1}', "'fix' is missing"),
    ('{"fleet_plan": 1, "fix": [{"name": "a"}], "left_alone": [], "runbook": {}, "inventory": {}, "options": {}, '
     '"counts": {}, "created_at": "x", "id": "x", "before": [], "backup_dir": "/b"}', "host entry 1 is malformed"),
    ("{", "not JSON"),
])
def test_a_malformed_plan_is_one_line_of_error(tmp_path, text, message):
    (tmp_path / "plan.json").write_text(text)
    with pytest.raises(InputError) as err:
        plan_file.load(str(tmp_path / "plan.json"))
    assert message in str(err.value)
