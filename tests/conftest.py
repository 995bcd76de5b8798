import os
import shutil
import socket
import threading

import pytest

from tests import sshd as sshd_mod

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which(sshd_mod.SSHD),
                                reason="needs root and OpenSSH's sshd")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1-3, ended by its PID after the session."""
    if os.geteuid() != 0 or not os.path.exists(sshd_mod.SSHD):
        pytest.skip("needs root and OpenSSH's sshd")
    info, proc = sshd_mod.start(tmp_path_factory.mktemp("sshd"), ("127.0.0.1", "127.0.0.2", "127.0.0.3"))
    yield info
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def silent_port():
    """A loopback port that accepts TCP connections and never says a word (no SSH banner)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
