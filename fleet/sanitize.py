"""Making untrusted host output harmless for a terminal or a Markdown file."""

from __future__ import annotations

import re
from typing import Any

# ANSI CSI/escape sequences first (so their parameters go too), then any other C0/C1 control
# character except tab and newline.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(value: Any) -> str:
    """`value` as text with escape sequences and control characters removed."""
    return _CONTROL.sub("", str(value))
