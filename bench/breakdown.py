#!/usr/bin/env python3
"""What fleet's controller CPU per host is made of, phase by phase, measured in-process.

    python bench/breakdown.py --hosts 150 --runbook 502       # full test hosts
    python bench/breakdown.py --hosts 150 --runbook trivial   # light test hosts
    python bench/breakdown.py ... --cprofile                  # + cProfile of every thread (transport phase)

Runs the same steps as `fleet diagnose`, each timed with time.process_time() (CPU of the whole
process, every thread): interpreter start-up and imports (a subprocess), prepare (inventory,
runbook, scripts, keys), the SSH phase (the worker pool running every host's transport), the
interpretation (split, redact, parse, rules: fleet.interpret, the path `fleet diagnose` takes,
which times its own stages) and the report (document, JSON, Markdown, HTML).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def cpu() -> float:
    return time.process_time()


def startup_cpu() -> float:
    """CPU of `python -c 'import fleet.cli'` (what every fleet command pays before work)."""
    samples = []
    for _ in range(3):
        m = bench.measure([sys.executable, "-c", "import fleet.cli"], env=bench.base_env(),
                          log_path=bench.WORK / "startup.log")
        samples.append(m["cpu_s"])
    return min(samples)


def phases(inv: Path, known_hosts: Path, runbook_name: str, forks: int, profile: bool) -> dict:
    from fleet.transport import SSHOptions
    from fleet.diagnose import RunOptions, host_result, prepare
    from fleet.executor import run_pool
    from fleet.interpret import STAGES, ScriptOutput, interpret
    from fleet.inventory import load_inventory
    from fleet.models import Execution, TransportStatus
    from fleet.patterns import select
    from fleet.report import document
    from fleet.report.render import RENDERERS
    from fleet.runbook import load_runbook

    out = {}
    t = cpu()
    runbook = load_runbook(runbook_name)
    hosts = select(load_inventory(inv), None)
    options = RunOptions(forks=forks, ssh=SSHOptions(known_hosts=(str(known_hosts),), ssh_config="/dev/null"))
    prepared = prepare(hosts, runbook, options)
    out["prepare"] = cpu() - t

    profiles: list[cProfile.Profile] = []

    def start_profile(*_):
        prof = cProfile.Profile(time.thread_time)  # CPU time of each thread, not wall
        profiles.append(prof)
        prof.enable()

    ssh = prepared.transports[hosts[0].connection]
    t, w = cpu(), time.monotonic()
    if profile:
        threading.setprofile(start_profile)
    executions = dict(run_pool(prepared.hosts, lambda h, d: ssh.execute(h, prepared.scripts[h.name], d),
                               forks=prepared.forks, deadline_s=options.timeout_s,
                               on_overrun=lambda h, d: Execution(TransportStatus.TIMEOUT, "overrun"),
                               on_error=lambda h, e: Execution(TransportStatus.UNREACHABLE, repr(e))))
    threading.setprofile(None)
    out["ssh"] = cpu() - t
    out["ssh_wall"] = time.monotonic() - w
    time.sleep(0.3)  # let paramiko's transport threads finish closing
    out["ssh_ok"] = sum(1 for e in executions.values() if e.status is TransportStatus.OK)
    out["bytes_per_host"] = sum(len(e.stdout) + len(e.stderr) for e in executions.values()) / len(hosts)

    # interpretation, and its parts: the CPU of each stage as fleet.interpret measures it
    t = cpu()
    results = [host_result(h, executions[h], runbook, prepared.params[h.name], prepared.marker, prepared.redactor)
               for h in prepared.hosts]
    out["interpret"] = cpu() - t
    parts = dict.fromkeys(STAGES, 0.0)
    for h in prepared.hosts:
        e = executions[h]
        staged = interpret(runbook, h, ScriptOutput(e.stdout, e.stderr, prepared.marker), prepared.params[h.name],
                           prepared.redactor)
        for stage, seconds in staged.cpu_s.items():
            parts[stage] += seconds
    out["interpret_parts"] = parts

    t = cpu()
    doc = document.build([document.host_entry(r) for r in results], runbook=runbook, params={}, inventory=str(inv), limit=None, options={},
                         started_at="x", duration_s=1.0)
    out["report_build"] = cpu() - t
    for fmt in ("json", "md", "html"):
        t = cpu()
        RENDERERS[fmt](doc)
        out[f"render_{fmt}"] = cpu() - t
    t = cpu()
    for r in results:
        json.dumps(document.host_entry(r), ensure_ascii=False)
    out["journal"] = cpu() - t
    if profile and profiles:
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats("tottime").print_stats(30)
        out["cprofile_ssh_tottime"] = buf.getvalue()
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats("cumtime").print_stats(40)
        out["cprofile_ssh_cumtime"] = buf.getvalue()
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=150)
    p.add_argument("--runbook", default="502")
    p.add_argument("--forks", type=int, default=50)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--cprofile", action="store_true")
    a = p.parse_args()
    bench.WORK.mkdir(parents=True, exist_ok=True)
    light = a.runbook != "502"
    runbook = "502" if not light else str(bench.RUNBOOKS / "trivial.yml")
    prefix, subnet = (bench.LIGHT_PREFIX, bench.LIGHT_SUBNET) if light else (bench.FULL_PREFIX, bench.FULL_SUBNET)
    startup = startup_cpu()
    with bench.Fleet("light" if light else "full", a.hosts, light, prefix, subnet) as fl:
        inv = fl.inventory(bench.WORK / "breakdown-inv.yml", fl.healthy[: a.hosts])
        runs = [phases(inv, fl.tf.known_hosts_path, runbook, a.forks, a.cprofile and i == a.runs - 1)
                for i in range(a.runs)]
    best = min(runs[:-1] if a.cprofile and a.runs > 1 else runs, key=lambda r: r["ssh"])
    n = a.hosts
    rows = [("interpreter start-up + imports (fixed)", startup), ("prepare (inventory, runbook, scripts, keys)", best["prepare"]),
            ("SSH: connect, kex, auth, exec, read (all threads)", best["ssh"]),
            ("interpret: decode + split + line caps", best["interpret_parts"]["split"]),
            ("interpret: redact", best["interpret_parts"]["redact"]),
            ("interpret: parsers", best["interpret_parts"]["parse"]),
            ("interpret: rules (Jinja2)", best["interpret_parts"]["rules"]),
            ("report: document", best["report_build"]), ("report: JSON", best["render_json"]),
            ("report: Markdown", best["render_md"]), ("report: HTML", best["render_html"]),
            ("journal (JSONL per host)", best["journal"])]
    total = sum(v for _, v in rows)
    print(f"\n{n} hosts, runbook {a.runbook}, forks {a.forks}: SSH phase wall {best['ssh_wall']:.2f}s, "
          f"{best['ssh_ok']} ok, {best['bytes_per_host'] / 1024:.1f} KiB output/host\n")
    print("| phase | CPU s | ms/host | share |\n|---|---:|---:|---:|")
    for name, v in rows:
        print(f"| {name} | {v:.3f} | {1000 * v / n:.2f} | {100 * v / total:.0f}% |")
    print(f"| **total** | {total:.3f} | {1000 * total / n:.2f} | 100% |")
    res = {"hosts": n, "runbook": a.runbook, "startup_cpu_s": startup, "runs": runs}
    (bench.WORK / f"breakdown-{a.runbook}-{n}.json").write_text(json.dumps(res, indent=1, default=str))
    if a.cprofile:
        print(runs[-1].get("cprofile_ssh_tottime", "")[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
