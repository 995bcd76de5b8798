"""`--var` checked against the runbook before any host is touched.

A misspelt name (`--var prot=8001`) used to be ignored and the host reported healthy on the
default port; a value of the wrong kind reached the probes as text. Runbook parameters carry no
declared type, so the kind is read from the default's type and the parameter's name, the way the
built-in runbooks name them (`port`, `*_timeout`, `*_pattern`, `*_pct`).
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from fleet.errors import InputError
from fleet.runbook import Runbook


def check_overrides(runbook: Runbook, overrides: Mapping[str, str]) -> None:
    """InputError (one line, with the closest name) for an unknown name or a value of the wrong kind."""
    defaults = runbook.defaults()
    for name, value in overrides.items():
        if name not in defaults:
            close = difflib.get_close_matches(name, defaults, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"--var {name}: runbook {runbook.name!r} has no parameter {name!r}; {hint}"
                             f"its parameters: {', '.join(defaults) or '(none)'}")
        problem = value_problem(name, defaults[name], value)
        if problem:
            raise InputError(f"--var {name}={value}: {problem}")


def value_problem(name: str, default: Any, value: str) -> str:
    """Why `value` cannot be parameter `name` (whose default is `default`), or ''."""
    number: float | None = None
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            number = int(value) if isinstance(default, int) else float(value)
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            return f"must be {kind}"
    words = name.split("_")
    if "port" in words and (number is None or not 1 <= number <= 65535):
        return "a port must be a whole number from 1 to 65535"
    if ("timeout" in words or name.endswith("_s")) and (number is None or number <= 0):
        return "a timeout must be a positive number of seconds"
    if "pct" in words and (number is None or not 0 <= number <= 100):
        return "a percentage must be a number from 0 to 100"
    if ("pattern" in words or "path" in words or "service" in words) and not value.strip():
        return "must not be empty"
    return ""
