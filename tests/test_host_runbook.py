"""The built-in `host` runbook: is the host itself sick (disk full, inodes, OOM kills, memory)?

Two halves:

* rules against facts parsed from REAL captured probe output (tests/fixtures/parsers/filesystems,
  kernel_log, memory), through `fleet.rules.evaluate`. This is where `oom_killed` and
  `memory_pressure` are covered: the kernel log and /proc/meminfo are global, not namespaced, so
  a test host cannot have an OOM kill or a memory shortage of its own;
* the CLI over SSH against real test hosts (testfleet, prefix `flth`, 198.18.230.0/24) whose
  scenarios mount a private tmpfs at /srv/data and fill it (`disk_full`) or use up its inodes
  (`inodes_exhausted`). The machine's own filesystems, kernel log and memory show through in
  those hosts, so the run judges only `--var paths=/srv/data` and turns the OOM and memory rules
  off (`oom_window_minutes=0`, `mem_available_min_pct=0`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.models import ProbeOutput
from fleet.parsers import PARSERS
from fleet.rules import INCONCLUSIVE, evaluate
from fleet.runbook import host_params, load_runbook, render_probes

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"
PREFIX = os.environ.get("FLEET_HOST_E2E_PREFIX", "flth")
SUBNET = os.environ.get("FLEET_HOST_E2E_SUBNET", "198.18.230.0/24")
FORBIDDEN = ("drop_caches", "kill -9", "pkill", "killall", "rm -rf", "rm -r ")
PARSER_OF = {"disk": "filesystems", "kernel": "kernel_log", "memory": "memory"}


@pytest.fixture(scope="module")
def book():
    return load_runbook("host")


def _output(probe: str, case: str) -> ProbeOutput:
    base = FIXTURES / PARSER_OF[probe] / case
    return ProbeOutput(probe, 0, base.with_suffix(".txt").read_text(), "", 0.1)


def diagnose(book, disk: str | None = "gnu_healthy", kernel: str | None = "dmesg_restricted_user",
             memory: str | None = "proc_root", **overrides):
    """The verdict for facts parsed from these captured cases (None: the probe gave no facts)."""
    params = host_params(book, {}, {k: str(v) for k, v in overrides.items()})
    cases = {"disk": disk, "kernel": kernel, "memory": memory}
    probes = {name: _output(name, case) for name, case in cases.items() if case}
    facts = {name: PARSERS[PARSER_OF[name]](out, params) for name, out in probes.items()}
    for name, case in cases.items():
        if not case:
            probes[name] = ProbeOutput(name, None, "", "", None, error="probe timed out on the host")
    return evaluate(book, facts, probes, params, {"name": "h", "address": "10.0.0.1"})


def _no_forbidden(diagnosis) -> None:
    for line in diagnosis.fix:
        for word in FORBIDDEN:
            assert word not in line, line


# ------------------------------------------------------------------ the runbook itself
def test_runbook_loads_with_its_parameters(book):
    assert book.name == "host"
    assert [p.name for p in book.probes] == ["disk", "kernel", "memory"]
    assert [r.verdict for r in book.rules] == ["disk_full", "inodes_exhausted", "oom_killed", "memory_pressure",
                                               "disk_unchecked", "healthy"]
    defaults = book.defaults()
    assert defaults["disk_threshold_pct"] == 95 and defaults["inode_threshold_pct"] == 95
    assert defaults["oom_window_minutes"] == 60 and defaults["paths"] == ""


def test_probe_commands_quote_paths(book):
    params = host_params(book, {"paths": ["/srv/my data", "/var"]}, {})
    [disk] = [p for p in render_probes(book, params) if p.name == "disk"]
    # the one place inputs are quoted: the line setting them before the probe's shell
    assert "paths='/srv/my data /var';" in disk.command
    params = host_params(book, {}, {"paths": "/; touch /tmp/x"})
    [disk] = [p for p in render_probes(book, params) if p.name == "disk"]
    assert "'/; touch /tmp/x'" in disk.command


def test_probes_are_read_only(book):
    text = "\n".join(p.command for p in book.probes)
    for word in ("rm ", "drop_caches", "kill ", "vacuum", "mount -", "umount", "truncate", "tee ", "dmesg -c", "dmesg -C"):
        assert word not in text
    assert not re.search(r">\s*/(?!dev/null)", text)  # writes nowhere but /dev/null


# ------------------------------------------------------------------ rules on captured facts
def test_disk_full_names_mount_device_use_and_biggest_directories(book):
    d = diagnose(book, disk="gnu_full_root")
    assert d.verdict == "disk_full" and d.severity.value == "critical"
    assert d.summary.startswith("/tmp/flth/lab/var (/dev/loop0) is 100% full, 0K free of 6.4M")
    assert "also at/over 95%: /tmp/flth/lab/data 100%" in d.summary
    evidence = "\n".join(d.evidence)
    assert "/tmp/flth/lab/var: 100% used (6.3M of 6.4M, 0K free), device /dev/loop0, ext4" in evidence
    assert "4.3M\t/tmp/flth/lab/var/lib" in evidence
    assert "1.8M\t/tmp/flth/lab/data/uploads" in evidence
    assert "also: /tmp/flth/lab/inodes: 100% of inodes used" in evidence
    fixes = "\n".join(d.fix)
    assert "sudo du -xh -d1 /tmp/flth/lab/var/lib | sort -h | tail -n 15" in fixes
    assert "sudo du -xh -d1 /tmp/flth/lab/data/uploads | sort -h | tail -n 15" in fixes
    assert "sudo lsof -nP +L1 /tmp/flth/lab/var" in fixes
    # a tmpfs; the size is the operator's to choose: quoted, since a bare `<bigger> /path` is a redirection
    # that would truncate the mount point's path (issue 12)
    assert "sudo mount -o remount,size='<bigger>' /tmp/flth/lab/data" in fixes
    _no_forbidden(d)


def test_disk_full_unprivileged_says_the_du_list_is_partial(book):
    d = diagnose(book, disk="gnu_full_unprivileged")
    assert d.verdict == "disk_full"
    evidence = "\n".join(d.evidence)
    assert "(du did not finish: the list may be partial)" in evidence
    assert "some directories unreadable (no privilege?)" in evidence


def test_disk_full_on_busybox(book):
    d = diagnose(book, disk="busybox_full")
    assert d.verdict == "disk_full"
    assert "/tmp/flth/lab/var (/dev/loop0) is 100% full" in d.summary


def test_macos_devfs_always_at_100_percent_is_no_full_disk(book):
    # macOS df shows devfs on /dev (and autofs maps) 100% full, always: pseudo filesystems,
    # never judged; the real volumes still are (a backup disk at 61%, the data volume at 37%).
    d = diagnose(book, disk="macos_df")
    assert d.verdict == "healthy", d.summary
    assert "not judged (pseudo filesystems, not disks): /dev" in d.evidence
    d = diagnose(book, disk="macos_df", disk_threshold_pct=30)
    assert d.verdict == "disk_full" and d.summary.startswith("/Volumes/Backup Disk (/dev/disk5s1) is 61% full")
    assert d.summary.endswith("also at/over 30%: /System/Volumes/Data 37%")


def test_threshold_and_ignored_types_come_from_parameters(book):
    assert diagnose(book, disk="gnu_full_root", disk_threshold_pct=101).verdict == "inodes_exhausted"
    assert diagnose(book, disk="gnu_full_root", disk_threshold_pct=101, inode_threshold_pct=101).verdict == "healthy"
    assert diagnose(book, disk="gnu_healthy", disk_threshold_pct=20).verdict == "disk_full"  # / is at 23%
    # gnu_ignore_tmpfs was captured with ignore_fstypes=tmpfs: only the ext4 loop device counts
    d = diagnose(book, disk="gnu_ignore_tmpfs", ignore_fstypes="tmpfs")
    assert d.verdict == "disk_full" and "/tmp/flth/lab/data" not in d.summary
    assert "not judged (ignore_fstypes): tmpfs" in d.evidence


def test_inodes_exhausted_names_the_directory_with_most_files(book):
    d = diagnose(book, disk="gnu_full_root", disk_threshold_pct=101)
    assert d.summary.startswith("/tmp/flth/lab/inodes (tmpfs) has used 100% of its inodes (0 of 64 free)")
    assert "although 4.0M of space is free" in d.summary
    assert "  60\t/tmp/flth/lab/inodes/sessions" in d.evidence
    assert any("/tmp/flth/lab/inodes/sessions holds the most files (60)" in f for f in d.fix)
    _no_forbidden(d)


def test_inodes_exhausted_on_busybox_suggests_find(book):
    d = diagnose(book, disk="busybox_full", disk_threshold_pct=101)
    assert d.verdict == "inodes_exhausted"
    # prose and command on separate lines: prose never holds a command (issue 12)
    at = d.fix.index("# without GNU du")
    assert d.fix[at + 1].startswith("sudo find /tmp/flth/lab/inodes -xdev -type d")


@pytest.mark.parametrize("kernel", ["dmesg_root", "busybox_dmesg_root", "syslog_file_user",
                                    "busybox_syslog_file_user"])
def test_oom_killed_names_process_rss_and_cgroup_limit(book, kernel):
    d = diagnose(book, kernel=kernel)
    assert d.verdict == "oom_killed" and d.severity.value == "critical"
    assert "killed 1 process in the last 60 minutes" in d.summary
    assert "pid 17324 (leaky-worker), RSS 53M (anon 48M)" in d.summary
    assert "at the limit of memory cgroup /flth.slice/flth-worker.service (48M)" in d.summary
    assert any("Killed process 17324 (leaky-worker)" in line for line in d.evidence)
    fixes = "\n".join(d.fix)
    # the new limit is the operator's to choose: quoted, a bare `<more than 48M>` is a redirection (issue 12)
    assert "sudo systemctl set-property flth-worker.service MemoryMax='<more than 48M>'" in fixes
    assert "sudo journalctl -u flth-worker.service" in fixes
    _no_forbidden(d)


def test_oom_read_from_a_file_says_dmesg_was_restricted(book):
    d = diagnose(book, kernel="syslog_file_user")
    assert "kernel log: dmesg: read kernel buffer failed: Operation not permitted" in d.evidence
    assert "kernel log read from /var/log/messages instead" in d.evidence


def test_old_oom_kills_fall_outside_the_window(book):
    # dmesg_root_python3: a kill 314 s before the capture
    assert diagnose(book, kernel="dmesg_root_python3").verdict == "oom_killed"
    assert diagnose(book, kernel="dmesg_root_python3", oom_window_minutes=5).verdict == "healthy"
    assert diagnose(book, kernel="dmesg_root", oom_window_minutes=0).verdict == "healthy"


def test_oom_in_a_plain_cgroup_suggests_its_limit_file(book):
    d = diagnose(book, kernel="dmesg_root_python3")
    assert "pid 27338 (python3)" in d.summary and "/flth_oom (32M)" in d.summary
    assert any("raise memory.max (cgroup v2) or memory.limit_in_bytes (v1) of /flth_oom" in f for f in d.fix)


def test_disk_full_outranks_oom_and_lists_it(book):
    d = diagnose(book, disk="gnu_full_root", kernel="dmesg_root")
    assert d.verdict == "disk_full"
    assert any(line.startswith("also: OOM killer: pid 17324 (leaky-worker)") for line in d.evidence)


def test_memory_pressure_below_the_threshold(book):
    d = diagnose(book, mem_available_min_pct=90)  # proc_root: 20430368 of 24684096 kB available, 82.8%
    assert d.verdict == "memory_pressure" and d.severity.value == "warning"
    assert "Only 19G of 24G memory is available (82.8%, below 90%)" in d.summary
    assert "memory: 19G available of 24G (82.8%); no swap" in d.evidence
    assert any("no swap" in f for f in d.fix)
    _no_forbidden(d)


def test_healthy_says_what_it_could_not_check(book):
    d = diagnose(book)
    assert d.verdict == "healthy" and d.fix == ()
    assert "(as far as could be seen: kernel log not readable: OOM kills not checked)" in d.summary
    assert "fullest / at 23%" in d.summary
    assert "kernel log not readable (privilege: user): OOM kills not checked" in d.evidence
    d = diagnose(book, kernel="busybox_dmesg_root", oom_window_minutes=0, disk="busybox_healthy",
                 memory="busybox_user")
    assert d.verdict == "healthy" and "as far as could be seen" not in d.summary


def test_missing_paths_are_reported(book):
    d = diagnose(book, disk="gnu_missing_path")
    assert d.verdict == "healthy"
    assert "df: /srv/nonexistent: No such file or directory" in d.evidence


def test_nothing_to_judge_is_not_healthy(book):
    d = diagnose(book, disk="gnu_missing_path", paths="/srv/nonexistent")  # df found / for the other path
    assert d.verdict == "healthy"
    facts = PARSERS["filesystems"](ProbeOutput("disk", 1, "== df source=gnu exit=1 ==\n"
                                               "df: /srv/data: No such file or directory\n", "", None), {})
    d = evaluate(book, {"disk": facts, "kernel": PARSERS["kernel_log"](_output("kernel", "dmesg_root"), {}),
                        "memory": PARSERS["memory"](_output("memory", "proc_root"), {})},
                 {}, {**book.defaults(), "paths": "/srv/data", "oom_window_minutes": 0}, {})
    assert d.verdict == "disk_unchecked" and d.severity.value == "unknown"
    assert 'for paths "/srv/data": df: /srv/data: No such file or directory' in d.summary


def test_no_facts_is_inconclusive(book):
    d = diagnose(book, disk=None)
    assert d.verdict == INCONCLUSIVE
    assert "disk: probe timed out on the host" in d.evidence


# ------------------------------------------------------------------ odd input never raises
_FRAGMENTS = st.sampled_from([
    "== df source=gnu exit=0 ==", "== df-i source=busybox exit=1 ==", "== statfs-i ==", "== fstypes ==",
    "== du kind=blocks timeout=5 ==", "== du kind=inodes timeout=5 ==", "== du-end exit=124 ==", "== du-end exit=0 ==",
    "mount=/srv/data", "mount=", "2048\t/srv/data", "9\t/srv/data/x", "64 0 /srv", "x y /", "tmpfs /srv/data",
    "tmpfs /a\\040b", "/dev/vda 100 100 0 100% /", "tmpfs - - - - /dev", "tmpfs 10 5 5 50% /a b",
    "Filesystem 1024-blocks Used Available Capacity Mounted on", "df: invalid option -- 'i'",
    "== clock now=1795543934 uptime=2079.72 tz=+0000 ==", "== clock now=x uptime= tz=-0530 ==",
    "== kernel source=dmesg priv=root ==", "== kernel source=file priv=user ==", "== kernel source=journal priv=sudo ==",
    "== kernel-failed source=dmesg priv=user ==", "file=/var/log/kern.log",
    "[ 2050.704666] leaky-worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
    "[ 2050.704840] memory: usage 49152kB, limit 49152kB, failcnt 24",
    "[ 2050.704922] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a/b.service,task=x,pid=1,uid=0",
    "[ 2050.704936] Memory cgroup out of memory: Killed process 17324 (leaky-worker) total-vm:60212kB, "
    "anon-rss:48896kB, file-rss:5384kB, shmem-rss:0kB, UID:0 pgtables:148kB oom_score_adj:0",
    "Out of memory: Killed process 1 (a (b)) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
    "Out of memory: Kill process 9 (java) score 900 or sacrifice child", "Killed process 9 (java)",
    "Feb 29 18:11:45 vm kern.err kernel: [ 1.0] Out of memory: Killed process 3 (x)",
    "2024-13-45T99:00:00+00:00 vm kernel: Killed process 3 (x)", "1795543000.5 vm kernel: Killed process 4 (y)",
    "== meminfo ==", "MemTotal: 0 kB", "MemAvailable: x kB", "MemFree: 5 kB", "== loadavg cpus=0 ==",
    "1.0 2.0 nan 1/2 3", "== clock now=1 uptime=inf tz=+0000 ==", "some avg10=0 avg60=nan", "== psi-memory ==",
    "some avg10=x avg60=1.5", "full", ":", "%", "[", "(", ")",
])
_TEXT = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=30)), max_size=30).map("\n".join)
_PARAMS = st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
    "paths": st.one_of(st.text(max_size=10), st.lists(st.text(max_size=5)), st.none(), st.integers()),
    "ignore_fstypes": st.one_of(st.text(max_size=10), st.lists(st.text(max_size=5)), st.none(), st.integers()),
}))


@pytest.mark.parametrize("parser", sorted(set(PARSER_OF.values())))
@settings(max_examples=100, deadline=None)
@given(stdout=_TEXT, params=_PARAMS, window=st.one_of(st.none(), st.integers(-5, 10**6), st.text(max_size=4)))
def test_host_parsers_never_raise(parser, stdout, params, window):
    import dataclasses

    facts = PARSERS[parser](ProbeOutput(parser, 0, stdout, "", None), params)
    json.dumps(dataclasses.asdict(facts), allow_nan=False)
    if parser == "filesystems":
        for fs in facts.full(window) + facts.inodes_full(window) + facts.judged:
            assert fs.describe and fs.fixes and fs.inode_fixes is not None and fs.describe_inodes
            fs.top_evidence, fs.top_inodes_evidence
        facts.fullest, facts.degraded
    elif parser == "kernel_log":
        for kill in facts.kills_within(window):
            assert kill.describe
        facts.fixes(window), facts.source_note, facts.degraded
    else:
        facts.evidence, facts.available_pct, facts.load_per_cpu


# ------------------------------------------------------------------ real hosts over SSH
HOSTS = ["healthy", "disk_full", "inodes_exhausted", "sudo_password"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the test fleet needs root and Linux namespaces")
    testfleet = pytest.importorskip("testfleet")
    try:
        with testfleet.TestFleet(tmp_path_factory.mktemp("flth") / "tf", scenarios=HOSTS, prefix=PREFIX,
                                 subnet=SUBNET, log=None) as tf:
            yield tf
    except testfleet.TestFleetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def run(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("host-reports")
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "diagnose", "-i", str(fleet.inventory_path), "--known-hosts",
         str(fleet.known_hosts_path), "--ssh-config", "/dev/null", "--runbook", "host", "--out", str(out),
         "--timeout", "60", "--var", "paths=/srv /srv/data", "--var", "oom_window_minutes=0",
         "--var", "mem_available_min_pct=0"],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    [report] = out.glob("*.json")
    doc = json.loads(report.read_text())
    return proc, {h["name"]: h for h in doc["hosts"]}, doc


def test_every_host_gets_its_host_verdict(run):
    from testfleet.scenarios import EXPECTED_HOST

    proc, hosts, doc = run
    assert proc.returncode == 1, proc.stderr  # two sick hosts
    assert {name: h["verdict"] for name, h in hosts.items()} == {name: EXPECTED_HOST[name] for name in HOSTS}
    assert doc["parameters"]["paths"] == "/srv /srv/data"


def test_disk_full_host_names_mount_use_and_what_fills_it(run):
    host = run[1]["disk_full"]
    assert host["summary"].startswith("/srv/data (tmpfs) is 100% full, 0K free of 2.0M")
    evidence = "\n".join(host["evidence"])
    assert "/srv/data: 100% used (2.0M of 2.0M, 0K free), device tmpfs, tmpfs" in evidence
    assert "1.8M\t/srv/data/uploads" in evidence and "256K\t/srv/data/cache" in evidence
    assert any("sudo du -xh -d1 /srv/data/uploads | sort -h" in f for f in host["fix"])
    facts = host["facts"]["disk"]
    assert [fs["mount"] for fs in facts["filesystems"]] == ["/srv", "/srv/data"]  # /srv: the host's bind mount


def test_inodes_exhausted_host_names_mount_and_inode_use(run):
    host = run[1]["inodes_exhausted"]
    assert host["summary"].startswith("/srv/data (tmpfs) has used 100% of its inodes (0 of 64 free)")
    assert any("/srv/data/sessions" in line for line in host["evidence"])
    assert host["facts"]["disk"]["filesystems"][1]["use_pct"] < 95  # space is not the problem


def test_healthy_hosts_judge_what_exists_and_say_what_does_not(run):
    # no /srv/data there: /srv (the host's private bind mount) is judged, the missing path reported
    for name in ("healthy", "sudo_password"):
        host = run[1][name]
        assert host["fix"] == []
        [fs] = host["facts"]["disk"]["filesystems"]
        assert fs["mount"] == "/srv" and fs["judged"]
        assert "df: /srv/data: No such file or directory" in host["evidence"]


def test_kernel_log_access_follows_privilege(run):
    hosts = run[1]
    assert hosts["healthy"]["facts"]["kernel"]["source"] == "dmesg"
    kernel = hosts["sudo_password"]["facts"]["kernel"]  # fleetops without sudo: dmesg restricted
    if kernel["source"] == "none":
        assert "kernel log not readable" in hosts["sudo_password"]["summary"]


def test_no_fix_suggests_forbidden_commands(run):
    for host in run[1].values():
        for line in host["fix"]:
            for word in FORBIDDEN:
                assert word not in line, (host["name"], line)
