"""The built-in probes' shell without its comment lines: what goes on the wire.

A comment documents the shell for people reading the `.sh` files (and `fleet runbook show`);
the host has no use for it. A line is dropped only where the shell would read it as a comment:
not inside a quoted string (awk programs are single-quoted), a command substitution's quotes,
or a here-document. tests/test_probes.py checks, with bash's own parser (`declare -f`), that
every built-in `.sh` means the same with and without them.
"""

from __future__ import annotations

import functools
import re

_COMMENT_LINE = re.compile(r"^\s*#")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
# Where a `#` starts a comment: at a word's start.
_WORD_START = frozenset(" \t;|&(")


class _Scan:
    """Quoting state carried from line to line: a stack of open single quotes ("'"), double
    quotes ('"') and command substitutions ([depth of parentheses]), and pending here-documents."""

    def __init__(self) -> None:
        self.stack: list[str | list[int]] = []
        self.pending: list[str] = []
        self.heredoc: str | None = None

    def line(self, line: str) -> None:
        i = 0
        while i < len(line):
            i = self._char(line, i)
        if self.pending and not self.stack:
            self.heredoc = self.pending.pop(0)

    def _char(self, line: str, i: int) -> int:
        c, top = line[i], self.stack[-1] if self.stack else None
        if top == "'":
            if c == "'":
                self.stack.pop()
            return i + 1
        if c == "\\":
            return i + 2
        if line.startswith("$(", i):
            self.stack.append([0])
            return i + 2
        if top == '"':
            if c == '"':
                self.stack.pop()
            return i + 1
        if c in "'\"":
            self.stack.append(c)
        elif isinstance(top, list) and c in "()":
            if c == "(":
                top[0] += 1
            elif top[0]:
                top[0] -= 1
            else:
                self.stack.pop()
        elif c == "#" and (i == 0 or line[i - 1] in _WORD_START):
            return len(line)
        elif line.startswith("<<", i):
            match = _HEREDOC.match(line, i)
            if match:
                self.pending.append(match.group(1))
                return match.end()
        return i + 1


@functools.lru_cache(maxsize=64)
def without_comments(text: str) -> str:
    """`text` without the lines the shell reads as comments only."""
    scan, kept = _Scan(), []
    for line in text.split("\n"):
        if scan.heredoc is not None:
            kept.append(line)
            if line == scan.heredoc:
                scan.heredoc = scan.pending.pop(0) if scan.pending else None
            continue
        if not scan.stack and _COMMENT_LINE.match(line):
            continue
        scan.line(line)
        kept.append(line)
    return "\n".join(kept)
