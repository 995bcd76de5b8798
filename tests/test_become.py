"""sudo settling against an SSH server that sends a command's exit status before its stderr.

OpenSSH may do that when the command exits before sshd has drained its stderr pipe; it made
`--ask-become-pass` flaky (two hosts at once, and one read "sudo: sudo" as a refusal). The
server here is paramiko's own server side on a loopback socket, so the order is fixed and the
test fails every time the reader stops at the exit status.
"""

import socket
import threading
import time

import paramiko
import pytest

from fleet.executor import Deadline
from fleet.transport.become import BecomeFailed, Secret, settle

NEEDS_PASSWORD = b"sudo: a password is required\n"


class LateStderrServer(paramiko.ServerInterface):
    """Answers every exec with exit status 1 first, then stderr, then EOF; or, with `hang_up`,
    drops the whole connection instead."""

    def __init__(self, stderr: bytes, hang_up: bool = False):
        self.stderr = stderr
        self.hang_up = hang_up

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "none"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=self._answer, args=(channel,), daemon=True).start()
        return True

    def _answer(self, channel):
        time.sleep(0.2)  # the exec has been answered by now
        if self.hang_up:
            channel.get_transport().close()
            return
        channel.send_exit_status(1)
        time.sleep(0.2)  # long enough for a reader that stops at the status to stop
        channel.sendall_stderr(self.stderr)
        channel.shutdown_write()
        channel.close()


@pytest.fixture
def late_stderr_transport():
    """A client Transport logged in to a LateStderrServer on 127.0.0.1."""
    yield from _logged_in(LateStderrServer(NEEDS_PASSWORD))


@pytest.fixture
def hang_up_transport():
    """A client Transport logged in to a server that drops the connection on the first exec."""
    yield from _logged_in(LateStderrServer(b"", hang_up=True))


def _logged_in(interface: paramiko.ServerInterface):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client_sock = socket.create_connection(listener.getsockname())
    server_sock, _ = listener.accept()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.ECDSAKey.generate())
    server.start_server(event=threading.Event(), server=interface)  # returns at once
    client = paramiko.Transport(client_sock)
    client.start_client(timeout=10)
    client.auth_none("fleetops")
    yield client
    client.close()
    server.close()
    listener.close()


def test_stderr_after_the_exit_status_is_still_read(late_stderr_transport):
    with pytest.raises(BecomeFailed, match="sudo needs a password"):
        settle(late_stderr_transport, "root", None, Deadline(10))


def test_the_password_is_checked_once_the_refusal_is_read_whole(late_stderr_transport):
    # The same late "password is required" on every exec: the check with the password fails too,
    # and says what sudo said rather than a clipped word.
    with pytest.raises(BecomeFailed, match="^sudo: a password is required$"):
        settle(late_stderr_transport, "root", Secret("pw"), Deadline(10))


def test_a_connection_dropped_during_the_sudo_check_is_not_a_refusal(hang_up_transport):
    started = time.monotonic()
    with pytest.raises(paramiko.SSHException):  # the caller's "connection lost", not a sudo refusal
        settle(hang_up_transport, "root", None, Deadline(10))
    assert time.monotonic() - started < 5  # not the 10 s deadline
