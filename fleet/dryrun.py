"""`fleet diagnose --dry-run`: the exact script fleet would send, connecting to nothing.

The output is itself a script: `fleet diagnose -i INV --limit web01 --dry-run | ssh web01 sh -s`
runs on web01 what fleet would run. Its head is `#` comment lines naming the host, how fleet
starts the script (`sh -s`, or through sudo for become) and every parameter with where its value
came from; the comments are one line each whatever the values hold, so nothing in them runs.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from fleet.diagnose import RunOptions, host_scripts
from fleet.models import Connection, Host
from fleet.runbook import Runbook, host_params
from fleet.script import new_marker

# A newline in a host name or value would end the comment line and run the rest: never let one through.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def param_sources(runbook: Runbook, host: Host, overrides: Mapping[str, str]) -> dict[str, str]:
    """Where each parameter's value came from, by the precedence host_params applies."""
    return {p.name: "--var" if p.name in overrides else "inventory" if p.name in host.vars else "runbook default"
            for p in runbook.parameters}


def dry_run(hosts: Sequence[Host], runbook: Runbook, options: RunOptions,
            become: Mapping[str, str]) -> str:
    """The script of each distinct parameter set (shown for its first host), each with its comment head.

    `become`: host name -> the user the script runs as through sudo (absent: no become).
    """
    params = {h.name: host_params(runbook, h.vars, options.overrides) for h in hosts}
    scripts = host_scripts(runbook, params, new_marker(), options.timeout_s)
    by_script: dict[bytes, list[Host]] = {}
    for host in hosts:
        by_script.setdefault(scripts[host.name], []).append(host)
    parts = []
    for script, group in by_script.items():
        first = group[0]
        head = [f"fleet diagnose --dry-run: the script fleet sends to {first.name} ({_where(first)})",
                f"runbook {runbook.name}; fleet runs it as: {_command(become.get(first.name))}, script on stdin"]
        if len(group) > 1:
            head.append(f"the same script goes to {len(group) - 1} more host(s): "
                        + ", ".join(h.name for h in group[1:]))
        head.append("parameters (value: where it came from):")
        sources = param_sources(runbook, first, options.overrides)
        head += [f"  {name}={_one_line(value)}: {sources.get(name, 'inventory')}"
                 for name, value in params[first.name].items()]
        parts.append("".join(f"# {_CONTROL.sub(' ', line)}\n" for line in head) + script.decode())
    return "\n".join(parts)


def _where(host: Host) -> str:
    if host.connection is Connection.LOCAL:
        return "local connection"
    return f"{host.user + '@' if host.user else ''}{host.address}{':' + str(host.port) if host.port else ''}"


def _command(become_user: str | None) -> str:
    if not become_user:
        return "sh -s"
    target = f"-u {become_user} " if become_user != "root" else ""
    return f"sudo -n {target}-- sh -s (become)"


def _one_line(value: Any) -> str:
    # repr escapes newlines and control characters: a value cannot end the comment line.
    return repr(value) if isinstance(value, str) else str(value)
