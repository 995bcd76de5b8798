"""Regular expressions fleet did not write itself, run by RE2: in time linear in the text, or not at all.

A pattern found in a host's own files (an nginx `location ~` regex) or given by a runbook
(`redact:`) may be written, by accident or on purpose, to backtrack for minutes on the text it
meets; Python's `re` would execute it. RE2 refuses what it cannot run in linear time
(backreferences, lookarounds), and fleet then says it cannot evaluate the pattern.
"""

from __future__ import annotations

import functools

import re2

_OPTIONS = re2.Options()
# RE2 logs every refused pattern to stderr through absl; the caller words the refusal itself.
_OPTIONS.log_errors = False
# Memory for one pattern's program and matching cache (RE2's default is 8 MiB): a bigger program
# is refused rather than built, and the cache of compiled patterns below stays bounded.
_OPTIONS.max_mem = 2 << 20

#: A compiled RE2 pattern (`search`, `sub`, `subn`, `finditer` as in `re`).
Pattern = re2._Regexp


class Unsupported(ValueError):
    """RE2 cannot run this pattern (a construct it refuses, or a program too big); the message says why."""


@functools.lru_cache(maxsize=128)
def compile_linear(pattern: str, ignore_case: bool = False) -> Pattern:
    """`pattern` compiled for RE2; Unsupported when RE2 refuses it."""
    source = f"(?i){pattern}" if ignore_case else pattern
    try:
        return re2.compile(source, _OPTIONS)
    except (re2.error, TypeError, ValueError) as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise Unsupported(f"RE2 cannot run {pattern!r}: {reason}") from None


def search(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """Whether `pattern` matches anywhere in `text`; Unsupported when it cannot be evaluated."""
    return compile_linear(pattern, ignore_case).search(text) is not None
