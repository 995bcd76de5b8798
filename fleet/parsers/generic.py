"""Generic parsers for runbooks that need no special understanding of a tool's output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fleet.models import ProbeOutput
from fleet.probes._common import lines_of

_MAX_LINES = 1000


@dataclass(frozen=True)
class TextFacts:
    """A probe's output as lines, with its exit code: enough for `when: probe.ok` or `'x' in probe.text`."""

    exit_code: int
    text: str
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def first_line(self) -> str:
        return self.lines[0] if self.lines else ""


def parse_text(output: ProbeOutput, params: Mapping[str, Any]) -> TextFacts:
    """Keep the output as text and lines (the first 1000)."""
    lines = tuple(lines_of(output.stdout)[:_MAX_LINES])
    return TextFacts(output.exit_code if output.exit_code is not None else -1, output.stdout, lines)
