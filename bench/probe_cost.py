#!/usr/bin/env python3
"""Host CPU and processes forked by each probe of fleet's composed script, on one test host.

    python -m testfleet up --dir /tmp/pc --scenarios healthy --prefix fltpc --subnet 198.18.241.0/24 --detach
    python bench/probe_cost.py --dir /tmp/pc                 # the tree this file is in
    python bench/probe_cost.py --dir /tmp/pc --tree OTHER    # another checkout (before/after)

The script is `fleet diagnose --dry-run`'s for the host, sent over SSH like the bench's `host`
suite. It runs `--repeat` times by one shell; then, with a line added before the shared step,
each probe and the end (`fleet_meas`: the CPU of the script's shell and its children from
`times`, and `/proc/sys/kernel/ns_last_pid`, the host's PID namespace's last PID), again
`--repeat` times: a probe's CPU and forks are the differences between its line and the next,
averaged (`times` counts 10 ms ticks: one run is too coarse). Each mark forks one `cat` (dash's
`read` gets one byte of that file), taken off. Nothing is left on the host but its /tmp files.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

MEAS = ('fleet_meas() { fleet_p=$(cat /proc/sys/kernel/ns_last_pid); '
        '{ echo "M $1 $fleet_p"; times; } >>/tmp/fleet-meas; }')


def instrument(script: str) -> str:
    """The script with a `fleet_meas LABEL` line before the shared step, each probe and the end."""
    out = [MEAS, "fleet_meas start"]
    for line in script.split("\n"):
        probe = re.search(r"fleet_probe (\w+) \d+ ", line)
        if line.startswith("fleet_s_"):
            out.append("fleet_meas shared")
        elif probe and not line.startswith((" ", "fleet_probe()")):
            out.append(f"fleet_meas {probe.group(1)}")
        elif line == "exit 0":
            out.append("fleet_meas end")
        out.append(line)
    return "\n".join(out)


def clock(text: str) -> float:
    """A `times` figure (`0m0.120000s`) in seconds."""
    minutes, seconds = text.rstrip("s").split("m")
    return 60 * float(minutes) + float(seconds)


def per_probe(text: str, repeat: int) -> dict[str, tuple[float, float]]:
    """{segment: (CPU ms, forks)} per run from the marks' lines."""
    lines, marks, i = text.split("\n"), [], 0
    while i + 2 < len(lines):
        if lines[i].startswith("M "):
            _, label, pid = lines[i].split()
            cpu = sum(clock(t) for t in lines[i + 1].split() + lines[i + 2].split())
            marks.append((label, int(pid), cpu))
            i += 3
        else:
            i += 1
    totals: dict[str, list[float]] = {}
    for (label, pid, cpu), (nxt, pid2, cpu2) in zip(marks, marks[1:]):
        if nxt == "start":
            continue
        cost = totals.setdefault(label, [0.0, 0.0])
        cost[0] += cpu2 - cpu
        cost[1] += pid2 - pid - 1  # the mark's own `cat`
    return {k: (1000 * c / repeat, f / repeat) for k, (c, f) in totals.items() if k != "start"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, required=True, help="a testfleet directory (python -m testfleet up)")
    ap.add_argument("--host", default="healthy")
    ap.add_argument("--tree", type=Path, default=HERE.parent, help="the fleet checkout whose script is measured")
    ap.add_argument("--runbook", default="502")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    import yaml
    hosts = yaml.safe_load((args.dir / "inventory.yml").read_text())["all"]["hosts"]
    host = hosts[args.host]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as inv:
        yaml.safe_dump({"all": {"hosts": {args.host: host}}}, inv)
        inv.flush()
        script = subprocess.run(
            [sys.executable, "-m", "fleet", "diagnose", "-i", inv.name, "--known-hosts", str(args.dir / "known_hosts"),
             "--runbook", args.runbook, "--ssh-config", "/dev/null", "--dry-run"],
            env={**os.environ, "PYTHONPATH": str(args.tree)}, cwd=str(args.tree),  # -m puts the cwd first
            capture_output=True, text=True, check=True).stdout
    ssh = ["ssh", "-i", str(args.dir / "id_ed25519"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
           "-o", f"UserKnownHostsFile={args.dir / 'known_hosts'}", "-o", "GlobalKnownHostsFile=/dev/null",
           "-F", "/dev/null", f"{host['ansible_user']}@{host['ansible_host']}"]
    n = args.repeat
    whole = ('t=$(mktemp); cat >"$t"; a=$(cat /proc/sys/kernel/ns_last_pid); sh "$t" >/tmp/fleet-o 2>/tmp/fleet-e; '
             'b=$(cat /proc/sys/kernel/ns_last_pid); i=1; while [ $i -lt %d ]; do sh "$t" >/dev/null 2>&1 </dev/null; '
             'i=$((i+1)); done; echo "$((b-a-2)) $(cat /tmp/fleet-o /tmp/fleet-e | wc -c)"; rm -f "$t" /tmp/fleet-o '
             '/tmp/fleet-e; times') % n
    out = subprocess.run(ssh + [whole], input=script.encode(), capture_output=True, check=True).stdout.decode()
    summary, _, children = out.strip().split("\n")[-3:]
    forks, size = summary.split()
    cpu = 1000 * sum(clock(t) for t in children.split()) / n
    print(f"{args.tree} on {args.host}: script {len(script.encode())} bytes, host CPU {cpu:.0f} ms per run "
          f"(mean of {n}), {forks} processes forked, {size} bytes back")
    marked = ('rm -f /tmp/fleet-meas; t=$(mktemp); cat >"$t"; i=0; while [ $i -lt %d ]; do sh "$t" >/dev/null 2>&1 '
              '</dev/null; i=$((i+1)); done; cat /tmp/fleet-meas; rm -f "$t" /tmp/fleet-meas') % n
    out = subprocess.run(ssh + [marked], input=instrument(script).encode(), capture_output=True, check=True).stdout
    print(f"{'probe':12} {'CPU ms':>7} {'forks':>6}")
    for label, (ms, forks_) in per_probe(out.decode(), n).items():
        print(f"{label:12} {ms:7.0f} {forks_:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
