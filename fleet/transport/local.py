"""The local connection (`ansible_connection: local`): the same script through a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from fleet.executor import Deadline
from fleet.models import Execution, Host, TransportStatus


class LocalTransport:
    """Runs the script with `sh -s` on this machine, in its own process group."""

    def execute(self, host: Host, script: bytes, deadline: Deadline) -> Execution:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline.on_cancel(lambda: _kill_group(proc))
        try:
            stdout, stderr = proc.communicate(script, timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            return Execution(TransportStatus.TIMEOUT, f"no result within the {deadline.seconds:g}s deadline",
                             stdout, stderr, None, time.monotonic() - started)
        return Execution(TransportStatus.OK, "", stdout, stderr, proc.returncode, time.monotonic() - started)

    def close(self) -> None:
        """Nothing is held between hosts."""


def _kill_group(proc: subprocess.Popen) -> None:
    # The probes run in a session of their own; end that whole group, and only it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
