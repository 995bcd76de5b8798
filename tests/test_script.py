"""The probe script's framing, run by a real `sh`: output cut per probe, exit codes and markers unforgeable."""

from __future__ import annotations

import subprocess

import pytest

from fleet.script import ProbeCommand, compose, new_marker, split


def run_script(probes: list[ProbeCommand], cap: int = 1000, shell: str = "sh"):
    marker = new_marker()
    proc = subprocess.run([shell, "-s"], input=compose(probes, marker, cap).encode(), capture_output=True,
                          timeout=30)
    return split(proc.stdout.decode(), proc.stderr.decode(), marker, [p.name for p in probes], cap=cap)


SHELLS = ["sh", "bash"]


@pytest.mark.parametrize("shell", SHELLS)
def test_each_probe_gets_its_own_output_exit_code_and_stderr(shell):
    result = run_script([ProbeCommand("a", "echo hello; echo oops >&2; exit 3"),
                         ProbeCommand("b", "printf 'no newline'"),
                         ProbeCommand("c", "printf 'two\\n\\n'")], shell=shell)
    a, b, c = result.probes["a"], result.probes["b"], result.probes["c"]
    assert (a.stdout, a.stderr, a.exit_code) == ("hello\n", "oops\n", 3)
    assert (b.stdout, b.exit_code) == ("no newline", 0)
    assert c.stdout == "two\n\n"
    assert result.meta["priv"] in ("root", "sudo", "user")


def test_busybox_sh_runs_the_script():
    if subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True).returncode:
        pytest.skip("busybox not installed")
    marker = new_marker()
    probes = [ProbeCommand("a", "echo hi; exit 4")]
    proc = subprocess.run(["busybox", "sh", "-s"], input=compose(probes, marker).encode(), capture_output=True)
    out = split(proc.stdout.decode(), proc.stderr.decode(), marker, ["a"])
    assert (out.probes["a"].stdout, out.probes["a"].exit_code) == ("hi\n", 4)


def test_forged_markers_and_exit_codes_are_ignored():
    forged = "FLEET" + "0" * 32
    result = run_script([
        ProbeCommand("a", f"echo '{forged} end a 0 0 0'; echo 'FLEET end a 0'; echo 9 >&3; exit 5"),
        ProbeCommand("b", "echo fine")])
    assert result.probes["a"].exit_code == 5
    assert forged in result.probes["a"].stdout
    assert result.probes["b"].stdout == "fine\n"


def test_probe_cannot_read_the_marker():
    marker = new_marker()
    probes = [ProbeCommand("env", "env; set")]
    proc = subprocess.run(["sh", "-s"], input=compose(probes, marker).encode(), capture_output=True)
    out = split(proc.stdout.decode(), proc.stderr.decode(), marker, ["env"])
    assert marker not in out.probes["env"].stdout


def test_output_is_capped_on_the_host_and_marked():
    result = run_script([ProbeCommand("big", "yes | head -c 100000"), ProbeCommand("after", "echo ok")], cap=1000)
    assert result.probes["big"].truncated
    assert len(result.probes["big"].stdout) == 1000
    assert result.probes["after"].stdout == "ok\n"


def test_probe_timeout_is_enforced_on_the_host():
    result = run_script([ProbeCommand("slow", "sleep 30", timeout_s=1), ProbeCommand("after", "echo ok")])
    assert result.probes["slow"].error == "probe timed out on the host"
    assert result.probes["after"].stdout == "ok\n"


def test_probe_stdin_is_not_the_script():
    result = run_script([ProbeCommand("reader", "cat; echo done"), ProbeCommand("after", "echo still here")])
    assert result.probes["reader"].stdout == "done\n"
    assert result.probes["after"].stdout == "still here\n"


def test_cut_off_output_marks_unfinished_probes():
    marker = new_marker()
    stdout = f"{marker} begin a\nhalf a line"
    out = split(stdout, "", marker, ["a", "b"], cut_reason="deadline passed")
    assert out.probes["a"].exit_code is None and out.probes["a"].stdout == "half a line"
    assert out.probes["a"].error == "deadline passed"
    assert out.probes["b"].exit_code is None and not out.probes["b"].ran
