"""Making untrusted host output harmless for a terminal, a Markdown file or a web page."""

from __future__ import annotations

import re
from typing import Any

# ANSI CSI/escape sequences first (so their parameters go too), then any other C0/C1 control
# character except tab and newline.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Characters that change how text around them displays while showing nothing themselves:
# bidirectional embeddings, overrides and isolates (a fix line could display reversed), zero-width
# spaces and joiners, the BOM, and the line/paragraph separators some renderers break lines on.
_INVISIBLE = re.compile("[\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _code_point(match: re.Match[str]) -> str:
    return f"<U+{ord(match.group()):04X}>"


def show_invisible(text: str) -> str:
    """`text` with every invisible formatting character written out visibly, as `<U+202E>`."""
    return _INVISIBLE.sub(_code_point, text) if _INVISIBLE.search(text) else text


def strip_control(value: Any) -> str:
    """`value` as text fit to display: escape sequences and control characters removed, invisible
    formatting characters (bidi overrides, zero-width) shown as `<U+XXXX>`."""
    return show_invisible(_CONTROL.sub("", str(value)))
