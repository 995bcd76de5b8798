#!/usr/bin/env python3
"""Where fleet's controller CPU goes: py-spy (from bench/.venv) on a real run against test hosts.

    python bench/pyspy.py --hosts 150 --runbook 502          # full hosts
    python bench/pyspy.py --hosts 150 --runbook trivial      # light hosts, `true`
    python bench/pyspy.py --analyze bench/work/profile-502-150.txt

Samples the thread holding the GIL (py-spy --gil: Python's own CPU time; py-spy's idle
detection without it counts threads blocked in recv/Condition.wait as busy) at 250 Hz and sums the
samples into the categories of `CATEGORIES` (first match from the innermost frame outwards),
then prints them as shares of the CPU time and ms per host, plus the top functions by self time.
Caveat: py-spy seems to charge GIL samples to the last holder, which over-weights the main
thread (interpret); bench/breakdown.py measures the phases directly and is the better guide.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

# (category, regex on "function (file:line)" frames); checked innermost frame first.
CATEGORIES = [
    ("start-up: imports", r"_find_and_load|_call_with_frames_removed|exec_module|<module>"),
    ("report rendering (json/md/html)", r"fleet/report/|render_|write_reports|json/encoder"),
    ("terminal (rich)", r"rich/|fleet/terminal"),
    ("parse + verdict (split, parsers, rules)", r"fleet/script\.py|fleet/parsers/|fleet/probes/|fleet/runbook\.py|fleet/rules\.py|fleet/memo\.py|interpret|redact|parse_facts|jinja2/"),
    ("key exchange (curve25519/dh, host key sig)", r"kex_|_parse_kexdh|_compute_key|_activate_outbound|_activate_inbound|_send_kex_init|_parse_kex_init|_negotiate_keys|\(.*kex.*\.py"),
    ("auth (publickey sign)", r"auth_handler|auth_publickey|_parse_service_accept|sign_ssh_data|ed25519key"),
    ("host key check", r"hostkeys|known_hosts|KnownHosts"),
    ("packets: cipher/mac/read/write", r"paramiko/packet\.py|paramiko/message\.py|cipher|_build_packet|compute_hmac|read_message|send_message|read_all"),
    ("channel + exec + read loop", r"paramiko/channel\.py|paramiko/buffered_pipe|_run \(fleet|open_session|exec_command"),
    ("transport threads (other)", r"paramiko/transport\.py"),
    ("socket connect", r"create_connection|_socket \(fleet"),
    ("executor (pool, queue, threads)", r"fleet/executor|threading\.py|queue\.py"),
    ("inventory + prepare", r"fleet/inventory|fleet/patterns|fleet/yamlfile|prepare|yaml/"),
    ("cli", r"fleet/cli|typer|click"),
]


def analyze(path: Path, hosts: int, cpu_s: float | None = None) -> dict:
    """Categorise py-spy raw (collapsed) stacks."""
    cats: collections.Counter = collections.Counter()
    selfs: collections.Counter = collections.Counter()
    total = 0
    compiled = [(name, re.compile(rx)) for name, rx in CATEGORIES]
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        selfs[frames[-1]] += n
        for frame in reversed(frames):
            hit = next((name for name, rx in compiled if rx.search(frame)), None)
            if hit:
                cats[hit] += n
                break
        else:
            cats["other"] += n
    out = {"samples": total, "hosts": hosts, "cpu_s": cpu_s, "categories": {}, "top_self": []}
    for name, n in cats.most_common():
        share = n / total if total else 0
        out["categories"][name] = {"share": round(share, 4),
                                   "ms_per_host": round(1000 * share * cpu_s / hosts, 2) if cpu_s else None}
    out["top_self"] = [(f, round(n / total, 4)) for f, n in selfs.most_common(25)]
    return out


def print_analysis(res: dict) -> None:
    print(f"\n{res['samples']} samples, {res['hosts']} hosts, CPU {res['cpu_s']} s")
    print("| where | share of CPU | ms/host |\n|---|---:|---:|")
    for name, v in res["categories"].items():
        print(f"| {name} | {100 * v['share']:.1f}% | {v['ms_per_host'] if v['ms_per_host'] is not None else '-'} |")
    print("\ntop self time:")
    for f, share in res["top_self"][:20]:
        print(f"  {100 * share:5.1f}%  {f}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=150)
    p.add_argument("--runbook", default="502", help="502 (full hosts) or trivial (light hosts)")
    p.add_argument("--forks", type=int, default=50)
    p.add_argument("--rate", type=int, default=250)
    p.add_argument("--all-threads", action="store_true",
                   help="sample every non-idle thread, not only the one holding the GIL")
    p.add_argument("--analyze", type=Path, help="only analyse an existing py-spy raw file")
    p.add_argument("--cpu", type=float, help="with --analyze: the run's CPU seconds")
    a = p.parse_args()
    if a.analyze:
        print_analysis(analyze(a.analyze, a.hosts, a.cpu))
        return 0
    bench.WORK.mkdir(parents=True, exist_ok=True)
    bench.ensure_venv(["pssh"], True)
    light = a.runbook != "502"
    runbook = "502" if not light else str(bench.RUNBOOKS / "trivial.yml")
    prefix, subnet = (bench.LIGHT_PREFIX, bench.LIGHT_SUBNET) if light else (bench.FULL_PREFIX, bench.FULL_SUBNET)
    with bench.Fleet("light" if light else "full", a.hosts, light, prefix, subnet) as fl:
        tmp = bench.WORK / "runs" / "profile"
        tmp.mkdir(parents=True, exist_ok=True)
        inv = fl.inventory(tmp / "inventory.yml", fl.healthy[: a.hosts])
        raw = bench.WORK / f"profile-{a.runbook}-{a.hosts}.txt"
        argv = bench.fleet_argv(inv, fl.tf.known_hosts_path, runbook, a.forks, tmp / "reports")
        # one plain run first (warm caches), then the profiled one, then one more plain for CPU
        plain = [bench.measure(argv, env=bench.base_env(), log_path=tmp / "plain.log") for _ in range(2)]
        spy = [str(bench.VENV / "bin" / "py-spy"), "record", "--format", "raw", "-r", str(a.rate), "-o", str(raw),
               *(["--gil"] if not a.all_threads else []), "--", *argv]
        t = time.monotonic()
        bench.measure(spy, env=bench.base_env(), log_path=tmp / "spy.log")
        print(f"profiled run: {time.monotonic() - t:.1f}s wall; plain runs CPU {[round(x['cpu_s'], 2) for x in plain]} s")
        cpu = min(x["cpu_s"] for x in plain)
    res = analyze(raw, a.hosts, cpu)
    res["plain_runs"] = plain
    (bench.WORK / f"profile-{a.runbook}-{a.hosts}.json").write_text(json.dumps(res, indent=1))
    print_analysis(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
