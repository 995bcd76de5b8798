"""One host at a time, over the run's transports: diagnose it again, or run one command on it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fleet.diagnose import Prepared, RunOptions, host_result
from fleet.executor import Deadline
from fleet.fix.actions import Action
from fleet.models import Execution, Host, HostResult
from fleet.runbook import Runbook

COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Remote:
    """The transports and rendered probe scripts of a `fleet fix apply` run (built once by diagnose.prepare)."""

    prepared: Prepared
    runbook: Runbook
    options: RunOptions

    def diagnose(self, host: Host, since: float | None = None) -> HostResult:
        """The runbook's probes on `host` now, interpreted exactly as `fleet diagnose` does.

        `since` (epoch seconds), for a runbook with a `since` parameter: logs from before it are
        not held against the host (a verification must not fail on errors logged before the fix).
        """
        execution = self.prepared.transports[host.connection].execute(
            host, self.prepared.scripts[host.name], Deadline(self.options.timeout_s))
        params = self.prepared.params[host.name]
        if since is not None and "since" in params.values:
            params = replace(params, values={**params.values, "since": int(since)})
        return host_result(host, execution, self.runbook, params, self.prepared.marker, self.prepared.redactor,
                           self.options.interpret_budget_s)

    def run(self, host: Host, action: Action, timeout_s: float = COMMAND_TIMEOUT_S) -> Execution:
        """Send the action's quoted shell line as the whole script of one `sh -s` on the host."""
        script = f"{action.shell}\n".encode()
        return self.prepared.transports[host.connection].execute(host, script, Deadline(timeout_s))

    def close(self) -> None:
        for transport in self.prepared.transports.values():
            transport.close()
