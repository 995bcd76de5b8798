#!/usr/bin/env python3
"""Benchmark fleet against its peers on the same namespaced test hosts.

    python bench/run.py                      # full run (~15-20 min on 2 cores)
    python bench/run.py --quick              # smoke: 20 hosts, 1 run, every suite (~2 min)
    python bench/run.py --suites 502 --sizes 150 --runs 3 --peers fleet,pssh,asyncssh

Run it with the interpreter fleet is installed in (it imports fleet and testfleet); the peers run
under bench/.venv (created on first use: parallel-ssh, asyncssh, ansible-core, py-spy from PyPI).
Needs root (test hosts are Linux namespaces). See bench/README.md for what each column means.

Every tool is a separate process measured with os.wait4 (through the small launcher spawn.py, so
the bench's own memory does not leak into ru_maxrss): wall time from spawn to exit, CPU (user+sys,
including any processes it spawned and reaped: ssh clients, ansible workers) and ru_maxrss (the
largest single process). For tools that fan out to processes, the peak RSS of
the whole process tree is also sampled (`tree_mb`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VPY = VENV / "bin" / "python"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
RUNBOOKS = BENCH / "runbooks"
PEER_PKGS = ["parallel-ssh", "asyncssh", "ansible-core", "py-spy"]
ALL_PEERS = ("fleet", "pssh", "asyncssh", "openssh", "ansible", "fleet-base", "paramiko")
BASELINE_DIR = ""  # --baseline: a directory holding another copy of the fleet package

# Our own test-fleet names and subnets, so we never collide with other users of testfleet.
FULL_PREFIX, FULL_SUBNET = "fltb", "198.18.232.0/22"      # up to 1,000 full hosts
LIGHT_PREFIX, LIGHT_SUBNET = "fltbl", "198.18.242.0/23"   # up to 501 light hosts

sys.path.insert(0, str(ROOT))
# The measuring launcher (spawn.py) runs under the smallest Python at hand.
SMALL_PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- measuring
def _tree_rss_kb(root: int) -> int:
    """RSS of root and all its descendants (via /proc/PID/task/TID/children)."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user+sys) a process has used so far, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    kids = [int(c) for c in fh.read().split()]
                found += kids
                stack += kids
        except (OSError, ValueError):
            continue
    return found


def measure(argv: list[str], *, env: dict, log_path: Path, tree: bool = False, timeout: float = 900) -> dict:
    """Spawn argv, wait for it with wait4; wall, CPU (user+sys incl. reaped descendants), peak RSS.

    With `tree`, the summed RSS of the tool's process tree is sampled (peak), and so is the CPU of
    each of its descendants (their last sample: `children_cpu_s`, a lower bound by at most one
    0.1 s sampling interval each); the tool's own CPU is the wait4 total minus that.
    """
    usage = log_path.with_suffix(".rusage.json")
    usage.unlink(missing_ok=True)
    launcher = [SMALL_PY, "-I", "-S", str(BENCH / "spawn.py"), str(usage)]
    with open(log_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(launcher + argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=str(WORK))
        peak_tree = [0]
        child_cpu: dict[int, float] = {}
        stop = threading.Event()

        def sample() -> None:  # the tool and its descendants, not the launcher
            while not stop.wait(0.1):
                try:
                    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
                        kids = [int(c) for c in fh.read().split()]
                except OSError:
                    kids = []
                peak_tree[0] = max(peak_tree[0], sum(_tree_rss_kb(k) for k in kids))
                for pid in (d for k in kids for d in _descendants(k)):
                    cpu = _cpu_s(pid)
                    if cpu is not None:
                        child_cpu[pid] = max(cpu, child_cpu.get(pid, 0.0))

        sampler = threading.Thread(target=sample, daemon=True) if tree else None
        if sampler:
            sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            stop.set()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        u = json.loads(usage.read_text())
    except (OSError, ValueError):  # the launcher was killed: fall back to its own (inflated) figures
        u = {"user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_kb": ru.ru_maxrss, "rc": proc.returncode}
    return {"wall_s": wall, "user_s": u["user_s"], "sys_s": u["sys_s"], "cpu_s": u["user_s"] + u["sys_s"],
            "maxrss_mb": u["maxrss_kb"] / 1024, "tree_mb": peak_tree[0] / 1024 if tree else None,
            "children_cpu_s": sum(child_cpu.values()) if tree else None,
            "children": len(child_cpu) if tree else None, "rc": u["rc"]}


def base_env() -> dict:
    """A clean environment: own HOME (no ~/.ssh config, keys or known_hosts), no agent."""
    home = WORK / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "ANSIBLE_", "PYTHON"))}
    env.update(HOME=str(home), LC_ALL="C.UTF-8", NO_COLOR="1", TERM="dumb")
    return env


