"""Redaction of secrets from host output before it reaches facts, verdicts or reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

MASK = "[REDACTED]"
#: Variable names whose values are secrets whatever they look like.
SECRET_NAME = re.compile(r"pass|secret|token|credential|api_?key|private", re.I)

# Each pattern's group 1, when present, is kept: it names the secret without being it. Each
# comes with lower-case words one of which must occur for it to match, so the regexes only run
# on the rare output that could hold a secret (running them all on every output cost more than
# parsing it).
DEFAULT_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", ("private key",)),
    (r"(?i)(authorization:\s*(?:bearer|basic|token)?\s*)\S+", ("authorization",)),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}", ("bearer",)),
    (r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+",
     ("passw", "pwd", "secret", "token", "apikey", "api_key", "api-key", "accesskey", "access_key", "access-key")),
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ("akia", "asia")),
    (r"(?i)(aws_secret_access_key\s*[:=]\s*)\S+", ("aws_secret_access_key",)),
    (r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", ("eyj",)),
    (r"(://[^:/\s@]+:)[^@\s/]+(@)", ("://",)),
)


@dataclass(frozen=True)
class Redactor:
    """Compiled patterns, each with its trigger words (none: always tried)."""

    patterns: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]

    @classmethod
    def build(cls, extra: Iterable[str] = ()) -> "Redactor":
        """The default patterns plus a runbook's own `redact:` patterns."""
        return cls(tuple((re.compile(p), words) for p, words in (*DEFAULT_PATTERNS, *((p, ()) for p in extra))))

    def redact_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters fit for a report: secret-looking names masked, secrets inside text values redacted."""
        return {name: MASK if SECRET_NAME.search(name) else self.redact(value)[0] if isinstance(value, str)
                else value for name, value in params.items()}

    def redact(self, text: str) -> tuple[str, int]:
        """`text` with secrets masked, and how many were."""
        lower = text.lower()
        masked = 0

        def mask(match: re.Match[str]) -> str:
            nonlocal masked
            replacement = _mask(match)
            # Two patterns may see one secret (aws_secret_access_key is also a "key="): count it once.
            masked += replacement != match.group(0)
            return replacement

        for pattern, words in self.patterns:
            if not words or any(map(lower.__contains__, words)):
                text = pattern.sub(mask, text)
        return text, masked


def _mask(match: re.Match[str]) -> str:
    groups = [g for g in match.groups() if g is not None]
    if not groups:
        return MASK
    # Keep the label before the secret (and a URL's '@' after it).
    return groups[0] + MASK + (groups[1] if len(groups) > 1 else "")
