"""Fix steps as data, and the one place where they become shell text.

A fix is a tuple of steps. Each step is a frozen dataclass: a command as an argv list, or a
typed action ("start unit X through systemd", "edit line N of file F", "start this process
again from its directory"), plus a prose explanation. Host-supplied values only ever sit in
argv elements or in prose; `render` turns a step into report lines, quoting every argument
with `shlex.quote` and turning prose into one-line `#` comments. So a whole rendered fix,
comments included, can be pasted into a shell and runs exactly the argvs the steps hold, and
nothing else, whatever the host said. `fleet fix` (issue 15) executes the same steps.

One rule for `sudo` (`with_privilege`): a step's argv may start with `sudo` or `sudo -n`. The
report's lines, for a human whose privilege fleet does not know, always read `sudo` (a human can
answer a password prompt; `sudo -n` would only fail for them). `fleet fix` runs the same argv with
the privilege the host's own probes saw: as root without sudo, with passwordless sudo as
`sudo -n` (nothing may wait on a password), and as a plain user not at all.

Where fleet did not see a value a step needs (the venv of a backend that is not running, the
new memory limit), the argument holds a `Blank` instead: it renders as a quoted `<what>` so a
pasted line fails harmlessly, and the step is not `complete` (never executed automatically).
"""

from __future__ import annotations

import enum
import shlex
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Union

from fleet.models import Privilege

# Characters that end or visually rewrite a line in a shell or a terminal: C0/C1 controls
# (\n, \r, \x85 ...), format characters (bidi overrides, zero-width), line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


@dataclass(frozen=True)
class Blank:
    """A value fleet did not see on the host: the operator has to supply it."""

    what: str


@dataclass(frozen=True)
class Word:
    """One argument made of literal text and blanks, e.g. `MemoryMax=` + Blank("more than 48M")."""

    parts: tuple[Union[str, Blank], ...]


Arg = Union[str, Blank, Word]


class Manager(str, enum.Enum):
    """A service manager fleet saw running the service on the host."""

    SYSTEMD = "systemd"
    DOCKER = "docker"


class Verb(str, enum.Enum):
    START = "start"
    RESTART = "restart"
    RELOAD = "reload"
    STATUS = "status"
    LOGS = "logs"


@dataclass(frozen=True)
class Note:
    """Prose only: something to check or decide that is not a command."""

    explain: str
    kind: str = field(default="note", init=False)


@dataclass(frozen=True)
class Command:
    """Run `argv` (from `cwd` when given), its output piped through the `pipe` argvs (read-only filters)."""

    argv: tuple[Arg, ...]
    explain: str = ""
    pipe: tuple[tuple[Arg, ...], ...] = ()
    cwd: Arg | None = None
    kind: str = field(default="command", init=False)


@dataclass(frozen=True)
class Service:
    """Act on a service through the manager the host really runs it under."""

    manager: Manager
    verb: Verb
    name: str
    explain: str = ""
    kind: str = field(default="service", init=False)


@dataclass(frozen=True)
class StartProcess:
    """Start a process again with the argv and working directory read from its /proc entry."""

    argv: tuple[str, ...]
    cwd: str
    user: str | None = None
    explain: str = ""
    kind: str = field(default="start_process", init=False)


@dataclass(frozen=True)
class EditFile:
    """Edit `path` (at `line`); with `old`/`new`, replace exactly that text on that line."""

    path: str
    line: int | None = None
    old: str | None = None
    new: str | None = None
    explain: str = ""
    kind: str = field(default="edit_file", init=False)


@dataclass(frozen=True)
class Signal:
    """Stop processes of this host's own PID namespace by PID (never by a name pattern)."""

    pids: tuple[int, ...]
    explain: str = ""
    kind: str = field(default="signal", init=False)


Step = Union[Note, Command, Service, StartProcess, EditFile, Signal]
STEP_TYPES = (Note, Command, Service, StartProcess, EditFile, Signal)


def visible(text: str) -> str:
    """`text` on one line, every control, format or separator character shown as `<U+XXXX>`."""
    out = []
    for char in str(text):
        if char == "\t":
            out.append(" ")
        elif unicodedata.category(char) in _UNSAFE_CATEGORIES:
            out.append(f"<U+{ord(char):04X}>")
        else:
            out.append(char)
    return "".join(out)