# --------------------------------------------------------------------------- peers venv
def ensure_venv(peers: list[str], want_pyspy: bool) -> None:
    need = [p for p in peers if not p.startswith("fleet")] or want_pyspy
    if not need:
        return
    if not VPY.exists():
        log("creating bench/.venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = "import pssh, asyncssh, ansible; import shutil; assert shutil.which('py-spy', path='%s')" % (VENV / "bin")
    if subprocess.run([str(VPY), "-c", probe], capture_output=True).returncode != 0:
        log(f"installing {', '.join(PEER_PKGS)} into bench/.venv (PyPI)")
        subprocess.run([str(VPY), "-m", "pip", "install", "-q", *PEER_PKGS], check=True)


def versions() -> dict:
    out = {}
    try:
        import paramiko
        out["paramiko"] = paramiko.__version__
    except ImportError:
        pass
    if VPY.exists():
        code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
                "('parallel-ssh','ssh2-python','asyncssh','ansible-core','py-spy')}))")
        cp = subprocess.run([str(VPY), "-c", code], capture_output=True, text=True)
        if cp.returncode == 0:
            out.update(json.loads(cp.stdout))
    cp = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    out["openssh"] = cp.stderr.strip()
    return out


def machine() -> dict:
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout
    mem = next((line.split()[1] for line in free.splitlines() if line.startswith("Mem:")), "?")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "mem_gib": mem, "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "os": _os_release()}


def _os_release() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


