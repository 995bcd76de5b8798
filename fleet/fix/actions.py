"""Fix steps as the exact commands `fleet fix` sends to a host.

Each action is an argv; its shell line comes from fleet.fixes (the one quoting helper), and that
line alone is the script sent to the host's `sh -s`. Typed steps that need more than one command
on the host (edit a line keeping a backup, wait for a stopped process, take a lock) run a
constant POSIX `sh -c` program that fleet ships, with every host value passed as a positional
argument: the program text never holds host data, so no value can change what it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet import fixes
from fleet.models import Privilege

# Replace `old` by `new` on line N of a file, only if that line holds `old` exactly once; the
# original is copied to the backup directory first and the file is rewritten in place (same
# inode, so a symlinked site file stays a symlink). Exit 3: the line is not as planned.
EDIT_SH = r'''set -eu
f=$1 n=$2 old=$3 new=$4 dir=$5
umask 077
mkdir -p -- "$dir"
b=$dir/$(printf '%s' "$f" | tr '/' '%')
[ -e "$b.orig" ] || cp -p -- "$f" "$b.orig"
OLD=$old NEW=$new awk -v n="$n" '
  NR == n {
    o = ENVIRON["OLD"]; i = index($0, o); rest = substr($0, i + length(o))
    if (i == 0 || index(rest, o) > 0) { bad = 1; exit 3 }
    $0 = substr($0, 1, i - 1) ENVIRON["NEW"] rest; done = 1
  }
  { print }
  END { if (bad || !done) exit 3 }' "$f" >"$b.new" || { echo "line $n of $f is not as planned: left unchanged" >&2; exit 3; }
cat -- "$b.new" >"$f"
rm -f -- "$b.new"
echo "edited $f:$n (backup $b.orig)"
'''

# Put back a file edited by EDIT_SH from its backup (the backup is made before any edit: none, no edit).
RESTORE_SH = r'''set -eu
f=$1 dir=$2
b=$dir/$(printf '%s' "$f" | tr '/' '%')
[ -e "$b.orig" ] || { echo "$f was not edited (no backup in $dir): nothing to restore"; exit 0; }
cat -- "$b.orig" >"$f"
echo "restored $f from $b.orig"
'''

# Wait (up to 15 s) for processes stopped by pid to be gone; a zombie counts as gone. Never escalates.
WAIT_SH = r'''for i in $(seq 1 75); do
  left=
  for p; do
    [ -e "/proc/$p" ] || continue
    s=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$p/status" 2>/dev/null)
    [ "$s" = Z ] || left="$left $p"
  done
  [ -z "$left" ] && exit 0
  sleep 0.2
done
echo "still running after 15 s:$left (not killed harder: look at it)" >&2
exit 1
'''

# A lock directory made atomically with mkdir; its owner file says who holds it. Exit 75: held.
LOCK_SH = r'''d=$1 who=$2
umask 077
if mkdir -- "$d" 2>/dev/null; then printf '%s\n' "$who" >"$d/owner"; echo "locked $d"; exit 0; fi
printf 'held by: '; head -c 400 -- "$d/owner" 2>/dev/null || echo '(no owner file)'; echo; exit 75
'''

# Remove the lock only when this run holds it.
UNLOCK_SH = r'''d=$1 who=$2
[ "$(head -n 1 -- "$d/owner" 2>/dev/null)" = "$who" ] || { echo "lock $d is not ours" >&2; exit 1; }
rm -f -- "$d/owner" && rmdir -- "$d" && echo "unlocked $d"
'''

LOCKED_EXIT = 75
LOCK_DIR = "/run/fleet-fix.lock"


@dataclass(frozen=True)
class Action:
    """One command to run on a host: what the journal shows (argv) and what is sent (its shell line)."""

    argv: tuple[str, ...]
    shell: str
    explain: str = ""


def program(name: str, text: str, *args: object, privilege: Privilege | None, explain: str = "") -> Action:
    """Run one of the constant programs above as root, host values as its positional arguments.

    Root is reached by the `privilege` the host's probes saw (fleet.fixes.with_privilege). The
    program text spans lines (it is fleet's own); the host values may not hold a control or
    invisible character, so the journal and the plan show exactly what runs.
    """
    values = tuple(str(a) for a in args)
    if any(fixes.visible(v) != v for v in values):
        raise ValueError("a value holds a control or invisible character")
    argv = tuple(str(a) for a in fixes.with_privilege(("sudo", "sh", "-c", text, f"fleet-{name}", *values),
                                                          privilege))
    return Action(argv, fixes.join(argv), explain)


def for_step(step: fixes.Step, backup_dir: str, privilege: Privilege | None = None) -> tuple[Action, ...]:
    """The actions of one executable fix step (prose has none), run with the host's `privilege`
    (None: with `sudo` as the report prints it; `fleet fix` always knows the host's)."""
    if isinstance(step, fixes.Note):
        return ()
    if isinstance(step, fixes.EditFile):
        return (program("edit", EDIT_SH, step.path, step.line, step.old, step.new, backup_dir, privilege=privilege,
                        explain=f"{step.path}:{step.line}: replace {step.old!r} with {step.new!r}"),)
    shell = fixes.shell_line(step, privilege)
    if shell is None:
        raise ValueError("step is not executable")  # policy.step_problem keeps such steps out of a plan
    argv = tuple(str(a) for argv in fixes.argvs(step, privilege) for a in argv)
    actions = [Action(argv, shell, step.explain)]
    if isinstance(step, fixes.Signal):
        actions.append(program("wait", WAIT_SH, *step.pids, privilege=privilege,
                               explain="wait until the stopped processes are gone"))
    return tuple(actions)


def for_steps(steps: tuple[fixes.Step, ...], backup_dir: str,
              privilege: Privilege | None = None) -> tuple[Action, ...]:
    return tuple(action for step in steps for action in for_step(step, backup_dir, privilege))


def restores(steps: tuple[fixes.Step, ...], backup_dir: str,
             privilege: Privilege | None = None) -> tuple[Action, ...]:
    """Put back every file the steps edited (the first part of any rollback)."""
    edited = dict.fromkeys(s.path for s in steps if isinstance(s, fixes.EditFile))
    return tuple(program("restore", RESTORE_SH, path, backup_dir, privilege=privilege,
                         explain=f"restore {path} from its backup") for path in edited)


def lock(owner: str, privilege: Privilege) -> Action:
    return program("lock", LOCK_SH, LOCK_DIR, owner, privilege=privilege, explain="take this host's fix lock")


def unlock(owner: str, privilege: Privilege) -> Action:
    return program("unlock", UNLOCK_SH, LOCK_DIR, owner, privilege=privilege, explain="release this host's fix lock")
