"""Zero configuration on real test hosts: apps that fit none of the 502 runbook's defaults
(another interpreter, script, directory, port and log file), diagnosed over SSH with no --var,
must get the verdicts a tuned run gets; and nginx's own logs on a host whose 502s are over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

testfleet = pytest.importorskip("testfleet")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root and Linux namespaces")
PREFIX = os.environ.get("FLEET_DISCOVERY_E2E_PREFIX", "fltz")
SUBNET = os.environ.get("FLEET_DISCOVERY_E2E_SUBNET", "198.18.212.0/24")
SCENARIOS = ["healthy", "zc_healthy", "zc_not_running", "zc_not_listening", "zc_app_error", "zc_refusing",
             "zc_upstream_mismatch", "intermittent_502"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("discovery")
    try:
        with testfleet.TestFleet(workdir / "tf", scenarios=SCENARIOS, prefix=PREFIX, subnet=SUBNET, log=None) as tf:
            yield tf
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))


def diagnose(fleet, inventory: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict, Path]:
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--known-hosts", str(fleet.known_hosts_path),
         "--ssh-config", "/dev/null", "--out", str(out), "--timeout", "30", "--format", "json,md"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    return proc, {h["name"]: h for h in json.loads(report.read_text())["hosts"]}, out


@pytest.fixture(scope="module")
def untuned(fleet, tmp_path_factory):
    return diagnose(fleet, fleet.inventory_path, tmp_path_factory.mktemp("untuned"))


@pytest.fixture(scope="module")
def tuned(fleet, tmp_path_factory):
    """The same fleet with each app's values given in the inventory, as an SRE who knows it would."""
    inventory = yaml.safe_load(fleet.inventory_path.read_text())
    for name, host in inventory["all"]["hosts"].items():
        host.update(dict(fleet.hosts[name].scenario.tuned))
    path = tmp_path_factory.mktemp("tuned") / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return diagnose(fleet, path, path.parent)


def test_no_var_gets_every_verdict(fleet, untuned):
    proc, hosts, _ = untuned
    assert proc.returncode == 1, proc.stderr
    assert {name: h["verdict"] for name, h in hosts.items()} == fleet.expected


def test_tuned_and_untuned_runs_agree(untuned, tuned):
    assert {n: h["verdict"] for n, h in tuned[1].items()} == {n: h["verdict"] for n, h in untuned[1].items()}
    given = tuned[1]["zc_not_listening"]["parameter_sources"]
    assert (given["port"], given["process_pattern"], given["app_log"]) == ("inventory",) * 3


def test_the_report_says_what_was_discovered_and_why(untuned):
    host = untuned[1]["zc_not_listening"]
    values, sources = host["parameters"], host["parameter_sources"]
    assert (values["port"], sources["port"]) == (9100, "discovered")
    assert values["process_pattern"].startswith("/usr/bin/python3 -u -S server.py --port 9100")
    assert (values["app_log"], sources["app_log"]) == ("/var/log/shop/server.log", "discovered")
    assert (sources["login_path"], sources["health_path"]) == ("default", "default")
    found = {f["name"]: f["why"] for f in host["facts"]["discover"]["found"]}
    assert "names port 9100" in found["process_pattern"]
    assert "nginx sends /api/v1/demo-login to port 9100" in found["port"]
    [markdown] = untuned[2].glob("*.md")
    assert "port=9100 (discovered)" in markdown.read_text()


def test_discovered_values_reach_evidence_and_fixes(untuned):
    hosts = untuned[1]
    assert "waiting for database" in "\n".join(hosts["zc_not_listening"]["evidence"])
    # the restart is the process's own argv and directory, read from /proc (fleet.fixes renders it)
    assert any("cd -- /srv/shop && " in f and "nohup /usr/bin/python3 -u -S server.py" in f
               for f in hosts["zc_not_listening"]["fix"])
    assert "psycopg2.OperationalError" in "\n".join(hosts["zc_app_error"]["evidence"])
    assert "127.0.0.1:9101" in hosts["zc_upstream_mismatch"]["summary"]
    assert "127.0.0.1:9100" in hosts["zc_upstream_mismatch"]["summary"]
    # nginx's error log, with the time of each line, backs the verdicts the other probes reach.
    assert "connect() failed (111: Connection refused) while connecting to upstream" in \
        "\n".join(hosts["zc_not_running"]["evidence"])


def test_intermittent_502_quotes_nginx_logs(untuned):
    host = untuned[1]["intermittent_502"]
    assert host["severity"] == "warning"
    logs = host["facts"]["nginx_logs"]
    assert [e["kind"] for e in logs["errors"]] == ["refused"] * 3 and logs["access_502"] == 3
    evidence = "\n".join(host["evidence"])
    assert f"{logs['errors'][-1]['time']} [error]" in evidence
    assert "access log: 3 responses with status 502" in evidence
    assert untuned[1]["healthy"]["facts"]["nginx_logs"]["errors"] == []


def test_platform_is_a_fact(untuned):
    platform = untuned[1]["zc_healthy"]["facts"]["discover"]["platform"]
    assert platform["kernel"] == "Linux" and platform["family"] in ("debian", "linux")
