"""The connection settings fleet reads from a host's Ansible variables besides address, port, user
and key: become (sudo as whom) and ProxyJump/ProxyCommand in the ssh arguments Ansible passes to ssh."""

from __future__ import annotations

import shlex
from typing import Any, Mapping

from fleet.models import SSH_ARG_VARS, Jump, ProxyKind


def become_user(variables: Mapping[str, Any]) -> str:
    """Whom `ansible_become` runs as (`ansible_become_user`, else root); "" without become."""
    if not _truthy(variables.get("ansible_become")):
        return ""
    return str(variables.get("ansible_become_user") or "root")


def jump(variables: Mapping[str, Any]) -> Jump | None:
    """The first ProxyJump (`-J`, `-o ProxyJump=`) or ProxyCommand in the host's ssh arguments
    (`ansible_ssh_args`, `ansible_ssh_common_args`, `ansible_ssh_extra_args`, in ssh's order: the
    first given wins). Raises ValueError for arguments that cannot be split like a shell's."""
    args = " ".join(str(variables.get(name) or "") for name in SSH_ARG_VARS)
    words = shlex.split(args) if args.strip() else []
    for i, word in enumerate(words):
        if word == "-J" and i + 1 < len(words):
            return Jump(ProxyKind.JUMP, words[i + 1])
        if word.startswith("-J") and len(word) > 2:
            return Jump(ProxyKind.JUMP, word[2:])
        option = words[i + 1] if word == "-o" and i + 1 < len(words) else word[2:] if word.startswith("-o") else ""
        key, _, value = option.replace("=", " ", 1).partition(" ")
        if key.lower() in ("proxyjump", "proxycommand") and value.strip():
            return Jump(ProxyKind(key.lower()), value.strip())
    return None


def _truthy(value: object) -> bool:
    """Ansible's booleans: true/yes/on/1 in any case, or a real bool."""
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")