def _clean(text: str) -> bool:
    return not any(unicodedata.category(char) in _UNSAFE_CATEGORIES for char in str(text))


def _quote(arg: Arg) -> str:
    """One shell word for `arg`; blanks show as a quoted `<what>`."""
    if isinstance(arg, Blank):
        return shlex.quote(f"<{arg.what}>")
    if isinstance(arg, Word):
        return "".join(_quote(part) for part in arg.parts if part != "") or "''"
    return shlex.quote(str(arg))


def _texts(arg: Arg) -> Iterable[str]:
    if isinstance(arg, Blank):
        yield arg.what
    elif isinstance(arg, Word):
        for part in arg.parts:
            yield from _texts(part)
    else:
        yield str(arg)


def _blanks(arg: Arg | None) -> bool:
    if isinstance(arg, Blank):
        return True
    return isinstance(arg, Word) and any(isinstance(part, Blank) for part in arg.parts)


def _operand(name: str) -> tuple[str, ...]:
    """A name after a command's options: behind `--` when it could be read as an option."""
    return ("--", name) if name.startswith("-") else (name,)


def service_argvs(step: Service) -> tuple[tuple[str, ...], ...]:
    """The argv(s) of a service action on its manager."""
    name = _operand(step.name)
    if step.manager is Manager.SYSTEMD:
        if step.verb is Verb.LOGS:
            return (("sudo", "journalctl", "-u", step.name, "-n", "50", "--no-pager"),)
        extra = ("--no-pager",) if step.verb is Verb.STATUS else ()
        return (("sudo", "systemctl", step.verb.value, *extra, *name),)
    if step.verb is Verb.LOGS:
        return (("sudo", "docker", "logs", "--tail", "50", *name),)
    if step.verb is Verb.STATUS:
        return (("sudo", "docker", "ps", "-a", "--filter", f"name=^{step.name}$"),)
    verb = "restart" if step.verb is Verb.RELOAD else step.verb.value
    return (("sudo", "docker", verb, *name),)


def argvs(step: Step, privilege: Privilege | None = None) -> tuple[tuple[Arg, ...], ...]:
    """Every argv a step runs, in order: as a human pastes them (`privilege` None), or as `fleet
    fix` runs them with the `privilege` the host's probes saw (see `with_privilege`)."""
    return tuple(with_privilege(argv, privilege) for argv in _written(step))


def _written(step: Step) -> tuple[tuple[Arg, ...], ...]:
    """A step's argvs as the step holds them (`sudo` or `sudo -n` alike)."""
    if isinstance(step, Command):
        return (step.argv, *step.pipe)
    if isinstance(step, Service):
        return service_argvs(step)
    if isinstance(step, StartProcess):
        return (_start_prefix(step) + step.argv,)
    if isinstance(step, EditFile):
        return (("sudoedit", "--", step.path),)
    if isinstance(step, Signal):
        return (("sudo", "kill", *(str(p) for p in step.pids)),) if step.pids else ()
    return ()


def with_privilege(argv: tuple[Arg, ...], privilege: Privilege | None) -> tuple[Arg, ...]:
    """The one rule for the `sudo` in front of a command (written `sudo` or `sudo -n` alike).

    None (a reader whose privilege is unknown): `sudo`. ROOT: no sudo at all, since a root login
    may have none; only a switch to another user (`sudo -u`) keeps it. SUDO: `sudo -n`, so a fix
    run by fleet fails instead of waiting on a password. USER: never run (see `needs_root`).
    """
    if argv[:1] != ("sudo",):
        return argv
    rest = argv[2:] if argv[1:2] == ("-n",) else argv[1:]
    if privilege is None:
        return ("sudo", *rest)
    if privilege is Privilege.USER:
        raise ValueError("a plain user without sudo cannot run this")
    if privilege is Privilege.ROOT and rest[:1] != ("-u",):
        return rest
    return ("sudo", "-n", *rest)


