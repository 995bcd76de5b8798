"""bandarupay-api: the tiny backend that runs on every test host.

This file is copied into each test host's app directory (``/srv/app``) and
started there as ``python main.py`` (``python`` being the app venv's
interpreter).  It only uses the standard library.

Behaviour switches (each one realises a failure scenario for real):

``--no-listen``   start, then wait for the database forever; never bind 8000
``--ipv6-only``   listen on ``[::1]:8000`` only (nginx upstream says 127.0.0.1)
``--hang``        listen and accept, read the request, never answer
``--app-error``   database down: 500 on the login, 503 on ``/health``, and a
                  psycopg2-style traceback in the log
``--jwt-auth``    import the ``jwt`` module at start; the app venv does not have
                  it, so the process dies with ``ModuleNotFoundError``
``--delay S``     answer every request after S seconds
``--alloc-mb N``  hold N MiB of memory from the start (under a container's memory
                  limit: OOM-killed)
``--log -``       log to stderr (journald under systemd, ``docker logs`` in a container)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("bandarupay")
DB_HOST, DB_PORT = "127.0.0.1", 5432


class OperationalError(Exception):
    """Stand-in for psycopg2.OperationalError (psycopg2 is not installed)."""


OperationalError.__module__ = "psycopg2"
OperationalError.__qualname__ = "OperationalError"


def connect_db(timeout: float = 1.0) -> socket.socket:
    """Try the database the way libpq would, raising psycopg2's error."""
    try:
        return socket.create_connection((DB_HOST, DB_PORT), timeout=timeout)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OperationalError(
            f'connection to server at "{DB_HOST}", port {DB_PORT} failed: {reason}\n'
            "\tIs the server running on that host and accepting TCP/IP connections?"
        ) from None


class Handler(BaseHTTPRequestHandler):
    server_version = "bandarupay-api/1.4.2"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    opts: argparse.Namespace

    def log_message(self, fmt, *args):  # route access logs to the app log
        LOG.info("%s - %s", self.address_string(), fmt % args)

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _prelude(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if self.opts.hang:
            LOG.info("%s %s: acquiring connection from pool", self.command, self.path)
            threading.Event().wait()  # the pool never hands one out
        if self.opts.delay:
            time.sleep(self.opts.delay)

    def do_GET(self):
        self._prelude()
        if self.path.split("?")[0] == "/health":
            if self.opts.app_error:
                LOG.error("health check failed: database unavailable")
                self._send(503, {"status": "error", "detail": "database unavailable"})
            else:
                self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not_found", "path": self.path})

    def do_POST(self):
        self._prelude()
        if self.path.split("?")[0] == "/api/v1/demo-login":
            if self.opts.app_error:
                try:
                    connect_db()
                except OperationalError:
                    LOG.error("Exception on /api/v1/demo-login [POST]\n%s", traceback.format_exc().rstrip())
                self._send(500, {"error": "internal_server_error"})
            else:
                self._send(401, {"error": "invalid_credentials", "detail": "demo credentials rejected"})
        else:
            self._send(404, {"error": "not_found", "path": self.path})


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class V6Server(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="main.py", description="bandarupay api")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log", default="/var/log/bandarupay/app.log")
    p.add_argument("--no-listen", action="store_true")
    p.add_argument("--ipv6-only", action="store_true")
    p.add_argument("--hang", action="store_true")
    p.add_argument("--app-error", action="store_true")
    p.add_argument("--jwt-auth", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--alloc-mb", type=int, default=0)
    opts = p.parse_args(argv)

    fmt = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    if opts.log == "-":
        # Not filename=/dev/stderr: under systemd stderr is a socket to journald, which open() refuses.
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=fmt)
    else:
        os.makedirs(os.path.dirname(opts.log), exist_ok=True)
        logging.basicConfig(filename=opts.log, level=logging.INFO, format=fmt)
    LOG.info("Starting bandarupay-api 1.4.2 (pid %d, python %s)", os.getpid(), sys.version.split()[0])

    if opts.alloc_mb:
        LOG.info("Warming the cache: %d MiB", opts.alloc_mb)
        cache = bytearray(opts.alloc_mb << 20)
        for i in range(0, len(cache), 4096):  # touch every page, so the memory is really used
            cache[i] = 1

    if opts.jwt_auth:
        LOG.info("Loading auth backend: jwt")
        import jwt  # noqa: F401  -- not in the app venv: the process dies here

    if opts.no_listen:
        attempt = 0
        while True:
            attempt += 1
            try:
                connect_db().close()
                LOG.info("waiting for database: %s:%d is up but migrations are pending", DB_HOST, DB_PORT)
            except OperationalError as exc:
                LOG.warning(
                    "waiting for database at %s:%d (attempt %d): %s",
                    DB_HOST, DB_PORT, attempt, str(exc).splitlines()[0],
                )
            time.sleep(5)

    if opts.app_error:
        try:
            connect_db()
        except OperationalError:
            LOG.error("Database connection failed at startup\n%s", traceback.format_exc().rstrip())
        LOG.warning("continuing without database: requests will fail")

    Handler.opts = opts
    if opts.ipv6_only:
        server = V6Server(("::1", opts.port), Handler)
        where = f"[::1]:{opts.port}"
    else:
        server = Server((opts.host, opts.port), Handler)
        where = f"{opts.host}:{opts.port}"
    server.daemon_threads = True
    LOG.info("Listening on http://%s", where)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
