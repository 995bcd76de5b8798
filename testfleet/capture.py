"""Recapture the parser fixtures that come from the real test host (realhost.py).

    python -m testfleet realhost capture --dir /tmp/rh --fixtures tests/fixtures/parsers

brings the real host up, runs `fleet diagnose` on it over SSH, and writes for each case below
the probe's stdout (`.txt`), its parameters (`.params.json`), the probe and the sha256 of its
shell (`.probe.json`, checked by tests/test_parsers.py) and the facts the parser makes of it now (`.json`): check those by hand
(`git diff`) before committing, as tests/fixtures/parsers/README.md asks.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

from .realhost import SERVICES, RealHost

# service -> {parser: fixture case}
CASES: dict[str, dict[str, str]] = {
    "systemd_healthy": {"service_state": "systemd_unit_active"},
    "systemd_failed": {"service_state": "systemd_unit_failed_start_limit", "log_signatures": "journal_crash_loop"},
    "systemd_not_listening": {"service_state": "systemd_unit_active_not_listening"},
    "docker_running": {"service_state": "docker_running_other_pidns"},
    "docker_exited": {"service_state": "docker_exited_with_neighbours", "log_signatures": "docker_logs_crash"},
    "docker_restarting": {"service_state": "docker_restarting"},
    "docker_oom": {"service_state": "docker_oom_killed"},
    "compose_exited": {"service_state": "docker_compose_labels_no_cli"},
}


def capture(fixtures: Path, host: RealHost, log: Callable[[str], None] = lambda m: None) -> None:
    """Diagnose the (running) real host and write the fixtures of CASES under `fixtures`."""
    # the project's own modules: imported here, so `python -m testfleet` works without them
    from fleet.models import ProbeOutput
    from fleet.parsers import PARSERS
    from fleet.probes.catalog import BUILTIN
    from fleet.runbook import host_params, load_runbook

    runbook = load_runbook("502")
    probe_of = {probe.parser: probe for probe in runbook.probes}
    out = host.workdir / "capture-reports"
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(host.inventory_path), "--known-hosts",
         str(host.known_hosts_path), "--ssh-config", "/dev/null", "--out", str(out), "--format", "json"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    reports = sorted(out.glob("*.json"))
    if not reports:
        raise RuntimeError(f"fleet diagnose wrote no report: {proc.stderr.strip()[-500:]}")
    hosts = {entry["name"]: entry for entry in json.loads(reports[-1].read_text())["hosts"]}
    for service in SERVICES:
        for parser, case in CASES.get(service.name, {}).items():
            if service.name not in hosts:
                log(f"{case}: {service.name} was not diagnosed (docker unavailable?)")
                continue
            probe = probe_of[parser]
            given = {"service": service.unit, "port": service.port}
            params = host_params(runbook, given, {})
            raw = hosts[service.name]["probes"][probe.name]
            base = fixtures / parser / case
            base.with_suffix(".txt").write_text(raw["stdout"])
            for suffix, value in ((".stderr", raw["stderr"]), (".exit", f"{raw['exit_code']}\n" if raw["exit_code"] else "")):
                if value:
                    base.with_suffix(suffix).write_text(value)
                else:
                    base.with_suffix(suffix).unlink(missing_ok=True)
            base.with_suffix(".params.json").write_text(json.dumps(given, indent=1) + "\n")
            record = {"probe": probe.name, "sh_sha256": BUILTIN[probe.name].digest}
            base.with_suffix(".probe.json").write_text(json.dumps(record, indent=1) + "\n")
            facts = PARSERS[parser](ProbeOutput(case, raw["exit_code"], raw["stdout"], raw["stderr"], None), params)
            base.with_suffix(".json").write_text(json.dumps(dataclasses.asdict(facts), indent=2) + "\n")
            log(f"wrote {base}.*")
