"""Transports run one script on one host and bring back its raw output. They know nothing of runbooks."""

from __future__ import annotations

from typing import Protocol

from fleet.executor import Deadline
from fleet.models import Execution, Host


class Transport(Protocol):
    def execute(self, host: Host, script: bytes, deadline: Deadline) -> Execution:
        """Run `script` with `sh -s` on `host` within `deadline`; never raise for host trouble."""
        ...

    def close(self) -> None:
        """Release what the transport holds for the whole run (shared jump-host connections)."""
        ...
