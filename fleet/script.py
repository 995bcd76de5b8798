"""The probe script: many probes composed into one POSIX sh script, and its output cut back apart.

One script per host means one SSH exec and one round trip. Each probe's output is framed by
marker lines carrying a random per-run token. The token is a shell variable that is never
exported, and the script travels on stdin, so no probe (nor anything it reads, such as a log
file) can print a marker line that the splitter would believe.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass

from fleet.models import ProbeOutput
from fleet.params import ENV_PREFIX, LINE_PREFIX

#: Bytes of stdout a probe may send before the host side cuts it off.
DEFAULT_PROBE_CAP = 1024 * 1024

# GNU and BusyBox `timeout` exit with 124 when the time limit is reached.
_TIMEOUT_EXIT = 124


@dataclass(frozen=True)
class SharedStep:
    """A command whose output several probes read: run once per script, before the first of them,
    and handed to each on fd 6 (through a pipe: nothing is written on the host)."""

    name: str
    command: str
    timeout_s: float
    libraries: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeCommand:
    """A rendered probe, ready to be put into a script."""

    name: str
    command: str
    timeout_s: float = 10.0
    # (parameter, value if nothing is found) this probe discovers for the probes after it.
    exports: tuple[tuple[str, str], ...] = ()
    # Environment variables the command reads (secret parameters): set by the script, exported
    # to the probes, never written on a command line.
    env: tuple[tuple[str, str], ...] = ()
    # Shared shell (functions) run before the command: each text is sent once per script.
    libraries: tuple[str, ...] = ()
    # The shared output this probe reads on fd 6, if any.
    reads: SharedStep | None = None


def new_marker() -> str:
    """A fresh unguessable section marker for one run."""
    return "FLEET" + secrets.token_hex(16)


_PREAMBLE = r"""
# Sent by fleet on stdin. Read-only: it only looks at the host.
# Sets fleet_t (no command substitution: each would fork a subshell, twice per probe).
fleet_now() { read fleet_t fleet_rest 2>/dev/null </proc/uptime || fleet_t=$(date +%s); }
if timeout 5 true </dev/null >/dev/null 2>&1; then fleet_to=timeout; else fleet_to=; fi
if printf x | head -c 1 >/dev/null 2>&1; then fleet_cap="head -c $fleet_capn"; else fleet_cap=cat; fi
if [ "$(id -u 2>/dev/null)" = 0 ]; then FLEET_PRIV=root; FLEET_SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null >/dev/null 2>&1; then FLEET_PRIV=sudo; FLEET_SUDO='sudo -n'
else FLEET_PRIV=user; FLEET_SUDO=; fi
export FLEET_PRIV FLEET_SUDO
# One write per marker and stream: each write can become an SSH packet of its own.
fleet_mark() { printf "$1"'%s %s\n' "$fleet_m" "$2"; printf "$1"'%s %s\n' "$fleet_m" "$2" >&2; }
fleet_probe() {
  fleet_mark '' "begin $1"
  fleet_now; fleet_t0=$fleet_t
  # The probe's exit code comes back on fd 3 while its stdout and its stderr each go through a
  # cap (stderr by way of fd 5); fds 3, 4 and 5 are closed for the probe itself so it cannot
  # write a forged exit code.
  { fleet_rc=$( { { { $fleet_to ${fleet_to:+"$2"} sh -c "$3" </dev/null 2>&1 >&5 3>&- 4>&- 5>&-; echo $? >&3; } | $fleet_cap >&2; } 5>&1 | $fleet_cap >&4; } 3>&1 ); } 4>&1
  fleet_now; fleet_t1=$fleet_t
  fleet_mark '\n' "end $1 ${fleet_rc:-255} $fleet_t0 $fleet_t1"
}
fleet_mark '' "meta priv=$FLEET_PRIV timeout=${fleet_to:-none}"
"""


def _exporting(probe: ProbeCommand, seconds: int, command: str, feed: str = "", redirect: str = "") -> list[str]:
    """Run a discovering probe with its output held, print it, and read its `param NAME=VALUE`
    lines into `FLEET_D_NAME` for the probes after it.

    The output is read by `read` and `case` only, never evaluated, and each variable starts
    with its fallback value, so a probe that finds nothing (or never ends) leaves that.
    """
    lines = []
    for name, fallback in probe.exports:
        lines.append(f"{ENV_PREFIX}{name}={shlex.quote(fallback)}; export {ENV_PREFIX}{name}")
    lines.append(f"fleet_out=$({feed}fleet_probe {probe.name} {seconds} {command}{redirect})")
    lines.append("printf '%s\\n' \"$fleet_out\"")
    lines.append("while IFS= read -r fleet_l; do case $fleet_l in")
    for name, _ in probe.exports:
        prefix = shlex.quote(f"{LINE_PREFIX}{name}=")
        lines.append(f"  {prefix}?*) {ENV_PREFIX}{name}=${{fleet_l#{prefix}}} ;;")
    lines += ["esac; done <<FLEET_DISCOVERED", "$fleet_out", "FLEET_DISCOVERED"]
    return lines


def compose(probes: list[ProbeCommand], marker: str, cap: int = DEFAULT_PROBE_CAP) -> str:
    """Compose probes into one sh script whose output `split` can cut apart again."""
    lines = [f"fleet_m={marker}", f"fleet_capn={cap + 1}"]
    for name, value in dict(pair for probe in probes for pair in probe.env).items():
        lines.append(f"{name}={shlex.quote(value)}; export {name}")
    # Shared shell is held once in a variable of the script and put before each probe using it
    # (`sh -c` inherits no functions): one copy on the wire however many probes use it.
    library_vars: dict[str, str] = {}
    steps = [probe.reads for probe in probes if probe.reads is not None]
    for text in (text for unit in (*probes, *steps) for text in unit.libraries):
        if text not in library_vars:
            library_vars[text] = f"fleet_lib{len(library_vars) + 1}"
            body = text if text.endswith("\n") else text + "\n"
            lines.append(f"{library_vars[text]}={shlex.quote(body)}")

    def word(libraries: tuple[str, ...], command: str) -> str:
        # One word: the libraries' variables, expanded by the script, then the quoted command.
        prefix = "".join(f"${library_vars[text]}" for text in libraries)
        return (f'"{prefix}"' if prefix else "") + shlex.quote(command)

    lines.append(_PREAMBLE.strip())
    shared: set[str] = set()
    for probe in probes:
        seconds = max(1, int(round(probe.timeout_s)))
        command = word(probe.libraries, probe.command)
        feed = redirect = ""
        if probe.reads is not None:
            step = probe.reads
            if step.name not in shared:
                shared.add(step.name)
                limit = max(1, int(round(step.timeout_s)))
                lines.append(f"fleet_s_{step.name}=$($fleet_to ${{fleet_to:+{limit}}} sh -c "
                             f"{word(step.libraries, step.command)} </dev/null 2>/dev/null)")
            feed, redirect = f"printf '%s\\n' \"$fleet_s_{step.name}\" | ", " 6<&0 </dev/null"
        if probe.exports:
            lines += _exporting(probe, seconds, command, feed, redirect)
        else:
            lines.append(f"{feed}fleet_probe {probe.name} {seconds} {command}{redirect}")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SplitOutput:
    """The probes cut out of a script's output, plus what the script said about the host."""

    probes: dict[str, ProbeOutput]
    meta: dict[str, str]


