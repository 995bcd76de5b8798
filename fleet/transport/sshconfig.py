"""ssh_config as OpenSSH reads it, including `Include`, which paramiko's parser ignores.

The files are OpenSSH's (and fabric's): a `-F`-style path alone, else the user's then the
system's; the text of each, with every `Include` expanded in place, goes to paramiko's parser
once per run.
"""

from __future__ import annotations

import glob
import os
import re

from fleet.errors import InputError
from fleet.transport.sshlib import enable_match_exec, paramiko

USER_SSH_CONFIG, SYSTEM_SSH_CONFIG = "~/.ssh/config", "/etc/ssh/ssh_config"
# `Match ... exec "command"`: paramiko runs it with invoke, imported only for such a config.
_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.I | re.M)
# OpenSSH stops at this depth too; it also stops an Include cycle.
MAX_INCLUDE_DEPTH = 16
_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.+?)\s*$", re.I)


def load_ssh_config(path: str | None) -> paramiko.SSHConfig:
    """The run's ssh_config: `path` alone if given (like `ssh -F`), else ~/.ssh/config then /etc/ssh/ssh_config."""
    if path:
        if not os.path.isfile(path) and path != os.devnull:
            raise InputError("ssh_config file not found", path)
        files = [(path, os.path.dirname(os.path.abspath(path)))]
    else:
        files = [(os.path.expanduser(USER_SSH_CONFIG), os.path.expanduser("~/.ssh")), (SYSTEM_SSH_CONFIG, "/etc/ssh")]
    text = "".join(expand(p, base) for p, base in files if os.path.exists(p))
    if _MATCH_EXEC.search(text):
        enable_match_exec()
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as exc:  # noqa: BLE001 - paramiko raises bare Exception subclasses for bad config
        raise InputError(f"bad ssh_config: {exc}", path or "~/.ssh/config") from None


def expand(path: str, base: str, depth: int = 0) -> str:
    """The file's text with `Include` lines replaced by the files they name (globs, ~, relative to `base`)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(f"Include nested deeper than {MAX_INCLUDE_DEPTH} (a cycle?)", path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines(keepends=True)
    except OSError as exc:
        raise InputError(f"cannot read ssh_config: {exc.strerror}", path) from None
    out = []
    for line in lines:
        match = _INCLUDE.match(line)
        if not match:
            out.append(line if line.endswith("\n") else line + "\n")
            continue
        for pattern in match.group(1).split():
            pattern = os.path.expanduser(pattern.strip('"'))
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            for included in sorted(glob.glob(pattern)):
                if os.path.isfile(included):
                    out.append(expand(included, base, depth + 1))
    return "".join(out)


def proxy_command(config: paramiko.SSHConfig, name: str, port: int, user: str) -> str | None:
    """The ProxyCommand ssh_config gives `name`, its %p and %r the port and user the connection
    really uses (the inventory's win): paramiko's public lookup expands them from ssh_config alone.
    Seeding its lookup with them is what OpenSSH does with values from the command line."""
    command = config._lookup(name, {"port": str(port), "user": user}, final=True).get("proxycommand")
    return None if command is None or command.strip().lower() == "none" else command
