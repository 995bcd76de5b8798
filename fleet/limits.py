"""What the controller takes on: open files, and host text before any pattern sees it.

Host output is untrusted: it is cut to these sizes before any regular expression, parser or
report sees it, so both the time spent on one host and the memory held for it are bounded.
"""

from __future__ import annotations

import resource

#: Bytes of stdout and of stderr the controller keeps per host (the rest is dropped, and said).
HOST_OUTPUT_CAP = 16 * 1024 * 1024
#: Characters of one output line that reach redaction and parsers; a longer line is cut there.
MAX_LINE_CHARS = 8192
#: Characters of each probe's stdout and stderr kept in the report (facts come from all of it).
REPORT_OUTPUT_CHARS = 64 * 1024
#: Seconds of wall time to interpret one host's output (split, redact, parse, rules).
INTERPRET_BUDGET_S = 5.0

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


def cap_lines(text: str, limit: int = MAX_LINE_CHARS) -> tuple[str, int]:
    """`text` with every line (split on `\\n` only) cut to `limit` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    lines = text.split("\n")
    cut = 0
    for i, line in enumerate(lines):
        if len(line) > limit:
            lines[i] = line[:limit]
            cut += 1
    return ("\n".join(lines), cut) if cut else (text, 0)


def cap_text(text: str, limit: int = REPORT_OUTPUT_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... ({len(text) - limit} more characters not kept: fleet keeps {limit} per output)"