def needs_root(step: Step) -> bool:
    """True when the step runs anything as root (written with `sudo`, or an edit of a file)."""
    return isinstance(step, EditFile) or any(argv[:1] == ("sudo",) for argv in _written(step))


def _start_prefix(step: StartProcess) -> tuple[str, ...]:
    user = ("sudo", "-u", step.user) if step.user and step.user != "root" else ()
    return (*user, "nohup")


def complete(step: Step) -> bool:
    """True when every value of the step was seen on the host (nothing for the operator to fill in)."""
    if isinstance(step, Command):
        return not any(_blanks(a) for argv in argvs(step) for a in argv) and not _blanks(step.cwd)
    return True


def _shell(step: Step, privilege: Privilege | None = None) -> str:
    """The step's shell line (`privilege` as for `argvs`); every argument quoted here and nowhere else."""
    join = lambda argv: " ".join(_quote(a) for a in argv)  # noqa: E731 - one expression, used thrice
    lines = argvs(step, privilege)
    if isinstance(step, Command):
        line = " | ".join(join(argv) for argv in lines)
        return f"cd -- {_quote(step.cwd)} && {line}" if step.cwd is not None else line
    if isinstance(step, StartProcess):
        # Detached from the operator's session, output to /dev/null: the backend logs on its own.
        return f"cd -- {_quote(step.cwd)} && {join(lines[0])} >/dev/null 2>&1 &"
    return " && ".join(join(argv) for argv in lines)


def _explain(step: Step) -> str:
    if isinstance(step, EditFile):
        where = f"line {step.line} of {step.path}" if step.line else step.path
        text = f'{where}: replace "{step.old}" with "{step.new}"' if step.old is not None and step.new is not None \
            else f"at {where}"
        return f"{step.explain}: {text}" if step.explain else text
    return step.explain


def render(step: Step) -> tuple[str, ...]:
    """The report lines of one step: its explanation as a `#` comment, then its shell line.

    A command whose arguments hold a control or invisible character is not shown as a runnable
    line (the terminal or a paste could show or run something else): it is commented out with
    those characters made visible; the JSON report keeps its argv.
    """
    lines = []
    explain = _explain(step)
    if explain:
        lines.append(f"# {visible(explain).strip()}")
    if isinstance(step, Note):
        return tuple(lines)
    texts = [t for argv in argvs(step) for a in argv for t in _texts(a)]
    if isinstance(step, (Command, StartProcess)) and step.cwd is not None:
        texts.extend(_texts(step.cwd))
    if not texts:
        return tuple(lines)
    shell = _shell(step)
    if all(_clean(t) for t in texts):
        lines.append(shell)
    else:
        lines.append(f"# not shown as a command, an argument holds control characters: {visible(shell)}")
    return tuple(lines)


def render_all(steps: Iterable[Step]) -> tuple[str, ...]:
    """The report lines of a whole fix."""
    return tuple(line for step in steps for line in render(step))


def flatten(value: object) -> tuple[Step, ...]:
    """Steps from a step, None, or (nested) lists/tuples of them; anything else is not a step."""
    if value is None:
        return ()
    if isinstance(value, STEP_TYPES):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(step for item in value for step in flatten(item))
    raise TypeError(f"not a fix step: {type(value).__name__}")


def shell_line(step: Step, privilege: Privilege | None = None) -> str | None:
    """The shell line `fleet fix` runs for a step with the `privilege` the host's probes saw (None:
    as the report prints it), quoted by the same helper as the report's lines.

    None when the step has nothing to run (prose), holds a value fleet did not see (a `Blank`),
    or an argument with a control or invisible character (never executed, only shown).
    """
    if isinstance(step, Note) or not complete(step) or not argvs(step):
        return None
    texts = [t for argv in argvs(step) for a in argv for t in _texts(a)]
    if isinstance(step, (Command, StartProcess)) and step.cwd is not None:
        texts.extend(_texts(step.cwd))
    return _shell(step, privilege) if all(_clean(t) for t in texts) else None


def join(argv: Iterable[Arg]) -> str:
    """An argv as one shell line, every argument quoted (for `fleet fix`'s own constant programs)."""
    return " ".join(_quote(a) for a in argv)