# --------------------------------------------------------------------------- test fleets
class Fleet:
    """A testfleet brought up for the bench, with helpers to carve inventories out of it."""

    def __init__(self, name: str, count: int, light: bool, prefix: str, subnet: str, extra: str = ""):
        from testfleet import TestFleet

        self.dir = WORK / name
        if (self.dir / "state.json").exists():
            from testfleet import down_dir
            log(f"tearing down a leftover fleet in {self.dir}")
            down_dir(str(self.dir), log=log)
        scen = f"healthy*{count}" + (f",{extra}" if extra else "")
        self.tf = TestFleet(self.dir, scenarios=scen, prefix=prefix, subnet=subnet, light=light, log=log)

    def __enter__(self) -> "Fleet":
        t = time.monotonic()
        self.tf.up()
        self.up_s = time.monotonic() - t
        self.healthy = [h for h in self.tf.hosts.values() if h.scenario.name == "healthy"]
        return self

    def __exit__(self, *exc) -> None:
        self.tf.down()

    def inventory(self, path: Path, hosts: list, extra: dict | None = None, host_vars: dict | None = None) -> Path:
        lines = ["all:", "  hosts:"]
        for h in hosts:
            lines += [f"    {h.name}:", f"      ansible_host: {h.ip}", f"      ansible_user: {h.user}",
                      f"      ansible_ssh_private_key_file: {self.tf.key_path}"]
            for k, v in (host_vars or {}).get(h.name, {}).items():
                lines.append(f"      {k}: {v}")
        for name, hv in (extra or {}).items():
            lines.append(f"    {name}:")
            lines += [f"      {k}: {v}" for k, v in hv.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def job(self, path: Path, hosts: list, script: Path, forks: int, timeout: float) -> Path:
        path.write_text(json.dumps({
            "hosts": [{"name": h.name, "host": h.ip, "port": 22, "user": h.user, "key": str(self.tf.key_path)}
                      for h in hosts],
            "script": str(script), "known_hosts": str(self.tf.known_hosts_path), "forks": forks,
            "timeout": timeout}))
        return path


def fleet_env() -> dict:
    """The clean environment, running the fleet of the tree this bench is in (not an installed one)."""
    return {**base_env(), "PYTHONPATH": str(ROOT)}


def fleet_script(inventory: Path, known_hosts: Path, runbook: str) -> str:
    """The exact script fleet sends to the inventory's host: `fleet diagnose --dry-run` (its
    `#` comment lines, parameters and their sources, are part of what the peers send)."""
    argv = [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--known-hosts", str(known_hosts),
            "--runbook", runbook, "--ssh-config", "/dev/null", "--dry-run"]
    return subprocess.run(argv, env=fleet_env(), capture_output=True, text=True, check=True, cwd=str(WORK)).stdout


def fleet_argv(inventory: Path, known_hosts: Path, runbook: str, forks: int, out: Path,
               timeout: float = 60, connect_timeout: float = 10, formats: str = "json,md,html",
               workers: int | None = None) -> list[str]:
    return [sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--known-hosts", str(known_hosts),
            "--runbook", runbook, "--forks", str(forks), "--timeout", str(timeout),
            "--connect-timeout", str(connect_timeout), "--ssh-config", "/dev/null", "--out", str(out),
            "--format", formats, *(["--workers", str(workers)] if workers is not None else [])]


def fleet_check(out: Path, expect_hosts: int) -> tuple[int, int, dict]:
    """(healthy, total, report doc) from the newest JSON report in out."""
    reports = sorted(out.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return 0, expect_hosts, {}
    doc = json.loads(reports[-1].read_text())
    return doc["summary"]["healthy"], doc["summary"]["total"], doc


def run_tool(tool: str, fl: Fleet, hosts: list, runbook: str, script: Path, forks: int, tag: str,
             timeout: float = 60, workers: int | None = None) -> dict:
    """Run one tool once on hosts; return its measurements plus ok/failed counts."""
    tmp = WORK / "runs" / tag
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    env = base_env()
    inv = fl.inventory(tmp / "inventory.yml", hosts)
    if tool in ("fleet", "fleet-base"):
        # fleet-base: another copy of fleet (e.g. before a change) for an A/B.
        env = fleet_env() if tool == "fleet" else {**env, "PYTHONPATH": BASELINE_DIR}
        out = tmp / "reports"
        # The tree: with worker processes, RSS and CPU are the parent's and the workers' together.
        m = measure(fleet_argv(inv, fl.tf.known_hosts_path, runbook, forks, out, timeout, workers=workers), env=env,
                    log_path=tmp / "fleet.log", tree=True)
        m["parent_cpu_s"] = m["cpu_s"] - (m["children_cpu_s"] or 0.0)
        ok, total, doc = fleet_check(out, len(hosts))
        m.update(ok=ok, failed=len(hosts) - ok, run_phase_s=doc.get("duration_s"))
        if ok < len(hosts):
            m["errors"] = doc.get("summary", {}).get("counts")
        shutil.rmtree(out, ignore_errors=True)
        return m
    if tool == "ansible":
        env.update(ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_HOME=str(tmp / "ansible_home"),
                   ANSIBLE_LOCAL_TEMP=str(tmp / "ansible_tmp"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_SSH_ARGS=f"-o ControlMaster=no -o KexAlgorithms=curve25519-sha256 "
                                    f"-o UserKnownHostsFile={fl.tf.known_hosts_path} -o GlobalKnownHostsFile=/dev/null",
                   ANSIBLE_TIMEOUT="10", ANSIBLE_CONFIG=str(tmp / "none.cfg"), ANSIBLE_DEPRECATION_WARNINGS="False",
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
        body = script.read_text()
        argv = [str(VENV / "bin" / "ansible"), "all", "-i", str(inv), "-m", "raw",
                "-a", json.dumps({"_raw_params": "{% raw %}" + body + "{% endraw %}"}), "-f", str(forks), "-o"]
        m = measure(argv, env=env, log_path=tmp / "ansible.log", tree=True)
        text = (tmp / "ansible.log").read_text(errors="replace")
        ok = sum(1 for line in text.splitlines() if " | CHANGED | rc=0 " in line or " | SUCCESS | rc=0 " in line)
        m.update(ok=ok, failed=len(hosts) - ok)
        return m
    job = fl.job(tmp / "job.json", hosts, script, forks, timeout)
    # Bare paramiko runs on fleet's own interpreter and paramiko, the floor under fleet's transport.
    python = sys.executable if tool == "paramiko" else str(VPY)
    m = measure([python, str(BENCH / "peers" / f"{tool}_peer.py"), str(job)], env=env,
                log_path=tmp / f"{tool}.log", tree=tool == "openssh")
    lines = (tmp / f"{tool}.log").read_text(errors="replace").strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        res = {"ok": 0, "failed": len(hosts), "errors": {"no result": 1, "log": lines[-3:]}}
    m.update(ok=res["ok"], failed=res["failed"], bytes=res.get("bytes"))
    if res.get("errors"):
        m["errors"] = res["errors"]
    return m


def median_row(samples: list[dict]) -> dict:
    row = {"runs": len(samples)}
    for key in ("wall_s", "cpu_s", "user_s", "sys_s", "maxrss_mb", "tree_mb", "run_phase_s", "parent_cpu_s",
                "children_cpu_s", "bytes"):
        vals = [s[key] for s in samples if s.get(key) is not None]
        row[key] = statistics.median(vals) if vals else None
    row["ok"] = min(s["ok"] for s in samples)
    row["failed"] = max(s["failed"] for s in samples)
    errs = [s["errors"] for s in samples if s.get("errors")]
    if errs:
        row["errors"] = errs[0]
    return row


def compare_suite(fl: Fleet, suite: str, runbook: str, sizes: list[int], peers: list[str], runs: int,
                  forks: int, ansible_max: int) -> list[dict]:
    """Each size: alternate the tools run after run; rows of medians."""
    script_path = WORK / f"script-{suite}.sh"
    rows = []
    for n in sizes:
        hosts = fl.healthy[:n]
        script_path.write_text(fleet_script(fl.inventory(WORK / "probe-inv.yml", hosts[:1]),
                                            fl.tf.known_hosts_path, runbook))
        tools = [p for p in peers if not (p == "ansible" and n > ansible_max)]
        samples: dict[str, list[dict]] = {t: [] for t in tools}
        for r in range(runs):
            for tool in tools:
                m = run_tool(tool, fl, hosts, runbook, script_path, forks, f"{suite}-{n}-{tool}-{r}")
                samples[tool].append(m)
                log(f"{suite} n={n} run {r + 1}/{runs} {tool:8} wall {m['wall_s']:.2f}s cpu {m['cpu_s']:.2f}s "
                    f"rss {m['maxrss_mb']:.0f}MB ok {m['ok']}/{n}" + (f" errors {m.get('errors')}" if m.get("errors") else ""))
        base = median_row(samples["fleet"]) if "fleet" in samples else None
        for tool in tools:
            row = median_row(samples[tool])
            row.update(suite=suite, hosts=n, tool=tool, forks=forks, script_bytes=script_path.stat().st_size,
                       cpu_ms_per_host=1000 * row["cpu_s"] / n, samples=samples[tool],
                       bytes_per_host=row["bytes"] / row["ok"] if row.get("bytes") and row["ok"] else None)
            if base:
                row["wall_vs_fleet"] = row["wall_s"] / base["wall_s"]
                row["cpu_vs_fleet"] = row["cpu_s"] / base["cpu_s"]
            rows.append(row)
    return rows


def sweep_suite(fl: Fleet, knob: str, n: int, values: list[int], runs: int, runbook: str) -> list[dict]:
    """fleet alone on n hosts with each value of `knob` (`forks`, or `workers` at forks 50),
    alternating the values run after run; rows of medians. With workers, the CPU split between
    the parent and the worker processes is logged."""
    hosts = fl.healthy[:n]
    script = WORK / f"script-{knob}.sh"
    script.write_text("unused by fleet")
    samples: dict[int, list[dict]] = {v: [] for v in values}
    for r in range(runs):
        for v in values:
            forks, workers = (v, None) if knob == "forks" else (50, v)
            m = run_tool("fleet", fl, hosts, runbook, script, forks, f"{knob}-{v}-{r}", workers=workers)
            samples[v].append(m)
            log(f"{knob}={v:3} n={n} run {r + 1}/{runs} wall {m['wall_s']:.2f}s cpu {m['cpu_s']:.2f}s "
                f"(parent {m['parent_cpu_s']:.2f}s) rss {m['maxrss_mb']:.0f}MB tree {m['tree_mb']:.0f}MB ok {m['ok']}/{n}")
    rows = []
    for v in values:
        row = median_row(samples[v])
        row.update(suite=knob, runbook=Path(runbook).stem, hosts=n, forks=50, cpu_ms_per_host=1000 * row["cpu_s"] / n,
                   samples=samples[v])
        row[knob] = v
        rows.append(row)
    return rows


def predict_workers(rows: list[dict], targets=(8, 16)) -> list[str]:
    """What the CPU split of the run with the most workers predicts for more cores (Amdahl): the
    parent's CPU (start-up, inventory, every result's journal line and report entry) is serial,
    the workers' divides over the cores; the hosts' CPU is not counted (on a real fleet it is
    spent on the hosts). Compared with the one-process run's CPU for the same hosts."""
    run = max((r for r in rows if r["suite"] == "workers"), key=lambda r: r["workers"], default=None)
    one = next((r for r in rows if r["suite"] == "workers" and r["workers"] == 1), None)
    if run is None or run["workers"] < 2 or run.get("children_cpu_s") is None:
        return []
    parent, workers, n, hosts = run["parent_cpu_s"], run["children_cpu_s"], run["workers"], run["hosts"]
    lines = [f"CPU split with {n} workers at {hosts} hosts: parent {parent:.2f} s ({1000 * parent / hosts:.2f} "
             f"ms/host, its start-up included), workers {workers:.2f} s in all ({1000 * workers / hosts:.2f} ms/host, "
             f"their {n} start-ups included)."]
    if one is not None:
        lines.append(f"One process: {one['cpu_s']:.2f} s for the same hosts, {hosts / one['cpu_s']:.0f} hosts per "
                     f"second of controller CPU.")
    for cores in targets:
        bound = max(parent, workers / cores)
        lines.append(f"{cores} workers on {cores} free cores: max(parent {parent:.2f} s, workers {workers:.2f} s / "
                     f"{cores} = {workers / cores:.2f} s) = {bound:.2f} s, {hosts / bound:.0f} hosts/s "
                     f"({'the parent' if parent >= workers / cores else 'the workers'} being the limit).")
    return lines


def host_cost(fl: Fleet, hosts: list, script: str, label: str, repeat: int = 5) -> dict:
    """Host CPU and bytes of one diagnosis, `script` run on each host in turn (so hosts do not
    compete). On the host the script is saved, run once with its output sent back (the bytes) and
    `repeat - 1` more times, then `times` prints the CPU of the shell's children, i.e. of every
    run and every process they forked and waited for; divided by `repeat`, since `times` counts
    in clock ticks (10 ms), too coarse for one run of a short script."""
    runs = ('t=$(mktemp) && cat > "$t" && sh "$t"; i=1; while [ $i -lt %d ]; do sh "$t" >/dev/null 2>&1 '
            '</dev/null; i=$((i+1)); done; rm -f "$t"; echo; times') % repeat
    cpu, sizes, sample = [], [], ""
    for h in hosts:
        argv = ["ssh", "-i", str(fl.tf.key_path), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={fl.tf.known_hosts_path}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-F", "/dev/null", f"{h.user}@{h.ip}", runs]
        done = subprocess.run(argv, input=script.encode(), capture_output=True, env=base_env(), timeout=300)
        text = done.stdout.decode(errors="replace")
        body, _, tail = text.rstrip("\n").rpartition("\n")  # `times`: the shell's own line, then its children's
        try:
            user, system = (_clock(t) for t in tail.split())
        except ValueError:
            log(f"host cost {label} on {h.name}: no `times` line (rc {done.returncode}): {tail[-200:]!r}")
            continue
        cpu.append((user + system) / repeat)
        out = body.rpartition("\n")[0]  # less the shell's own `times` line and the echo before it
        sizes.append(len(out[:-1].encode()) + len(done.stderr))
        sample = sample or (out + done.stderr.decode(errors="replace"))[:600]
    row = {"suite": "host", "script": label, "hosts": len(hosts), "measured": len(cpu), "repeat": repeat,
           "script_bytes": len(script.encode()),
           "host_cpu_ms": 1000 * statistics.median(cpu) if cpu else None,
           "host_cpu_ms_all": [round(1000 * c, 1) for c in cpu],
           "bytes_per_host": statistics.median(sizes) if sizes else None, "sample_output": sample}
    log(f"host cost {label}: {row['host_cpu_ms']} ms CPU, {row['bytes_per_host']} bytes per host")
    return row


def _clock(text: str) -> float:
    """A `times` figure (`0m0.120000s`, `0m0.12s`) in seconds."""
    minutes, seconds = text.rstrip("s").split("m")
    return 60 * float(minutes) + float(seconds)


def host_suite(fl: Fleet, n: int) -> list[dict]:
    """Host CPU and bytes per diagnosis: fleet's 502 script against the user's one-liner checklist."""
    hosts = fl.healthy[:n]
    script = fleet_script(fl.inventory(WORK / "probe-inv.yml", hosts[:1]), fl.tf.known_hosts_path, "502")
    rows = [host_cost(fl, hosts, script, "fleet 502"),
            host_cost(fl, hosts, (RUNBOOKS / "checklist.sh").read_text(), "one-liner checklist")]
    if rows[0]["host_cpu_ms"] and rows[1]["host_cpu_ms"]:
        rows[0]["vs_checklist"] = rows[0]["host_cpu_ms"] / rows[1]["host_cpu_ms"]
    return rows


# --------------------------------------------------------------------------- hung hosts
class HungListeners:
    """Two listeners on 127.0.0.1 that hang SSH clients, held open by this process.

    * `silent`: accepts TCP (the kernel completes the handshake) but never sends an SSH banner.
    * `syn_drop`: a backlog-0 listener whose accept queue we fill ourselves, so the kernel drops
      further SYNs: a connect that never gets an answer.
    """

    def __init__(self) -> None:
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(1024)
        self.syn = socket.socket()
        self.syn.bind(("127.0.0.1", 0))
        self.syn.listen(0)
        self.fillers = []
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(self.syn.getsockname())
            self.fillers.append(s)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(1.0)
        try:
            probe.connect(self.syn.getsockname())
            self.syn_drops = False  # the kernel accepted it after all
        except (socket.timeout, TimeoutError):
            self.syn_drops = True
        except OSError:
            self.syn_drops = False
        finally:
            probe.close()

    def close(self) -> None:
        for s in (self.silent, self.syn, *self.fillers):
            s.close()


def hung_suite(fl: Fleet, runs: int, deadline: float, n_ok: int = 20, n_each: int = 5) -> dict:
    lst = HungListeners()
    try:
        hosts = fl.healthy[: n_ok + n_each]
        hang_vars = {h.name: {"hang": 1} for h in hosts[n_ok:]}
        key = str(fl.tf.key_path)
        extra = {}
        for i in range(n_each):
            extra[f"no-banner-{i}"] = {"ansible_host": "127.0.0.1", "ansible_port": lst.silent.getsockname()[1],
                                       "ansible_user": "root", "ansible_ssh_private_key_file": key}
            extra[f"syn-dropped-{i}"] = {"ansible_host": "127.0.0.1", "ansible_port": lst.syn.getsockname()[1],
                                         "ansible_user": "root", "ansible_ssh_private_key_file": key}
        unreach = [h for h in fl.tf.hosts.values() if h.scenario.name == "unreachable"]
        for h in unreach:
            fl.tf.check_route(h.ip)
            extra[h.name] = {"ansible_host": h.ip, "ansible_user": "root", "ansible_ssh_private_key_file": key}
        total = len(hosts) + len(extra)
        samples = []
        for r in range(runs):
            tmp = WORK / "runs" / f"hung-{r}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            inv = fl.inventory(tmp / "inventory.yml", hosts, extra, hang_vars)
            out = tmp / "reports"
            m = measure(fleet_argv(inv, fl.tf.known_hosts_path, str(RUNBOOKS / "hang.yml"), 50, out,
                                   timeout=deadline, connect_timeout=10), env=fleet_env(), log_path=tmp / "fleet.log")
            _, _, doc = fleet_check(out, total)
            m["run_phase_s"] = doc.get("duration_s")
            m["verdicts"] = doc.get("summary", {}).get("counts")
            m["slowest_host_s"] = max((h["duration_s"] for h in doc.get("hosts", [])), default=None)
            samples.append(m)
            log(f"hung run {r + 1}/{runs}: wall {m['wall_s']:.2f}s run phase {m['run_phase_s']}s "
                f"(deadline {deadline:g}s) verdicts {m['verdicts']}")
        row = median_row([dict(s, ok=0, failed=0) for s in samples])
        row.update(suite="hung", hosts=total, deadline_s=deadline, syn_drop_works=lst.syn_drops,
                   composition={"answering": n_ok, "command_never_ends": n_each, "no_banner": n_each,
                                "syn_dropped": n_each, "unreachable_address": len(unreach)},
                   verdicts=samples[-1]["verdicts"], samples=samples,
                   met=all((s["run_phase_s"] or 1e9) <= deadline + 1 for s in samples))
        return row
    finally:
        lst.close()


# --------------------------------------------------------------------------- report rendering
def report_suite(n_hosts: int, runs: int) -> dict:
    """Render an n-host report (realistic host entries, mixed verdicts) with `fleet report`."""
    fixture = json.loads((BENCH / "fixtures" / "host_entries_502.json").read_text())
    from fleet.report import document

    entries = []
    for i in range(n_hosts):
        e = json.loads(json.dumps(fixture[i % len(fixture)]))
        e["name"] = f"web{i:05d}.example.com"
        e["address"] = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        entries.append(e)
    doc = {"schema": document.SCHEMA, "fleet_version": "bench", "runbook": "502",
           "runbook_description": "Why does nginx answer 502 Bad Gateway for the backend?",
           "parameters": {}, "inventory": "bench", "limit": None, "options": {"forks": 50},
           "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "partial": False, "notes": [],
           "summary": document.summarise(entries), "hosts": entries}
    tmp = WORK / "runs" / "report"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    src = tmp / "big.json"
    src.write_text(json.dumps(doc))
    samples = []
    for r in range(runs):
        m = measure([sys.executable, "-m", "fleet", "report", str(src), "--format", "html,md", "--out", str(tmp)],
                    env=fleet_env(), log_path=tmp / "report.log")
        m["html_mb"] = (tmp / "big.html").stat().st_size / 1e6 if (tmp / "big.html").exists() else None
        samples.append(dict(m, ok=int(m["rc"] == 0), failed=int(m["rc"] != 0)))
        log(f"report {n_hosts} hosts run {r + 1}/{runs}: wall {m['wall_s']:.2f}s cpu {m['cpu_s']:.2f}s rc {m['rc']}")
    row = median_row(samples)
    row.update(suite="report", hosts=n_hosts, json_mb=src.stat().st_size / 1e6, html_mb=samples[-1]["html_mb"],
               verdicts=doc["summary"]["counts"], samples=samples, browser=browser_check(tmp / "big.html"))
    return row


def browser_check(html: Path) -> dict | None:
    """bench/browser.py's timings of the page in Chromium, or None without Chromium or Playwright."""
    if not html.exists() or not shutil.which("chromium"):
        return None
    done = subprocess.run([sys.executable, str(BENCH / "browser.py"), str(html)], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        log(f"browser check failed: {done.stderr.strip()[-300:]}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"report in Chromium: {result}")
    return result


# --------------------------------------------------------------------------- output
def fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _table(title: str, head: list[str], rows: list[list[str]], first: str = "---:") -> list[str]:
    """A Markdown table under a heading; the first column aligned as `first`, the others right."""
    return [f"\n### {title}\n", "| " + " | ".join(head) + " |", "|" + "|".join([first] + ["---:"] * (len(head) - 1)) + "|",
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def markdown(results: dict) -> str:
    out = []
    for suite, title in (("502", "502 runbook, full test hosts (sshd + nginx + backend)"),
                         ("trivial", "trivial runbook (`true`), light test hosts (sshd only)")):
        rows = [r for r in results["rows"] if r["suite"] == suite]
        if not rows:
            continue
        out += [f"\n### {title}, forks 50, median of {rows[0]['runs']} runs\n",
                "| hosts | tool | wall s | CPU s (user+sys) | CPU ms/host | peak RSS MB | tree RSS MB | bytes/host | ok | wall vs fleet | CPU vs fleet |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            out.append(f"| {r['hosts']} | {r['tool']} | {fmt(r['wall_s'])} | {fmt(r['cpu_s'])} | "
                       f"{fmt(r['cpu_ms_per_host'], '.1f')} | {fmt(r['maxrss_mb'], '.0f')} | {fmt(r['tree_mb'], '.0f')} | "
                       f"{fmt(r.get('bytes_per_host'), '.0f')} | "
                       f"{r['ok']}/{r['hosts']} | {fmt(r.get('wall_vs_fleet'))} | {fmt(r.get('cpu_vs_fleet'))} |")
        fastest = {}
        for r in rows:
            if r["tool"] in ("pssh", "asyncssh"):
                if r["hosts"] not in fastest or r["wall_s"] < fastest[r["hosts"]][1]:
                    fastest[r["hosts"]] = (r["tool"], r["wall_s"])
        for n, (tool, wall) in sorted(fastest.items()):
            f = next((r for r in rows if r["hosts"] == n and r["tool"] == "fleet"), None)
            if f:
                out.append(f"\nn={n}: fleet wall / fastest of pssh,asyncssh ({tool}) = {f['wall_s'] / wall:.2f}")
    workers = [r for r in results["rows"] if r["suite"] == "workers"]
    if workers:
        out += _table(f"fleet --workers, controller-bound: {workers[0]['runbook']} runbook, {workers[0]['hosts']} light "
                      f"hosts, forks 50, median of {workers[0]['runs']} runs",
                      ["workers", "wall s", "CPU s (all processes)", "parent CPU s", "workers CPU s", "CPU ms/host",
                       "tree RSS MB", "ok"],
                      [[str(r["workers"]), fmt(r["wall_s"]), fmt(r["cpu_s"]), fmt(r["parent_cpu_s"]),
                        fmt(r["children_cpu_s"]), fmt(r["cpu_ms_per_host"], ".1f"), fmt(r["tree_mb"], ".0f"),
                        f"{r['ok']}/{r['hosts']}"] for r in workers])
        out += ["", *predict_workers(workers)]
    host = [r for r in results["rows"] if r["suite"] == "host"]
    if host:
        out += _table(f"on the host: one diagnosis, {host[0]['hosts']} full hosts one at a time (median)",
                      ["script", "script bytes", "host CPU ms", "bytes back per host", "vs checklist"],
                      [[r["script"], str(r["script_bytes"]), fmt(r["host_cpu_ms"], ".0f"),
                        fmt(r["bytes_per_host"], ".0f"), fmt(r.get("vs_checklist"))] for r in host], first="---")
    forks = [r for r in results["rows"] if r["suite"] == "forks"]
    if forks:
        out += _table(f"fleet --forks at {forks[0]['hosts']} hosts ({forks[0]['runbook']} runbook), median of "
                      f"{forks[0]['runs']} runs", ["forks", "wall s", "CPU s", "CPU ms/host", "peak RSS MB", "ok"],
                      [[str(r["forks"]), fmt(r["wall_s"]), fmt(r["cpu_s"]), fmt(r["cpu_ms_per_host"], ".1f"),
                        fmt(r["maxrss_mb"], ".0f"), f"{r['ok']}/{r['hosts']}"] for r in forks])
    for r in results["rows"]:
        if r["suite"] == "hung":
            out.append(f"\n### hung hosts: {r['hosts']} hosts {r['composition']}, --timeout {r['deadline_s']:g}\n")
            out.append(f"wall (process) {fmt(r['wall_s'])} s, run phase {fmt(r['run_phase_s'])} s, target <= "
                       f"{r['deadline_s'] + 1:g} s: {'met' if r['met'] else 'NOT met'}; verdicts {r['verdicts']}")
        if r["suite"] == "report":
            out.append(f"\n### report rendering: {r['hosts']} hosts ({fmt(r['json_mb'], '.1f')} MB JSON -> "
                       f"{fmt(r['html_mb'], '.1f')} MB HTML), `fleet report --format html,md`\n")
            out.append(f"wall {fmt(r['wall_s'])} s, CPU {fmt(r['cpu_s'])} s, peak RSS {fmt(r['maxrss_mb'], '.0f')} MB "
                       f"(target < 2 s: {'met' if r['wall_s'] < 2 else 'NOT met'})")
            if r.get("browser"):
                b = r["browser"]
                out.append(f"\nIn Chromium: loads in {b['load_s']:.2f} s; filter by a verdict {b['filter_s']:.2f} s, "
                           f"back to all {b['unfilter_s']:.2f} s, open a row {b['open_row_s']:.2f} s, "
                           f"sort by time {b['sort_s']:.2f} s")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="50,150,500", help="host counts (502 suite: those <= --full-max)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--peers", default=",".join(ALL_PEERS[:5]), help="comma list of " + ",".join(ALL_PEERS))
    p.add_argument("--suites", default="502,trivial,hung,report,forks,workers,host",
                   help="502 (full hosts), trivial (light hosts), hung, report, forks, workers (light hosts), "
                        "host (host CPU and bytes per diagnosis, full hosts)")
    p.add_argument("--forks", type=int, default=50, help="concurrency of every tool in the comparisons")
    p.add_argument("--forks-sweep", default="10,25,50,100,150")
    p.add_argument("--forks-hosts", type=int, default=150)
    p.add_argument("--workers-sweep", default="1,2", help="fleet --workers counts of the workers suite")
    p.add_argument("--workers-hosts", type=int, default=500, help="light hosts of the workers suite")
    p.add_argument("--host-hosts", type=int, default=10, help="full hosts of the host suite (one at a time)")
    p.add_argument("--full-max", type=int, default=150, help="largest fleet of full hosts (502 suite)")
    p.add_argument("--ansible-max", type=int, default=150, help="skip Ansible above this many hosts (slow)")
    p.add_argument("--hung-deadline", type=float, default=5.0)
    p.add_argument("--report-hosts", type=int, default=5000)
    p.add_argument("--baseline", default="", help="dir with another copy of the `fleet` package: adds tool "
                   "`fleet-base` (an A/B of a change, e.g. --peers fleet,fleet-base)")
    p.add_argument("--quick", action="store_true", help="20 hosts, 1 run, forks sweep 25,50 (a smoke test)")
    p.add_argument("--out", default=None, help="results JSON (default bench/results/<UTC date>.json)")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.runs, a.forks_sweep, a.forks_hosts, a.report_hosts = "20", 1, "25,50", 20, 1000
        a.workers_hosts, a.host_hosts = 20, 3
    global BASELINE_DIR
    BASELINE_DIR = os.path.abspath(a.baseline) if a.baseline else ""
    sizes = sorted({int(s) for s in a.sizes.split(",") if s})
    peers = [t for t in a.peers.split(",") if t]
    suites = [s for s in a.suites.split(",") if s]
    unknown = set(peers) - set(ALL_PEERS)
    if unknown:
        p.error(f"unknown peers: {unknown}")
    if "fleet-base" in peers and not BASELINE_DIR:
        p.error("fleet-base needs --baseline DIR")
    if os.geteuid() != 0:
        p.error("needs root (test hosts are Linux namespaces)")
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ensure_venv(peers, False)
    stamp = dt.datetime.now(dt.timezone.utc)
    results = {"date": stamp.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
               "args": vars(a), "rows": [], "fleets": {}}
    out_path = Path(a.out) if a.out else RESULTS / f"{stamp.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    tmp_path = out_path.with_suffix(".json.tmp")

    def save() -> None:
        tmp_path.write_text(json.dumps(results, indent=1))

    t0 = time.monotonic()
    full_sizes = [n for n in sizes if n <= a.full_max]
    n_full = max((full_sizes if "502" in suites else []) + ([a.forks_hosts] if "forks" in suites else [])
                 + ([a.host_hosts] if "host" in suites else []), default=0)
    if ("502" in suites and full_sizes) or "forks" in suites or "host" in suites:
        with Fleet("full", n_full, False, FULL_PREFIX, FULL_SUBNET) as fl:
            results["fleets"]["full"] = {"hosts": n_full, "up_s": fl.up_s}
            if "502" in suites and full_sizes:
                results["rows"] += compare_suite(fl, "502", "502", full_sizes, peers, a.runs, a.forks, a.ansible_max)
                save()
            if "forks" in suites:
                results["rows"] += sweep_suite(fl, "forks", a.forks_hosts, [int(f) for f in a.forks_sweep.split(",")],
                                               a.runs, "502")
                save()
            if "host" in suites:
                results["rows"] += host_suite(fl, a.host_hosts)
                save()
    if "trivial" in suites or "hung" in suites or "workers" in suites:
        n_light = max(sizes + [25] + ([a.workers_hosts] if "workers" in suites else []))
        with Fleet("light", n_light, True, LIGHT_PREFIX, LIGHT_SUBNET, extra="unreachable") as fl:
            results["fleets"]["light"] = {"hosts": n_light + 1, "up_s": fl.up_s}
            if "trivial" in suites:
                results["rows"] += compare_suite(fl, "trivial", str(RUNBOOKS / "trivial.yml"), sizes, peers, a.runs,
                                                 a.forks, a.ansible_max)
                save()
            if "hung" in suites:
                results["rows"].append(hung_suite(fl, max(1, a.runs), a.hung_deadline))
                save()
            if "workers" in suites:
                results["rows"] += sweep_suite(fl, "workers", a.workers_hosts, [int(w) for w in a.workers_sweep.split(",")],
                                               a.runs, str(RUNBOOKS / "trivial.yml"))
                save()
    if "report" in suites:
        results["rows"].append(report_suite(a.report_hosts, max(1, a.runs)))
    results["total_s"] = time.monotonic() - t0
    results["markdown"] = markdown(results)
    save()
    os.replace(tmp_path, out_path)
    print(f"## fleet bench {results['date']} ({results['machine']['nproc']} CPUs, {results['machine']['mem_gib']} GiB, "
          f"kernel {results['machine']['kernel']}, Python {results['machine']['python']})")
    print(results["markdown"])
    log(f"results: {out_path} (total {results['total_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
