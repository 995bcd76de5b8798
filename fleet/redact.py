"""Redaction of secrets from host output before it reaches facts, verdicts or reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

MASK = "[REDACTED]"
#: Variable names whose values are secrets whatever they look like.
SECRET_NAME = re.compile(r"pass|secret|token|credential|api_?key|private", re.I)

# Each pattern's group 1, when present, is kept: it names the secret without being it.
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    r"(?i)(authorization:\s*(?:bearer|basic|token)?\s*)\S+",
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"(?i)(aws_secret_access_key\s*[:=]\s*)\S+",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    r"(://[^:/\s@]+:)[^@\s/]+(@)",
)


@dataclass(frozen=True)
class Redactor:
    """Compiled patterns; `redact` returns the cleaned text and how many secrets it masked."""

    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def build(cls, extra: Iterable[str] = ()) -> "Redactor":
        return cls(tuple(re.compile(p) for p in (*DEFAULT_PATTERNS, *extra)))

    def redact_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters fit for a report: secret-looking names masked, secrets inside text values redacted."""
        return {name: MASK if SECRET_NAME.search(name) else self.redact(value)[0] if isinstance(value, str)
                else value for name, value in params.items()}

    def redact(self, text: str) -> tuple[str, int]:
        total = 0
        for pattern in self.patterns:
            text, n = pattern.subn(_mask, text)
            total += n
        return text, total


def _mask(match: re.Match[str]) -> str:
    groups = [g for g in match.groups() if g is not None]
    if not groups:
        return MASK
    # Keep the label before the secret (and a URL's '@' after it).
    return groups[0] + MASK + (groups[1] if len(groups) > 1 else "")
