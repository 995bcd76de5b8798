#!/usr/bin/env python3
"""fleet's own CPU, without the network's: `fleet diagnose` replayed on captured SSH results.

    python bench/replay.py capture --inventory INV --known-hosts KH --out ex.pickle
    python bench/replay.py run ex.pickle [--tree DIR ...] [--rounds 3] [--profile FILE]

`capture` runs the hosts once over SSH (fleet's transport, nothing else) and keeps each host's
raw result. `run` starts `python -m fleet diagnose` on the same inventory in a fresh process per
round, with the transport answering from the capture: start-up, imports, runbook, inventory,
interpretation, the journal and all three reports, everything fleet does but SSH. Each round
prints the process's CPU and the time the cyclic garbage collector took; several `--tree`s
(other checkouts of fleet) run alternately, for an A/B. Run as root only if the inventory needs it;
the capture holds host output: keep it private (written 0600).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What runs in the replayed process: the transport answers from the capture, the marker is the
# capture's (the hosts' output carries it), the collector's time is summed, then fleet's CLI.
_REPLAY = r"""
import atexit, gc, os, pickle, sys, time
cap = pickle.load(open(sys.argv[1], "rb"))
spent = [0.0, 0.0]
def _gc(phase, info):
    if phase == "start":
        spent[1] = time.thread_time()
    else:
        spent[0] += time.thread_time() - spent[1]
gc.callbacks.append(_gc)
import fleet.diagnose
from fleet.transport import ssh
fleet.diagnose.new_marker = lambda: cap["marker"]
ssh.SSHTransport.execute = lambda self, host, script, deadline: cap["executions"][host.name]
if os.environ.get("REPLAY_PROFILE"):
    import cProfile
    profile = cProfile.Profile(time.thread_time)
    atexit.register(lambda: profile.dump_stats(os.environ["REPLAY_PROFILE"]))
    profile.enable()
atexit.register(lambda: sys.stderr.write(f"REPLAY cpu={time.process_time():.4f} gc={spent[0]:.4f}\n"))
sys.argv = ["fleet", *sys.argv[2:]]
import runpy
runpy.run_module("fleet", run_name="__main__", alter_sys=True)
"""


def capture(inventory: str, known_hosts: str, out: str, forks: int) -> None:
    sys.path.insert(0, str(ROOT))
    from fleet.diagnose import RunOptions, prepare
    from fleet.executor import run_pool
    from fleet.inventory import load_inventory
    from fleet.models import Execution, TransportStatus
    from fleet.patterns import select
    from fleet.runbook import load_runbook
    from fleet.transport import SSHOptions

    runbook = load_runbook("502")
    hosts = select(load_inventory(inventory), None)
    options = RunOptions(forks=forks, ssh=SSHOptions(known_hosts=(known_hosts,), ssh_config=os.devnull))
    prepared = prepare(hosts, runbook, options)
    ssh = prepared.transports[hosts[0].connection]
    executions = dict(run_pool(prepared.hosts, lambda h, d: ssh.execute(h, prepared.scripts[h.name], d),
                               forks=forks, deadline_s=60.0,
                               on_overrun=lambda h, d: Execution(TransportStatus.TIMEOUT, "overrun"),
                               on_error=lambda h, e: Execution(TransportStatus.UNREACHABLE, repr(e))))
    ok = sum(1 for e in executions.values() if e.status is TransportStatus.OK)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump({"marker": prepared.marker, "inventory": os.path.abspath(inventory),
                     "known_hosts": os.path.abspath(known_hosts),
                     "executions": {h.name: e for h, e in executions.items()}}, fh)
    print(f"{ok}/{len(hosts)} hosts ok, kept in {out}")


def replay(pickle_path: str, trees: list[str], rounds: int, profile: str | None) -> None:
    with open(pickle_path, "rb") as fh:
        cap = pickle.load(fh)
    n = len(cap["executions"])
    out = ROOT / "bench" / "work" / "replay"
    argv = ["diagnose", "-i", cap["inventory"], "--known-hosts", cap["known_hosts"], "--ssh-config", os.devnull,
            "--out", str(out), "--format", "json,md,html"]
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "PYTHON"))}
    seen: dict[str, list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for tree in trees:
            run_env = {**env, "PYTHONPATH": tree, **({"REPLAY_PROFILE": profile} if profile else {})}
            done = subprocess.run([sys.executable, "-c", _REPLAY, pickle_path, *argv], env=run_env,
                                  capture_output=True, text=True, cwd=str(out))  # not a checkout's cwd
            line = next((x for x in done.stderr.splitlines() if x.startswith("REPLAY ")), None)
            if line is None:
                sys.exit(f"replay with {tree} failed:\n{done.stderr[-2000:]}")
            cpu, gc_s = (float(part.split("=")[1]) for part in line.split()[1:])
            seen.setdefault(tree, []).append((cpu, gc_s))
            print(f"{tree}: CPU {cpu:.3f} s ({1000 * cpu / n:.2f} ms/host), collector {1000 * gc_s:.0f} ms",
                  flush=True)
    for tree, values in seen.items():
        cpu = statistics.median(v[0] for v in values)
        print(f"median {tree}: CPU {cpu:.3f} s, {1000 * cpu / n:.2f} ms/host over {n} hosts, "
              f"collector {1000 * statistics.median(v[1] for v in values):.0f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--inventory", required=True)
    c.add_argument("--known-hosts", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--forks", type=int, default=50)
    r = sub.add_parser("run")
    r.add_argument("capture")
    r.add_argument("--tree", action="append", help="a checkout of fleet (default: this one); repeat for an A/B")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--profile", help="write a cProfile of the (last) replay's main thread here")
    a = p.parse_args()
    if a.cmd == "capture":
        capture(a.inventory, a.known_hosts, a.out, a.forks)
    else:
        replay(a.capture, a.tree or [str(ROOT)], a.rounds, a.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
