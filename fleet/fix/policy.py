"""What `fleet fix` may ever run: risk levels, and the commands it never automates whatever the flags.

The never-automated list is the issue's: they change production in ways a 502 does not justify
(`pkill -f` also matches the SSH session running it; `pip install` changes the host from the
network; `docker-compose up` can recreate containers), or they tie up or wait on a terminal.
They stay in the plan as manual steps, printed for a human to judge.
"""

from __future__ import annotations

import enum
import posixpath
from typing import Iterable

from fleet import fixes


class Risk(str, enum.Enum):
    """How much a remedy can hurt; `manual` is never run by fleet."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    MANUAL = "manual"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2, Risk.MANUAL: 3}
# Options that take a value in a privilege/launcher prefix, so the operand after them is skipped too.
_PREFIX_WITH_VALUE = {"sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"}, "nohup": set(), "env": set(),
                      "nice": {"-n"}, "ionice": {"-c", "-n"}, "timeout": set(), "setsid": set()}
_INTERACTIVE = {"nano", "vi", "vim", "emacs", "less", "more", "top", "htop", "watch", "sudoedit", "mc", "screen",
                "tmux", "ssh", "mysql", "psql", "python", "python3", "bash", "sh", "zsh"}
_FOLLOW = {"-f", "-F", "--follow", "--follow=name", "--follow=descriptor"}


def allowed(risk: Risk, ceiling: Risk) -> bool:
    """True when a remedy of `risk` may run under `--allow-risk ceiling` (manual never may)."""
    return risk is not Risk.MANUAL and risk.rank <= ceiling.rank


def _command(argv: tuple[str, ...]) -> tuple[str, ...]:
    """argv without the launchers in front of the real command (sudo -u x, nohup, env, nice...)."""
    rest = list(argv)
    while rest and posixpath.basename(rest[0]) in _PREFIX_WITH_VALUE:
        takes = _PREFIX_WITH_VALUE[posixpath.basename(rest.pop(0))]
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            option = rest.pop(0)
            if option in takes and rest:
                rest.pop(0)
    return tuple(rest)


def forbidden(argv: Iterable[object], detached: bool = False) -> str | None:
    """Why fleet never runs this argv automatically, or None when it may.

    `detached`: the argv is a process started again from its /proc entry, in the background with
    no terminal (fleet.fixes.StartProcess), so an interpreter there is the backend, not a shell.
    """
    words = tuple(str(a) for a in argv)
    if any("drop_caches" in w for w in words):
        return "writes to /proc/sys/vm/drop_caches"
    command = _command(words)
    if not command:
        return None
    name, args = posixpath.basename(command[0]), command[1:]
    if name in ("pkill", "killall", "pgrep"):
        return f"{name} acts on a name pattern (with -f it also matches the SSH session running it)"
    if name == "kill" and (any(a in ("-9", "-KILL", "-SIGKILL") for a in args)
                           or any(not a.lstrip("-").isdigit() for a in args if not a.startswith("-"))):
        return "kill -9 or kill by something else than a process id"
    if name.startswith("pip") or (name.startswith("python") and args[:2] == ("-m", "pip")):
        if "install" in args:
            return "pip install changes the host from the network"
    if name == "docker-compose" and "up" in args or name == "docker" and args[:2] == ("compose", "up"):
        return "docker-compose up can recreate containers"
    if name in ("tail", "journalctl") and _FOLLOW & set(args) or name == "docker" and "logs" in args and \
            _FOLLOW & set(args):
        return f"{name} -f never ends"
    if name in _INTERACTIVE and not detached:
        return f"{name} is interactive or runs arbitrary code"
    return None


def _wrong_type(step: fixes.Step) -> str | None:
    """A value of the wrong kind for what the step does (facts are untrusted; a template renders text)."""
    if isinstance(step, fixes.EditFile) and not posixpath.isabs(step.path):
        return f"the file to edit is not an absolute path: {step.path!r}"
    if isinstance(step, fixes.EditFile) and step.line is not None and (type(step.line) is not int or step.line < 1):
        return f"the line to edit is not a line number: {step.line!r}"
    if isinstance(step, fixes.Signal) and not all(type(p) is int and p > 1 for p in step.pids):
        return f"not process ids: {step.pids!r}"
    if isinstance(step, fixes.StartProcess) and (not step.argv or not posixpath.isabs(step.argv[0] or "")
                                                 or not posixpath.isabs(step.cwd)):
        return "a start without an absolute program and working directory"
    if isinstance(step, fixes.Service) and not step.name.strip():
        return "a service action without a service name"
    return None


def step_problem(step: fixes.Step) -> str | None:
    """Why a fix step cannot be executed automatically, or None when it can (prose is skipped, not a problem)."""
    if isinstance(step, fixes.Note):
        return None
    wrong = _wrong_type(step)
    if wrong:
        return wrong
    if isinstance(step, fixes.EditFile) and (step.old is None or step.new is None or not step.line):
        return f"an edit of {step.path} without the exact old and new text needs a human"
    if isinstance(step, fixes.EditFile):
        values = (step.path, step.old, step.new)
        return None if all(fixes.visible(v) == v for v in values) else "an edit with control characters"
    if fixes.shell_line(step) is None:
        return "a value fleet did not see on the host, or an argument with control characters"
    for argv in fixes.argvs(step):
        reason = forbidden((a for a in argv if isinstance(a, str)), isinstance(step, fixes.StartProcess))
        if reason:
            return reason
    return None
