"""fleet.transport.ssh.BufferedSocket: what paramiko's transport reads through, over a real socket pair."""

from __future__ import annotations

import socket

import pytest

from fleet.transport.ssh import _RECV_BURST, BufferedSocket


def test_reads_come_in_order_never_longer_than_asked_from_few_system_calls():
    near, far = socket.socketpair()
    calls = []

    class Counted:
        def recv(self, size):
            calls.append(size)
            return near.recv(size)

    sock = BufferedSocket(Counted())
    sent = bytes(range(256)) * 40  # 10 KB in one burst: many small paramiko-sized reads
    far.sendall(sent)
    got = bytearray()
    for size in (4, 16, 1, 300, 4096, 5):
        chunk = sock.recv(size)
        assert 0 < len(chunk) <= size
        got += chunk
    while len(got) < len(sent):
        got += sock.recv(17)
    assert bytes(got) == sent
    assert calls[0] == _RECV_BURST and len(calls) < 5  # not one call per read
    far.close()
    assert sock.recv(4) == b""  # the end of the stream reaches paramiko as it is
    near.close()


def test_everything_but_recv_is_the_socket_s_own():
    near, far = socket.socketpair()
    sock = BufferedSocket(near)
    sock.settimeout(0.05)
    assert near.gettimeout() == 0.05
    with pytest.raises(socket.timeout):
        sock.recv(4)  # paramiko's idle wake-ups rely on the timeout reaching it
    sock.sendall(b"ping")
    assert far.recv(4) == b"ping"
    sock.close()
    assert sock._closed and near._closed  # what paramiko's Transport.stop_thread reads
    far.close()