def _sections(text: str, marker: str) -> tuple[dict[str, tuple[str, list[str] | None]], dict[str, str]]:
    """Map probe name to (body, end fields or None if the probe never ended)."""
    line_re = re.compile(rf"^{re.escape(marker)} (begin|end|meta) ?(.*)$", re.M)
    sections: dict[str, tuple[str, list[str] | None]] = {}
    meta: dict[str, str] = {}
    current: str | None = None
    start = 0
    for match in line_re.finditer(text):
        kind, rest = match.group(1), match.group(2).split()
        if kind == "meta":
            meta.update(field.split("=", 1) for field in rest if "=" in field)
        elif kind == "begin" and rest:
            current, start = rest[0], match.end() + 1
        elif kind == "end" and rest and rest[0] == current:
            # The script writes one newline of its own before the end marker.
            body = text[start : match.start()]
            sections[current] = (body[:-1] if body.endswith("\n") else body, rest[1:])
            current = None
    if current is not None:
        sections[current] = (text[start:], None)
    return sections, meta


def _seconds(t0: str, t1: str) -> float | None:
    try:
        return round(max(0.0, float(t1) - float(t0)), 3)
    except ValueError:
        return None


def split(stdout: str, stderr: str, marker: str, expected: list[str], cap: int = DEFAULT_PROBE_CAP,
          cut_reason: str = "") -> SplitOutput:
    """Cut a script's output back into one ProbeOutput per expected probe.

    A probe that never started or never ended (the host hung up, the deadline passed) gets
    exit_code None and `cut_reason` as its error, so rules never read it as a result.
    """
    out_sections, meta = _sections(stdout, marker)
    err_sections, _ = _sections(stderr, marker)
    probes: dict[str, ProbeOutput] = {}
    for name in expected:
        body, end = out_sections.get(name, ("", None))
        err_body = err_sections.get(name, ("", None))[0]
        if len(err_body) > cap:  # capped on the host too; a host that ignores the cap gets it here
            err_body = err_body[:cap]
        truncated = len(body.encode("utf-8", "replace")) > cap
        if truncated:
            body = body.encode("utf-8", "replace")[:cap].decode("utf-8", "replace")
        if end is None:
            reason = cut_reason or "the script ended before this probe finished"
            if name not in out_sections:
                reason = cut_reason or "the script ended before this probe started"
            probes[name] = ProbeOutput(name, None, body, err_body, None, truncated, error=reason)
            continue
        rc_text, t0, t1 = (end + ["", "", ""])[:3]
        exit_code = int(rc_text) if rc_text.isdigit() else None
        error = ""
        if exit_code == _TIMEOUT_EXIT and meta.get("timeout") != "none":
            error = "probe timed out on the host"
        elif exit_code is None:
            error = "probe exit code unreadable"
        probes[name] = ProbeOutput(name, exit_code, body, err_body, _seconds(t0, t1), truncated, error)
    return SplitOutput(probes, meta)
