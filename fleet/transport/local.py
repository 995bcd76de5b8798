"""The local connection (`ansible_connection: local`): the same script through a subprocess."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from fleet.executor import Deadline
from fleet.limits import HOST_OUTPUT_CAP
from fleet.models import Execution, Host, TransportStatus

_CHUNK = 65536


class LocalTransport:
    """Runs the script with `sh -s` on this machine, in its own process group.

    Output is read as it comes and kept up to HOST_OUTPUT_CAP bytes (stdout and stderr together,
    as over SSH); the rest is read and dropped, so a probe that floods stderr costs no memory.
    """

    def __init__(self, output_cap: int = HOST_OUTPUT_CAP):
        self.output_cap = output_cap

    def execute(self, host: Host, script: bytes, deadline: Deadline) -> Execution:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline.on_cancel(lambda: _kill_group(proc))
        try:
            out, err, truncated, finished = self._exchange(proc, script, deadline)
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
        if not finished:
            _kill_group(proc)
            proc.wait()
            return Execution(TransportStatus.TIMEOUT, f"no result within the {deadline.seconds:g}s deadline",
                             bytes(out), bytes(err), None, time.monotonic() - started, truncated)
        proc.wait()
        return Execution(TransportStatus.OK, "", bytes(out), bytes(err), proc.returncode,
                         time.monotonic() - started, truncated)

    def _exchange(self, proc: subprocess.Popen, script: bytes,
                  deadline: Deadline) -> tuple[bytearray, bytearray, bool, bool]:
        """Feed the script, read both streams to EOF or the deadline: (stdout, stderr, truncated, finished)."""
        out, err = bytearray(), bytearray()
        truncated = False
        pending = memoryview(script)
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, out)
            selector.register(proc.stderr, selectors.EVENT_READ, err)
            if pending:
                selector.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
            while len(selector.get_map()):
                if deadline.expired():
                    return out, err, truncated, False
                for key, _ in selector.select(timeout=min(0.5, deadline.remaining())):
                    if key.fileobj is proc.stdin:
                        try:
                            pending = pending[os.write(proc.stdin.fileno(), pending[:_CHUNK]):]
                        except BrokenPipeError:
                            pending = pending[:0]
                        if not pending:
                            selector.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fileobj.fileno(), _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buf = key.data
                    room = self.output_cap - len(out) - len(err)
                    buf += chunk[:max(0, room)]
                    truncated |= len(chunk) > room
        return out, err, truncated, True

    def close(self) -> None:
        """Nothing is held between hosts."""


def _kill_group(proc: subprocess.Popen) -> None:
    # The probes run in a session of their own; end that whole group, and only it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
