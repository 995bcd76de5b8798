"""The section-header format of probe output, `== name key=value ... ==`, for both sides.

A probe prints a header before each piece of its output so its parser knows where each line
came from (`== ps source=ps-etimes ==`). The shell side prints headers with `fleet_section`,
whose definition `SHELL_FUNCTION` is sent ahead of every built-in probe (fleet/probes/catalog.py);
the parser side reads them with `sections`. Both are built from the constants here, so the
format cannot drift between the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.probes._common import KV, lines_of

OPEN = "== "
CLOSE = " =="
#: A section's name; its attributes are `key=value` words without blanks.
NAME = r"[A-Za-z0-9_.-]+"
_HEADER = re.compile(rf"^{OPEN}({NAME})((?: [A-Za-z0-9_]+=\S*)*){CLOSE}$")

#: `fleet_section NAME [KEY=VALUE ...]`: prints one header line. Builtins only (no fork).
SHELL_FUNCTION = (
    'fleet_section() { fleet_h="' + OPEN + '$1"; shift; for fleet_a in "$@"; do fleet_h="$fleet_h $fleet_a"; done; '
    "printf '%s" + CLOSE + "\\n' \"$fleet_h\"; }\n"
)


@dataclass
class Section:
    """A run of output lines under one `== name k=v ==` header (name "" before any header)."""

    name: str
    attrs: dict[str, str]
    lines: list[str]


def sections(text: str | None) -> list[Section]:
    """Split probe output at its section headers, keeping their order."""
    result = [Section("", {}, [])]
    for line in lines_of(text):
        match = _HEADER.match(line.rstrip()) if line.startswith(OPEN) else None
        if match:
            result.append(Section(match.group(1), dict(KV.findall(match.group(2))), []))
        else:
            result[-1].lines.append(line)
    return result
