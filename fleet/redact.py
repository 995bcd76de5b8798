"""Redaction of secrets from host output before it reaches facts, verdicts or reports.

Every pattern runs on RE2 (fleet.hostregex), so redaction takes time linear in the output
whatever the output is; a runbook's own `redact:` patterns too.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from fleet.hostregex import Pattern, compile_linear

MASK = "[REDACTED]"
#: Variable names whose values are secrets whatever they look like (`db_pw`, `vault_addr_token`,
#: `auth_header`, `ssh_key`, `gpg_passphrase`, ...).
SECRET_NAME = re.compile(r"pass|pwd|(?:^|[^a-z])pw(?:[^a-z]|$)|secret|token|credential|auth|key|vault|private"
                         r"|cookie|session|salt|cert", re.I)

# Each pattern's group 1, when present, is kept: it names the secret without being it. Each
# comes with lower-case words one of which must occur for it to match, so the regexes only run
# on the rare output that could hold a secret (running them all on every output cost more than
# parsing it). `[ \t]` where a pattern must stay on one line of `ps` output.
DEFAULT_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\z)", ("private key",)),
    (r"(?i)(authorization:\s*(?:bearer|basic|token)?\s*)\S+", ("authorization",)),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}", ("bearer",)),
    (r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+",
     ("passw", "pwd", "secret", "token", "apikey", "api_key", "api-key", "accesskey", "access_key", "access-key")),
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ("akia", "asia")),
    (r"(?i)(aws_secret_access_key\s*[:=]\s*)\S+", ("aws_secret_access_key",)),
    (r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", ("eyj",)),
    (r"(://[^:/\s@]+:)[^@\s/]+(@)", ("://",)),
    # Secret-bearing flags on command lines, as `ps` shows them to every user of the host.
    (r"(\bsshpass(?:[ \t]+-[^p\s]\S*)*[ \t]+-p[ \t]*)[^\s-]\S*", ("sshpass",)),
    (r"(\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n]*?[ \t]-p)[^\s-]\S*", ("mysql", "mariadb")),
    (r"(\bredis-cli\b[^\n]*?[ \t](?:-a|--pass)[ \t]+)\S+", ("redis-cli",)),
    (r"(?i)(\bcurl\b[^\n]*?[ \t](?:-u|--user|-U|--proxy-user)[ \t]*[^\s:]*:)\S+", ("curl",)),
    (r"(?i)((?:^|[ \t])--?[a-z0-9_-]*(?:pass(?:word|wd)?|pwd|secret|token|api-?key|credentials?)(?:=|[ \t]+))[^\s-]\S*",
     ("pass", "pwd", "secret", "token", "key", "credential")),
)


@dataclass(frozen=True)
class Redactor:
    """Compiled patterns, each with its trigger words (none: always tried)."""

    patterns: tuple[tuple[Pattern, tuple[str, ...]], ...]

    @classmethod
    def build(cls, extra: Iterable[str] = ()) -> "Redactor":
        """The default patterns plus a runbook's own `redact:` patterns (hostregex.Unsupported if RE2 refuses one)."""
        return cls(tuple((compile_linear(p), words) for p, words in (*DEFAULT_PATTERNS, *((p, ()) for p in extra))))

    def redact_params(self, params: Mapping[str, Any], names: Collection[str] | None = None) -> dict[str, Any]:
        """Parameters fit for a report: only `names` (the runbook's own; all when None), secret-looking
        names masked, secrets inside text values redacted."""
        return {name: MASK if SECRET_NAME.search(name) else self.redact(value)[0] if isinstance(value, str)
                else value for name, value in params.items() if names is None or name in names}

    def redact(self, text: str) -> tuple[str, int]:
        """`text` with secrets masked, and how many were."""
        lower = text.lower()
        masked = 0

        def mask(match: Any) -> str:
            nonlocal masked
            replacement = _mask(match)
            # Two patterns may see one secret (aws_secret_access_key is also a "key="): count it once.
            masked += replacement != match.group(0)
            return replacement

        for pattern, words in self.patterns:
            if not words or any(map(lower.__contains__, words)):
                text = pattern.sub(mask, text)
        return text, masked


@functools.cache
def _default() -> Redactor:
    return Redactor.build()


def holds_secret(name: str, value: Any) -> bool:
    """Whether a parameter is a secret by its name, or carries one in its value (a URL's `user:password@`)."""
    return bool(SECRET_NAME.search(name)) or (isinstance(value, str) and _default().redact(value)[1] > 0)


def _mask(match: Any) -> str:
    groups = [g for g in match.groups() if g is not None]
    if not groups:
        return MASK
    # Keep the label before the secret (and a URL's '@' after it).
    return groups[0] + MASK + (groups[1] if len(groups) > 1 else "")
