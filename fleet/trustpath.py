"""Whether a path is the user's own: files other users could have planted or could swap are not trusted.

fleet often runs as root. A `fleet.toml`, a `./runbooks/` or a report directory that another user
can write is a way for that user to choose what root runs or overwrites (the class of Ansible's
CVE-2018-10875, world-writable working directories).
"""

from __future__ import annotations

import grp
import os
import stat
import sys

from fleet.sanitize import strip_control

_warned: set[str] = set()


def others_can_write(path: str | os.PathLike, in_shared_dir_ok: bool = True) -> str | None:
    """Why users other than the caller (and root) could change `path` or what it holds; None if they cannot.

    The path itself must be the caller's (or root's) and writable by no one else. Every directory
    above it too, except that a sticky one (like /tmp) is fine: others cannot replace an entry of
    it that is not theirs. Without `in_shared_dir_ok`, the directory holding `path` may not be
    such a one either (a working directory others can write: what is found there may be theirs).
    A path that does not exist yet is judged by the directories above it.
    """
    target = os.path.realpath(os.fspath(path))
    strict = {target} if in_shared_dir_ok else {target, os.path.dirname(target)}
    current = target
    while True:
        try:
            info = os.stat(current)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            return f"{current} cannot be checked ({exc.strerror})"
        if info is not None:
            if info.st_uid not in (os.geteuid(), 0):
                return f"{current} belongs to another user (uid {info.st_uid})"
            if _writable_by_others(info) and (current in strict or not info.st_mode & stat.S_ISVTX):
                return f"{current} can be written by other users (mode {stat.S_IMODE(info.st_mode):o})"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _writable_by_others(info: os.stat_result) -> bool:
    if info.st_mode & stat.S_IWOTH:
        return True
    if not info.st_mode & stat.S_IWGRP:
        return False
    # Group-writable is only the caller's when the group is the caller's own, with no other member.
    try:
        members = grp.getgrgid(info.st_gid).gr_mem
    except KeyError:
        return True
    return info.st_gid != os.getegid() or bool(members)


def warn_once(message: str) -> None:
    """One warning line on stderr per distinct message (fleet's warnings are about files, said once)."""
    if message not in _warned:
        _warned.add(message)
        sys.stderr.write(f"fleet: warning: {' '.join(strip_control(message).split())}\n")
