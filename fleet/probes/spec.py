"""What a built-in probe is: its shell (a `.sh` file beside its module), its inputs, its parser.

A probe module (`fleet/probes/<name>.py`) holds the parser and facts of its output and ends
with `PROBE = ProbeSpec(...)`; its shell is `fleet/probes/<name>.sh`, plain POSIX sh with no
template: its inputs arrive as shell variables of the same names, set (and quoted) by
`fleet.runbook.render_probes`. Shared shell functions live in library files (`common.sh`), sent
once per script and put before each probe that uses them, and an expensive command several
probes need runs once per script (`SHARED`); see fleet/script.py.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Mapping

from fleet.models import ProbeOutput
from fleet.probes.sections import SHELL_FUNCTION

Parser = Callable[[ProbeOutput, Mapping[str, Any]], Any]

@dataclass(frozen=True)
class Shared:
    """An expensive command run once per script, its output handed to each probe that reads it
    (on fd 6): `function`, defined in `library`, prints it within `timeout_s`."""

    name: str
    library: str
    function: str
    timeout_s: float

    def library_texts(self) -> tuple[str, ...]:
        return (SHELL_FUNCTION, shell_file(self.library))


#: What probes may share: nginx's `nginx -T` (the discover, http and nginx probes read it).
SHARED = {"nginx_config": Shared("nginx_config", "common", "fleet_nginx_dump", 15.0)}


@functools.lru_cache(maxsize=None)
def shell_file(name: str) -> str:
    """The text of `fleet/probes/<name>.sh`."""
    return (resources.files("fleet.probes") / f"{name}.sh").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Input:
    """A value a probe reads (runbook parameters bind it): its shell as the variable `name`, and
    its parser under `name` (the mapping handed to `parse`).

    A `parse_only` input is read by the parser alone: it is not set in the shell, and a runbook
    that neither binds it nor has a parameter of its name leaves it out (the parser's default).
    """

    name: str
    description: str
    parse_only: bool = False


@dataclass(frozen=True)
class ProbeSpec:
    """A built-in probe. `discovers`: runbook parameters it finds on the host when nobody gave
    them (`param NAME=VALUE` lines, fleet/params.py); `libraries`: shared shell it calls."""

    name: str
    parser: str
    parse: Parser
    description: str
    inputs: tuple[Input, ...] = ()
    timeout_s: float = 10.0
    discovers: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    # The shared output (SHARED) the shell reads on fd 6, if any.
    reads: str | None = None
    # The part of the raw output a report keeps, by what the facts used: (output, facts) -> stdout.
    report_view: Callable[[ProbeOutput, Any], str] | None = None

    @property
    def shell(self) -> str:
        return shell_file(self.name)

    @property
    def digest(self) -> str:
        """sha256 of the probe's `.sh`: fixtures captured from it record it (tests/test_parsers.py)."""
        return hashlib.sha256(self.shell.encode("utf-8")).hexdigest()

    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    def parse_only_inputs(self) -> frozenset[str]:
        """The inputs only the parser reads (never set in the shell)."""
        return frozenset(i.name for i in self.inputs if i.parse_only)

    def library_texts(self) -> tuple[str, ...]:
        """The shell put before this probe's own: `fleet_section` (the shell side of the
        section-header format, for every built-in probe), then its libraries."""
        return (SHELL_FUNCTION, *(shell_file(name) for name in self.libraries))
