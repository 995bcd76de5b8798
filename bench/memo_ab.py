#!/usr/bin/env python3
"""The controller's memos (fleet/memo.py) on and off: CPU of parsing and rules per host.

    python3 bench/memo_ab.py [--hosts 150] [--rounds 3]

Interprets `--hosts` hosts' real 502 outputs (bench/fixtures/host_entries_502.json: 17 hosts of
a `--scenarios all` run, cycled) through `fleet.interpret.interpret`, the path a live run takes,
once with the memos emptied and disabled and once enabled, alternating, and prints the CPU of
the parse and rules stages per host (median of the rounds). Two fleets: `same config` (a host's
outputs are byte for byte those of the other hosts of its scenario) and `own processes` (each
host's process listing differs, as PIDs and start times do on real hosts). No host or root needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from fleet import memo  # noqa: E402
from fleet.interpret import interpret  # noqa: E402
from fleet.models import Host, ProbeOutput  # noqa: E402
from fleet.runbook import load_runbook  # noqa: E402


def fleet_of(entries: list[dict], n: int, own_processes: bool) -> list[tuple[Host, dict, dict]]:
    hosts = []
    for i in range(n):
        entry = entries[i % len(entries)]
        probes = {}
        for name, p in entry["probes"].items():
            stdout = p["stdout"]
            if own_processes and name == "process":
                stdout += f"\n# host {i}\n"
            probes[name] = ProbeOutput(name, p["exit_code"], stdout, p["stderr"], p["duration_s"], p["truncated"],
                                       p["error"])
        hosts.append((Host(name=f"h{i}", address=entry["address"]), probes, entry["parameters"]))
    return hosts


def run(runbook, hosts, enabled: bool) -> dict[str, float]:
    for m in (memo.PARSES.lru, memo.RULE_TEXTS.lru):
        m.max_entries = memo.MAX_ENTRIES if enabled else 0
        m.put("flush", None, 0)  # evicts everything past the (new) bound
    totals = {"parse": 0.0, "rules": 0.0}
    for host, probes, params in hosts:
        result = interpret(runbook, host, probes, {**runbook.defaults(), **params})
        for stage in totals:
            totals[stage] += result.cpu_s.get(stage, 0.0)
    return {stage: 1000 * value / len(hosts) for stage, value in totals.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=150)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    entries = json.loads((BENCH / "fixtures" / "host_entries_502.json").read_text())
    runbook = load_runbook("502")
    print("| fleet | memos | parse ms/host | rules ms/host |\n|---|---|---:|---:|")
    for label, own in (("same config", False), ("own processes", True)):
        hosts = fleet_of(entries, a.hosts, own)
        figures = {False: [], True: []}
        for _ in range(a.rounds):
            for enabled in (False, True):
                figures[enabled].append(run(runbook, hosts, enabled))
        for enabled in (False, True):
            parse = statistics.median(f["parse"] for f in figures[enabled])
            rules = statistics.median(f["rules"] for f in figures[enabled])
            print(f"| {label} | {'on' if enabled else 'off'} | {parse:.3f} | {rules:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
