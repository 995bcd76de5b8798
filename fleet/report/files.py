"""Report files: a directory only the user can write, a unique name per run, files no one can redirect.

fleet often runs as root. A symlink planted in a shared report directory must not make it
overwrite another file, two runs in the same second must not share a name, and every file holds
host output, so only its owner may read it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import tempfile
from typing import Iterable

from fleet.errors import InputError
from fleet.trustpath import others_can_write

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
# A random id in every run's file names: `<UTC stamp>-<id>-<runbook>`.
RUN_ID_HEX = 6
STEM = re.compile(rf"^(\d{{8}}T\d{{6}}Z)(?:-([0-9a-f]{{{RUN_ID_HEX}}}))?-(.+)$")
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def report_dir(path: str | os.PathLike) -> str:
    """The report directory, created mode 0700 if missing; InputError if it cannot serve or others can write it."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise InputError("the report directory is not a directory", path)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the report directory: {exc.strerror or exc}", path) from None
    except ValueError as exc:  # a NUL byte in the path
        raise InputError(f"cannot create the report directory: {exc}", path) from None
    reason = others_can_write(path)
    if reason:
        raise InputError(f"refusing a report directory that other users can write: {reason}", path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError("the report directory is not writable", path)
    return path


def file_name(name: str) -> str:
    """`name` fit for a file name: no `/`, no leading dot, nothing but letters, digits, `_`, `.` and `-`."""
    return _UNSAFE_NAME.sub("_", name).lstrip(".") or "runbook"


def create_run_file(directory: str, started: dt.datetime, runbook: str, suffix: str) -> tuple[str, int]:
    """A new run's stem (`<stamp>-<id>-<runbook>`) and the descriptor of `<stem><suffix>` created for it.

    Created with O_EXCL and O_NOFOLLOW, mode 0600: a name that exists (another run's, a planted
    symlink) is never opened; another id is drawn instead.
    """
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for _ in range(16):
        stem = f"{stamp}-{secrets.token_hex(RUN_ID_HEX // 2)}-{file_name(runbook)}"
        try:
            return stem, os.open(os.path.join(directory, stem + suffix), _FLAGS | os.O_APPEND, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot create a report file: {exc.strerror or exc}", directory) from None
    raise InputError("cannot find a free report file name", directory)


def write_private(path: str, text: str | Iterable[str]) -> None:
    """Write `text` (a string, or its pieces in order) to `path` with mode 0600, replacing it atomically.

    The text goes to a fresh file with a random name (mkstemp: O_EXCL, 0600), then is renamed over
    `path`; a rename replaces a symlink at `path` rather than writing where it points.
    """
    directory, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if isinstance(text, str):
                out.write(text)
            else:
                out.writelines(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
