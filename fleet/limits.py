"""Fitting the run to the process's open-file limit, so a big fleet never ends in EMFILE."""

from __future__ import annotations

import resource

# Per concurrent host: the TCP socket, the pipe pair paramiko makes for select(), and margin.
FDS_PER_HOST = 6
# Files the rest of the process needs: reports, journal, key files, the interpreter's own.
FDS_RESERVED = 64


def fit_forks(forks: int) -> tuple[int, str]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit if needed; cap forks if that is not enough.

    Returns the forks to use and a note when they had to be reduced.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = forks * FDS_PER_HOST + FDS_RESERVED
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return forks, ""
    fitted = max(1, (soft - FDS_RESERVED) // FDS_PER_HOST)
    return fitted, f"forks reduced from {forks} to {fitted}: the open-file limit is {soft}"
