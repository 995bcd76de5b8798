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
from fleet.params import Resolved, Source
from fleet.runbook import Runbook, resolve_params
from fleet.script import new_marker

# A newline in a host name or value would end the comment line and run the rest: never let one through.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _source(resolved: Resolved, name: str) -> str:
    """Where a parameter's value comes from; an open one is decided by the host as the script runs."""
    if name in resolved.open:
        return "discovered on the host when the script runs (this value if nothing is found)"
    source = resolved.sources.get(name, Source.INVENTORY)
    return "runbook default" if source is Source.DEFAULT else source.value


def dry_run(hosts: Sequence[Host], runbook: Runbook, options: RunOptions,
            become: Mapping[str, str]) -> str:
    """The script of each distinct parameter set (shown for its first host), each with its comment head.

    `become`: host name -> the user the script runs as through sudo (absent: no become).
    """
    params = {h.name: resolve_params(runbook, h.vars, options.overrides) for h in hosts}
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
        resolved = params[first.name]
        head += [f"  {name}={_one_line(value)}: {_source(resolved, name)}"
                 for name, value in resolved.values.items()]
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
