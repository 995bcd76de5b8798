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


class FakeServer:
    """A loopback TCP server that accepts, sends `greeting` (maybe nothing) and then never another byte."""

    def __init__(self, greeting: bytes = b""):
        self.greeting = greeting
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            if self.greeting:
                conn.sendall(self.greeting)
            self.held.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.server.close()


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word (no SSH banner)."""
    server = FakeServer()
    yield server.port
    server.close()


@pytest.fixture
def mute_after_banner():
    """A port that sends an SSH banner and then never another byte: a handshake that stalls."""
    server = FakeServer(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    yield server.port
    server.close()


def only_inventory_errors(path, data: bytes) -> None:
    """Load `data` as an inventory: it must give Hosts or an InventoryError naming the file, nothing else."""
    from fleet.errors import InventoryError
    from fleet.inventory import Inventory, load_inventory
    from fleet.models import Host

    path.write_bytes(data)
    try:
        result = load_inventory(path)
    except InventoryError as error:
        assert error.path == str(path)
    else:
        assert isinstance(result, Inventory)
        assert all(isinstance(host, Host) for host in result.hosts)
