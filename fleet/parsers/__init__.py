"""Parsers: pure functions from one probe's output to typed facts, registered by name.

Each takes `(output: ProbeOutput, params: Mapping[str, Any])` and returns a frozen dataclass.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from fleet.models import ProbeOutput
from fleet.parsers import generic

Parser = Callable[[ProbeOutput, Mapping[str, Any]], Any]

PARSERS: Mapping[str, Parser] = MappingProxyType({
    "text": generic.parse_text,
})
