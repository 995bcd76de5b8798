"""Parsers: pure functions from one probe's output to typed facts, registered by name.

Each takes `(output: ProbeOutput, params: Mapping[str, Any])` and returns a frozen dataclass.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from fleet.models import ProbeOutput
from fleet.parsers import (
    discovery,
    filesystems,
    generic,
    http_checks,
    kernel_log,
    listeners,
    log_signatures,
    memory,
    nginx_errors,
    nginx_state,
    process_info,
    processes,
    service_state,
)

Parser = Callable[[ProbeOutput, Mapping[str, Any]], Any]

PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "discovery": discovery.parse,
        "processes": processes.parse,
        "process_info": process_info.parse,
        "service_state": service_state.parse,
        "listeners": listeners.parse,
        "http_checks": http_checks.parse,
        "log_signatures": log_signatures.parse,
        "nginx_state": nginx_state.parse,
        "nginx_errors": nginx_errors.parse,
        "text": generic.parse_text,
        # the host runbook (fleet/runbooks/host.yml)
        "filesystems": filesystems.parse,
        "kernel_log": kernel_log.parse,
        "memory": memory.parse,
    }
)

#: Parsers whose raw output a report keeps only in part, by what their facts used: (output, facts) -> stdout.
REPORT_VIEWS: Mapping[str, Callable[[ProbeOutput, Any], str]] = MappingProxyType(
    {"processes": processes.report_stdout}
)
