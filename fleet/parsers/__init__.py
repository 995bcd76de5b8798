"""Parsers: pure functions from one probe's output to typed facts, registered by name.

Each takes `(output: ProbeOutput, params: Mapping[str, Any])` and returns a frozen dataclass.
A built-in probe's parser lives in its module under fleet/probes/; this registry names them
all, for runbooks that declare their own `command:` with a `parser:`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from fleet.models import ProbeOutput
from fleet.parsers import generic
from fleet.probes.catalog import BUILTIN
from fleet.probes.spec import Parser

PARSERS: Mapping[str, Parser] = MappingProxyType(
    {**{spec.parser: spec.parse for spec in BUILTIN.values()}, "text": generic.parse_text}
)

#: Parsers whose raw output a report keeps only in part, by what their facts used: (output, facts) -> stdout.
REPORT_VIEWS: Mapping[str, Callable[[ProbeOutput, Any], str]] = MappingProxyType(
    {spec.parser: spec.report_view for spec in BUILTIN.values() if spec.report_view is not None}
)
