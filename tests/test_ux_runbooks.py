"""Issue 16 through the CLI: --dry-run piped into a real sshd, several runbooks in one connection,
and the input checks that catch mistakes before any host is touched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fleet.script import split
from tests.conftest import needs_root
from tests.test_cli import fleet

ROOT = Path(__file__).resolve().parent.parent

# Every probe prints the PID of the outermost `sh -s` above it (the one the session started; the
# script's subshells are forks with the same command line): the same PID from two runbooks'
# probes means one script over one session.
SCRIPT_SHELL = ("p=$$; while [ \"$p\" -gt 1 ]; do case \"$(tr '\\0' ' ' </proc/$p/cmdline)\" in "
                "'sh -s '*) top=$p;; esac; p=$(cut -d' ' -f4 /proc/$p/stat); done; echo \"sh-s:$top\"")


def write_runbook(path: Path, name: str, probe: str, command: str, params: dict | None = None,
                  bad_when: str = "") -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "description": f"the {name} test runbook",
        "parameters": params or {},
        "probes": [{"name": probe, "parser": "text", "command": command}],
        "rules": [{"verdict": f"{name}_ok", "severity": "ok", "when": bad_when or f"{probe}.ok",
                   "summary": f"{name} fine"},
                  {"verdict": f"{name}_broken", "severity": "critical", "when": f"not {probe}.ok",
                   "summary": f"{name} broken", "fix": [f"repair {name}"]}]}))
    return path


def ssh_inventory(path: Path, sshd, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": {
        name: {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
               "ansible_ssh_private_key_file": str(sshd.user_key), **extra} for name, extra in hosts.items()}}}))
    return path


def known_hosts(tmp_path: Path, sshd) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n")
    return known


@needs_root
def test_dry_run_piped_to_ssh_does_what_fleet_does(sshd, tmp_path):
    runbook = write_runbook(tmp_path / "args.yml", "args", "show",
                            "printf '%s|%s|%s\\n' {{ a }} {{ b }} {{ c }}; id -u",
                            params={"a": {"default": "from-default"}, "b": {"default": "x"}, "c": {"default": 1}})
    hostile = "b-value\n# not a comment; touch " + str(tmp_path / "pwned")
    inventory = ssh_inventory(tmp_path / "inv.yml", sshd, {"web01": {"b": hostile}, "web02": {"b": "other"}})
    known = known_hosts(tmp_path, sshd)
    dry = fleet("diagnose", "-i", str(inventory), "--runbook", str(runbook), "--limit", "web01", "--var", "c=7",
                "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and dry.stderr == ""
    assert not (tmp_path / "reports").exists()  # nothing run, nothing written
    head = [line for line in dry.stdout.splitlines() if line.startswith("#")][:8]
    assert head[0].startswith("# fleet diagnose --dry-run: the script fleet sends to web01 (root@127.0.0.1:")
    assert "# runbook args; fleet runs it as: sh -s, script on stdin" in head
    assert "#   a='from-default': runbook default" in head
    assert "#   c=7: --var" in head
    [b_line] = [line for line in head if line.startswith("#   b=")]
    assert b_line.endswith(": inventory") and "\\n" in b_line  # the newline shown escaped, on the one line
    # The same script through OpenSSH, as `... --dry-run | ssh web01 sh -s`.
    piped = subprocess.run(["ssh", "-p", str(sshd.port), "-i", str(sshd.user_key), "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                            "-F", "/dev/null", "root@127.0.0.1", "sh", "-s"],
                           input=dry.stdout, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    marker = next(line.split("=", 1)[1] for line in dry.stdout.splitlines() if line.startswith("fleet_m="))
    by_hand = split(piped.stdout, piped.stderr, marker, ["show"]).probes["show"]
    assert not (tmp_path / "pwned").exists()  # the hostile value stayed a quoted argument
    # fleet itself, on the same host.
    run = fleet("diagnose", "-i", str(inventory), "--runbook", str(runbook), "--limit", "web01", "--var", "c=7",
                "--known-hosts", str(known), "--ssh-config", "/dev/null", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    [report] = (tmp_path / "r").glob("*.json")
    by_fleet = json.loads(report.read_text())["hosts"][0]["probes"]["show"]
    assert (by_hand.stdout, by_hand.exit_code) == (by_fleet["stdout"], by_fleet["exit_code"])
    assert by_hand.stdout == f"from-default|{hostile}|7\n0\n"


def test_dry_run_without_limit_shows_each_distinct_script_and_connects_to_nothing(tmp_path):
    runbook = write_runbook(tmp_path / "p.yml", "p", "show", "echo {{ port }}", params={"port": {"default": 80}})
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        # Names that do not resolve and an address nothing routes to: a dry run never looks.
        "a.invalid": {}, "b.invalid": {}, "c": {"ansible_host": "198.18.199.250", "port": 8080,
                                                "ansible_become": True}}}}))
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", str(runbook), "--dry-run", "--connect-timeout", "30",
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    heads = [line for line in proc.stdout.splitlines() if line.startswith("# fleet diagnose --dry-run")]
    assert [h.split(" sends to ")[1].split(" ")[0] for h in heads] == ["a.invalid", "c"]
    assert "# the same script goes to 1 more host(s): b.invalid" in proc.stdout
    assert "#   port=8080: inventory" in proc.stdout and "#   port=80: runbook default" in proc.stdout
    assert "fleet runs it as: sudo -n -- sh -s (become)" in proc.stdout
    assert proc.stdout.count("fleet_m=") == 2


@needs_root
def test_several_runbooks_one_connection_a_verdict_each(sshd, tmp_path):
    first = write_runbook(tmp_path / "first.yml", "first", "one", SCRIPT_SHELL)
    second = write_runbook(tmp_path / "second.yml", "second", "two", SCRIPT_SHELL + "; test -z {{ fail }}",
                           params={"fail": {"default": ""}})
    inventory = ssh_inventory(tmp_path / "inv.yml", sshd, {"good": {}, "sick": {"fail": "yes"}})
    proc = fleet("diagnose", "-i", str(inventory), "--runbook", f"{first},{second}", "--known-hosts",
                 str(known_hosts(tmp_path, sshd)), "--ssh-config", "/dev/null", "--out", str(tmp_path / "r"),
                 cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [report] = (tmp_path / "r").glob("*.json")
    doc = json.loads(report.read_text())
    assert doc["runbook"] == "first+second"
    hosts = {h["name"]: h for h in doc["hosts"]}
    for host in hosts.values():
        one, two = host["probes"]["one"]["stdout"].split()[0], host["probes"]["two"]["stdout"].split()[0]
        assert one == two and one.startswith("sh-s:")  # both runbooks' probes ran in one `sh -s`: one session
    assert [(r["runbook"], r["verdict"]) for r in hosts["good"]["runbooks"]] == [("first", "first_ok"),
                                                                                 ("second", "second_ok")]
    assert [(r["runbook"], r["verdict"]) for r in hosts["sick"]["runbooks"]] == [("first", "first_ok"),
                                                                                 ("second", "second_broken")]
    assert hosts["sick"]["verdict"] == "second_broken" and hosts["sick"]["fix"] == ["# [second]", "# repair second"]
    assert "   sick: first first_ok, second second_broken" in proc.stdout
    assert "| sick | 127.0.0.1 | second_broken | first: first_ok, second: second_broken |" in \
        next((tmp_path / "r").glob("*.md")).read_text()
    html = next((tmp_path / "r").glob("*.html")).read_text()
    assert '<span class="v sev-critical" title="second broken">second: second_broken</span>' in html


def test_the_built_in_runbooks_combine(tmp_path):
    proc = fleet("diagnose", "-i", str(ROOT / "inventories/local.yml"), "--runbook", "502,host", "--dry-run",
                 cwd=tmp_path)
    assert proc.returncode == 0
    for probe in ("process", "nginx", "disk", "kernel", "memory"):
        assert f"fleet_probe {probe} " in proc.stdout
    assert "#   port=8000: discovered on the host" in proc.stdout and "#   disk_threshold_pct=95: runbook default" in proc.stdout


@pytest.mark.parametrize("var, message", [
    ("prot=8001", "runbook '502' has no parameter 'prot'; did you mean 'port'?"),
    ("port=70000", "--var port=70000: a port must be a whole number from 1 to 65535"),
    ("port=0", "a port must be a whole number from 1 to 65535"),
    ("http_timeout=0", "--var http_timeout=0: a timeout must be a positive number of seconds"),
    ("http_timeout=soon", "--var http_timeout=soon: must be a whole number"),
    ("process_pattern=", "--var process_pattern=: must not be empty"),
    ("health_path= ", "must not be empty"),
])
def test_var_names_and_values_are_checked(tmp_path, var, message):
    proc = fleet("diagnose", "-i", str(ROOT / "inventories/local.yml"), "--var", var, "--out", str(tmp_path / "r"),
                 cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()  # refused before any host was touched


def test_good_vars_pass_and_reach_the_script(tmp_path):
    proc = fleet("diagnose", "-i", str(ROOT / "inventories/local.yml"), "--var", "port=8001", "--var",
                 "http_timeout=2", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0 and "#   port=8001: --var" in proc.stdout


def test_a_rule_naming_a_missing_fact_attribute_fails_at_load(tmp_path):
    source = (ROOT / "fleet/runbooks/502.yml").read_text()
    broken = tmp_path / "typo.yml"
    broken.write_text(source.replace("when: http.healthy", "when: http.healthy and nginx.runing"))
    for args in (("runbook", "show", str(broken)),
                 ("diagnose", "-i", str(ROOT / "inventories/local.yml"), "--runbook", str(broken))):
        proc = fleet(*args, cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"fleet: error: {broken}:")
        assert "when uses nginx.runing: NginxFacts has no 'runing' (did you mean nginx.running?)" in proc.stderr
    nested = tmp_path / "nested.yml"
    nested.write_text(source.replace("nginx.login_location.path", "nginx.login_location.pth", 1))
    proc = fleet("runbook", "show", str(nested), cwd=tmp_path)
    assert proc.returncode == 2 and "Location has no 'pth' (did you mean nginx.login_location.path?)" in proc.stderr


def test_runbook_test_on_a_directory_without_cases_is_an_error(tmp_path):
    (tmp_path / "not-a-case").mkdir()
    (tmp_path / "not-a-case" / "notes.txt").write_text("hello\n")
    for source in (tmp_path, ROOT / "tests/fixtures/parsers"):
        proc = fleet("runbook", "test", "502", str(source), cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout
        assert "no cases found" in proc.stderr and "passed" not in proc.stdout


def test_hosts_limit_matching_nothing_exits_2(tmp_path):
    proc = fleet("hosts", "-i", str(ROOT / "inventories/local.yml"), "--limit", "nothing-like-this", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no host matches 'nothing-like-this'" in proc.stderr and proc.stdout == ""
