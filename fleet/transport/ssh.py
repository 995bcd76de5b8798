"""SSH transport: one connection and one exec per host, every phase under the host's deadline.

ssh_config is read once by `fleet.transport.sshconfig`; the hot path (connect, handshake, host
key check, auth, one exec, read to EOF) drives paramiko's Transport directly, because Fabric's
`run()` spends most of its per-host CPU in invoke's polling threads, not in SSH.
"""

from __future__ import annotations

import errno
import getpass
import os
import random
import re
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass, replace

from fleet.transport.sshlib import paramiko

from fleet.addresses import is_ip
from fleet.executor import Deadline
from fleet.limits import HOST_OUTPUT_CAP
from fleet.models import Execution, Host, TransportStatus
from fleet.transport.become import Become, BecomeFailed, Secret, settle
from fleet.transport.credentials import Credentials
from fleet.transport.hostkeys import KeyCheck, KnownHosts, check, known_hosts_names
from fleet.transport.sshconfig import proxy_command

#: Bytes of stdout plus stderr kept per host; beyond that the controller stops reading.
DEFAULT_OUTPUT_CAP = HOST_OUTPUT_CAP
_READ_CHUNK = 65536
_BACKOFF_S = 0.25
# AEAD ciphers first: with them paramiko checks no separate MAC, whose pure-Python constant-time
# comparison (plus an HMAC per packet) was the largest single cost of reading a host's output.
# The other ciphers stay as fallbacks for servers without AES-GCM, in paramiko's order.
_AEAD_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# paramiko's transport thread wakes every 0.1 s (its socket timeout) to check whether it should
# stop, which for 50 hosts waiting on their scripts was thousands of wake-ups (and Python
# exceptions) a second. Once logged in nothing needs that: data wakes it at once, and closing the
# transport does not wait for it. During the handshake the 0.1 s stays, for the banner timeout.
_IDLE_CHECK_S = 1.0


@dataclass(frozen=True)
class SSHSettings:
    connect_timeout_s: float = 10.0
    accept_new: bool = False
    output_cap: int = DEFAULT_OUTPUT_CAP
    # Connection attempts when sshd drops us before its banner (MaxStartups).
    attempts: int = 4
    # The sudo password for hosts with become, asked once before any connection.
    become_password: Secret | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect, after merging inventory and ssh_config (inventory wins)."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    # The last jump host in front of this one (ProxyJump), itself possibly behind another.
    jump: "Endpoint | None" = None
    # Ansible's become: run the script through sudo as this user ("" = no become).
    become_user: str = ""
    # OpenSSH's ProxyCommand, %-tokens expanded: its stdin/stdout is the connection to this host.
    proxy_command: str | None = None


def resolve_endpoint(host: Host, ssh_config: paramiko.SSHConfig) -> Endpoint:
    """Merge the inventory's connection settings over ssh_config's, as Ansible does.

    ProxyJump or ProxyCommand come from the inventory's ssh arguments (`Host.jump`, see
    fleet/inventory/sshargs.py), else from ssh_config; become from `Host.become_user`.
    """
    found = ssh_config.lookup(host.address)
    key_files = [host.key_file] if host.key_file else []
    key_files += found.get("identityfile", [])
    hostname = found.get("hostname", host.address)
    port = host.port or int(found.get("port", 22))
    user = host.user or found.get("user") or getpass.getuser()
    proxy = (host.jump.kind.value, host.jump.spec) if host.jump else None
    if proxy is None:
        # paramiko's lookup keeps no order between the two; ProxyJump is the one fleet shares per bastion.
        command = proxy_command(ssh_config, host.address, port, user)
        proxy = ("proxyjump", found["proxyjump"]) if "proxyjump" in found else \
            ("proxycommand", command) if command else None
    kind, spec = proxy if proxy and proxy[1].strip().lower() != "none" else (None, None)
    return Endpoint(
        hostname=hostname,
        port=port,
        user=user,
        key_files=tuple(dict.fromkeys(os.path.expanduser(k) for k in key_files)),
        jump=_jump_chain(spec, ssh_config) if kind == "proxyjump" else None,
        become_user=host.become_user,
        proxy_command=_expand_tokens(spec, hostname, port, user) if kind == "proxycommand" else None,
    )


def _expand_tokens(command: str, hostname: str, port: int, user: str) -> str:
    """ssh's %h, %p, %r and %% in a ProxyCommand (ssh_config's are already expanded by paramiko)."""
    values = {"h": hostname, "p": str(port), "r": user, "n": hostname, "%": "%"}
    return re.sub(r"%([hprn%])", lambda m: values[m.group(1)], command)


def _jump_chain(spec: str, ssh_config: paramiko.SSHConfig) -> Endpoint:
    """`[user@]host[:port][,...]`, first hop first, as the Endpoint of the last hop."""
    previous = None
    for hop in spec.split(","):
        user, _, hostport = hop.strip().rpartition("@")
        name, port = hostport, None
        if hostport.count(":") == 1:
            name, port_text = hostport.split(":")
            port = int(port_text) if port_text.isdigit() else None
        found = ssh_config.lookup(name)
        port = port or int(found.get("port", 22))
        user = user or found.get("user") or getpass.getuser()
        previous = Endpoint(
            hostname=found.get("hostname", name), port=port, user=user,
            key_files=tuple(os.path.expanduser(k) for k in found.get("identityfile", [])), jump=previous,
            # The first hop's own ProxyCommand is how it is reached: never connect around it.
            proxy_command=proxy_command(ssh_config, name, port, user) if previous is None else None)
    return previous


class SSHTransport:
    """Runs a script with `sh -s` over SSH. Built once per run; `execute` is safe to call from many workers."""

    def __init__(self, settings: SSHSettings, known_hosts: KnownHosts, credentials: Credentials,
                 endpoints: dict[str, Endpoint]):
        self.settings = settings
        self.known_hosts = known_hosts
        self.credentials = credentials
        self.endpoints = endpoints
        self._bastions: dict[Endpoint, paramiko.Transport | _HostFailure] = {}
        # Names resolved before the pool starts (see `names_to_resolve`); jump targets are
        # resolved by their bastion, IP literals need no lookup.
        self.addresses: dict[str, str] = {}
        self.dns_errors: dict[str, str] = {}

    def names_to_resolve(self) -> list[str]:
        """Host names this machine must look up itself, once each."""
        names = {e.hostname for e in self.endpoints.values() if e.jump is None and e.proxy_command is None}
        names |= {hop.hostname for e in self.endpoints.values() for hop in jump_hosts(e.jump)[:1]
                  if hop.proxy_command is None}
        return sorted(n for n in names if not is_ip(n))

    def record_address(self, name: str, address: str | None, error: str = "") -> None:
        """The outcome of looking `name` up: its address, or why it has none (that host's verdict)."""
        if address:
            self.addresses[name] = address
        else:
            self.dns_errors[name] = error

    def open_bastions(self, deadline_s: float) -> list[str]:
        """Log in to every jump host once, before the pool starts, for all targets behind it to share.

        Opening one connection per target through a bastion would be N logins at once, which
        OpenSSH's default `MaxStartups 10:30:100` starts dropping. Returns the known_hosts lines
        of jump-host keys accepted under --accept-new, for the caller to record.
        """
        new_keys = []
        for endpoint in self.endpoints.values():
            for hop in jump_hosts(endpoint.jump):
                if hop not in self._bastions:
                    try:
                        self._bastions[hop], new_key = self._session(hop, Deadline(deadline_s))
                        new_keys += [new_key] if new_key else []
                    except _HostFailure as failure:
                        self._bastions[hop] = failure
        return new_keys

    def close(self) -> None:
        """Close the shared bastion connections."""
        for bastion in self._bastions.values():
            if isinstance(bastion, paramiko.Transport):
                bastion.close()

    def execute(self, host: Host, script: bytes, deadline: Deadline) -> Execution:
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                transport, new_key = self._session(self.endpoints[host.name], deadline)
                break
            except _HostFailure as failure:
                pause = random.uniform(0.5, 1.0) * _BACKOFF_S * 2 ** (attempt - 1)
                if not failure.dropped or attempt >= self.settings.attempts or deadline.remaining() < pause + 1:
                    reason = failure.reason + (f" (after {attempt} attempts)" if attempt > 1 else "")
                    return Execution(failure.status, reason, duration_s=time.monotonic() - started,
                                     attempts=attempt)
                # sshd drops connections beyond MaxStartups before its banner: back off and retry.
                time.sleep(pause)
                attempt += 1
        try:
            endpoint = self.endpoints[host.name]
            try:
                become = settle(transport, endpoint.become_user, self.settings.become_password, deadline) \
                    if endpoint.become_user else Become("sh -s")
            except BecomeFailed as exc:
                return Execution(TransportStatus.AUTH_FAILED, f"{endpoint.user}@{endpoint.hostname}: {exc}",
                                 duration_s=time.monotonic() - started, attempts=attempt)
            return replace(self._run(transport, become, script, deadline, started, new_key), attempts=attempt)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            status = TransportStatus.TIMEOUT if deadline.expired() else TransportStatus.UNREACHABLE
            return Execution(status, f"connection lost while running: {_one_line(exc)}",
                             duration_s=time.monotonic() - started)
        finally:
            transport.close()

    def _session(self, endpoint: Endpoint, deadline: Deadline) -> tuple[paramiko.Transport, str]:
        """Connect, verify the host key and authenticate; return the transport and any new key line."""
        where = f"{endpoint.hostname}:{endpoint.port}"
        sock = None
        transport = None
        begun = time.monotonic()
        step = min(self.settings.connect_timeout_s, deadline.remaining())
        try:
            sock = self._socket(endpoint, step)
            deadline.on_cancel(sock.close)
            transport = paramiko.Transport(sock)
            deadline.on_cancel(transport.close)
            step = min(self.settings.connect_timeout_s, deadline.remaining())
            transport.banner_timeout = transport.handshake_timeout = step
            transport.auth_timeout = max(0.1, deadline.remaining())
            names = known_hosts_names(endpoint.hostname, endpoint.port)
            recorded = self.known_hosts.recorded(names)
            options = transport.get_security_options()
            options.ciphers = _prefer(options.ciphers, _AEAD_FIRST)
            if recorded:
                # Ask for a key type we hold, or a changed key could pass as "unknown type".
                options.key_types = [t for t in options.key_types if t in recorded] or list(recorded)
            transport.start_client(timeout=step)
            new_key = self._verify(transport.get_remote_server_key(), names[0], recorded)
            reason = self._authenticate(transport, endpoint, deadline)
            if reason:
                raise _HostFailure(TransportStatus.AUTH_FAILED, reason)
            return transport, new_key
        except _HostFailure:
            _close(transport, sock)
            raise
        except socket.gaierror as exc:
            _close(transport, sock)
            raise _HostFailure(TransportStatus.UNREACHABLE,
                               f"DNS: {endpoint.hostname} does not resolve ({exc.strerror})") from None
        except ConnectionRefusedError:
            _close(transport, sock)
            raise _HostFailure(TransportStatus.UNREACHABLE, f"connection refused on {where}") from None
        except (socket.timeout, TimeoutError):
            _close(transport, sock)
            raise _HostFailure(TransportStatus.UNREACHABLE,
                               f"no answer from {where} within the connect timeout") from None
        except (paramiko.SSHException, EOFError) as exc:
            _close(transport, sock)
            if deadline.expired():
                raise _HostFailure(TransportStatus.TIMEOUT,
                                   f"deadline of {deadline.seconds:g}s passed during the SSH handshake") from None
            # A banner error that comes at once (not after the banner timeout) is a dropped connection.
            dropped = "banner" in str(exc) and time.monotonic() - begun < step / 2
            if not dropped and transport is not None and not transport.remote_version:
                raise _HostFailure(TransportStatus.UNREACHABLE, f"{where}: port {endpoint.port} accepts connections "
                                   f"but sent no SSH banner within {step:g} s") from None
            raise _HostFailure(TransportStatus.UNREACHABLE, f"SSH handshake with {where} failed: {_one_line(exc)}",
                               dropped) from None
        except ConnectionResetError:
            _close(transport, sock)
            raise _HostFailure(TransportStatus.UNREACHABLE, f"connection reset by {where} during the handshake",
                               True) from None
        except OSError as exc:
            _close(transport, sock)
            if deadline.expired():
                raise _HostFailure(TransportStatus.TIMEOUT, f"deadline of {deadline.seconds:g}s passed") from None
            raise _HostFailure(TransportStatus.UNREACHABLE, _socket_reason(exc, where)) from None

    def _socket(self, endpoint: Endpoint, timeout: float):
        """A TCP connection to the endpoint, its ProxyCommand, or a direct-tcpip channel through its bastion."""
        if endpoint.proxy_command is not None:
            return _proxy_socket(endpoint.proxy_command, timeout)
        if endpoint.jump is None:
            if endpoint.hostname in self.dns_errors:
                raise _HostFailure(TransportStatus.UNREACHABLE, f"DNS: {self.dns_errors[endpoint.hostname]}")
            address = self.addresses.get(endpoint.hostname, endpoint.hostname)
            sock = socket.create_connection((address, endpoint.port), timeout=max(0.1, timeout))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        bastion = self._bastions.get(endpoint.jump)
        if not isinstance(bastion, paramiko.Transport) or not bastion.is_active():
            if isinstance(bastion, _HostFailure):
                why = bastion.reason
            elif bastion is None:
                why = "not connected"
            else:
                why = "its connection was lost during the run"
            raise _HostFailure(TransportStatus.UNREACHABLE,
                               f"jump host {endpoint.jump.hostname}:{endpoint.jump.port}: {why}")
        try:
            return JumpSocket(bastion.open_channel("direct-tcpip", (endpoint.hostname, endpoint.port),
                                                   ("127.0.0.1", 0), timeout=max(0.1, timeout)))
        except paramiko.ChannelException as exc:
            raise _HostFailure(TransportStatus.UNREACHABLE,
                               f"jump host {endpoint.jump.hostname} cannot reach {endpoint.hostname}:"
                               f"{endpoint.port}: {exc.text}") from None

    def _verify(self, key: paramiko.PKey, name: str, recorded: dict[str, paramiko.PKey]) -> str:
        """Refuse unknown or changed keys; under --accept-new return the line recording an unknown one."""
        outcome = check(recorded, key)
        if outcome is KeyCheck.CHANGED:
            raise _HostFailure(TransportStatus.HOST_KEY_REJECTED,
                               f"host key CHANGED: {key.get_name()} {key.fingerprint} does not match known_hosts")
        if outcome is KeyCheck.UNKNOWN:
            if not self.settings.accept_new:
                raise _HostFailure(TransportStatus.HOST_KEY_REJECTED,
                                   f"host key unknown: {key.get_name()} {key.fingerprint} is not in known_hosts "
                                   "(add it, or run once with --accept-new)")
            return f"{name} {key.get_name()} {key.get_base64()}"
        return ""

    def _authenticate(self, transport: paramiko.Transport, endpoint: Endpoint, deadline: Deadline) -> str:
        """Try each key, then the agent; return why all failed, or '' once authenticated."""
        keys: list[paramiko.PKey] = self.credentials.keys_for(endpoint.key_files)
        if not endpoint.key_files or not keys:
            keys += [k for p, k in self.credentials.keys.items() if k not in keys]
        agent = paramiko.Agent() if self.credentials.use_agent else None
        if agent is not None:
            deadline.on_cancel(agent.close)
            keys += list(agent.get_keys())
        tried = 0
        try:
            for key in keys:
                if deadline.expired():
                    break
                tried += 1
                try:
                    transport.auth_publickey(endpoint.user, key)
                except paramiko.BadAuthenticationType as exc:
                    return f"server does not accept public keys for {endpoint.user} (allowed: {', '.join(exc.allowed_types)})"
                except paramiko.AuthenticationException:
                    continue
                if transport.is_authenticated():
                    return ""
        finally:
            if agent is not None:
                agent.close()
        if not tried:
            return f"no usable key for {endpoint.user}@{endpoint.hostname} (none in inventory, ssh_config, ~/.ssh or agent)"
        return f"permission denied for {endpoint.user}@{endpoint.hostname} ({tried} key(s) tried)"

    def _run(self, transport: paramiko.Transport, become: Become, script: bytes, deadline: Deadline, started: float,
             new_key: str) -> Execution:
        transport.sock.settimeout(_IDLE_CHECK_S)
        channel = transport.open_session(timeout=max(0.1, deadline.remaining()))
        channel.exec_command(become.command)  # no pty: a pty merges stderr into stdout and mangles bytes
        channel.sendall(become.stdin_prefix + script)
        channel.shutdown_write()
        out, err = bytearray(), bytearray()
        truncated = False
        _await_exit(channel, deadline)
        wake = _wakeup(channel)
        while not ((channel.eof_received or channel.closed) and not channel.recv_ready()
                   and not channel.recv_stderr_ready()):
            if channel.recv_ready():
                chunk = channel.recv(_READ_CHUNK)
                truncated |= _append_capped(out, chunk, self.settings.output_cap - len(err))
            elif channel.recv_stderr_ready():
                chunk = channel.recv_stderr(_READ_CHUNK)
                truncated |= _append_capped(err, chunk, self.settings.output_cap - len(out))
            elif deadline.expired():  # after what was buffered: the output so far is kept whole
                return Execution(TransportStatus.TIMEOUT,
                                 f"no complete result within the {deadline.seconds:g}s deadline; output so far kept",
                                 bytes(out), bytes(err), None, time.monotonic() - started, truncated, new_key)
            else:
                wake(min(deadline.remaining(), 1.0))
            if truncated:
                break  # the rest is not worth the memory; the splitter marks what was cut
        if not channel.eof_received and not truncated and not transport.is_active():
            # The connection died under the channel (paramiko then closes it without an EOF), as
            # when the bastion in front goes away: say so now, not at the deadline.
            return Execution(TransportStatus.UNREACHABLE, "connection lost while running; output so far kept",
                             bytes(out), bytes(err), None, time.monotonic() - started, truncated, new_key)
        exit_code = None
        if channel.status_event.wait(min(deadline.remaining(), 2.0)):
            exit_code = channel.recv_exit_status()
        return Execution(TransportStatus.OK, "", bytes(out), bytes(err), exit_code,
                         time.monotonic() - started, truncated, new_key)


# Text only a shell gives meaning to; a ProxyCommand without any runs as a plain argv, no shell.
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?{}~\n]")


class ProxySocket(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, reading what is there rather than spinning until `size` bytes came
    (its loop never ends once the command has exited), and reaping the command when closed."""

    def recv(self, size: int) -> bytes:
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        if not ready:
            raise socket.timeout()
        return os.read(self.process.stdout.fileno(), size)  # b"" at EOF, which paramiko reads as the end

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _proxy_socket(command: str, timeout: float) -> ProxySocket:
    """The user's ProxyCommand as the connection: run directly when it is a plain command line,
    else under `sh -c 'exec ...'` as OpenSSH runs it."""
    try:
        argv = ["/bin/sh", "-c", f"exec {command}"] if _SHELL_SYNTAX.search(command) else shlex.split(command)
        if not argv:
            raise ValueError("it is empty")
        sock = ProxySocket(shlex.join(argv))
    except (OSError, ValueError) as exc:
        raise _HostFailure(TransportStatus.UNREACHABLE,
                           f"ProxyCommand {command!r} cannot run: {getattr(exc, 'strerror', None) or exc}") from None
    sock.settimeout(max(0.1, timeout))
    return sock


def _prefer(available, first: tuple[str, ...]) -> tuple[str, ...]:
    """`available` with those of `first` that it holds moved to the front; nothing added or dropped."""
    available = tuple(available)
    return tuple(a for a in first if a in available) + tuple(a for a in available if a not in first)


def _wakeup(channel: paramiko.Channel):
    """A wait(timeout) that returns when stdout or stderr data, EOF or close arrive on the channel.

    The channel's two buffers set a shared Event when fed or closed (what `Channel.fileno()` does
    with an OS pipe for select(), minus the two file descriptors and a write() per packet). Only
    this thread reads the buffers (reading an empty one clears the Event), and it checks both
    buffers before every wait, so no wake-up is lost. Falls back to select() on a paramiko without
    the buffers.
    """
    buffers = (getattr(channel, "in_buffer", None), getattr(channel, "in_stderr_buffer", None))
    if not all(hasattr(b, "set_event") for b in buffers):
        return lambda timeout: select.select([channel], [], [], timeout)
    event = threading.Event()
    with channel.lock:
        for buf in buffers:
            buf.set_event(event)
        if channel.closed or channel.eof_received:
            event.set()
    return event.wait


def _await_exit(channel: paramiko.Channel, deadline: Deadline) -> None:
    """Wait for the script's exit status (or the channel's end) without waking for every packet.

    The output piles up in the channel's buffers meanwhile and is read at once afterwards: a
    host's script sends some thirty packets, each of which woke this thread (a GIL hand-off and
    a few lock round trips) only to append a few hundred bytes. The wait ends early when half
    the channel's window is buffered (the host would soon have to stop sending until it is
    read), at the deadline, and is re-checked each second (an EOF without an exit status).
    """
    limit = channel.in_window_size // 2
    while not (channel.status_event.is_set() or channel.eof_received or deadline.expired()):
        if len(channel.in_buffer) + len(channel.in_stderr_buffer) >= limit:
            return
        channel.status_event.wait(min(deadline.remaining(), _IDLE_CHECK_S))


def _append_capped(buf: bytearray, chunk: bytes, room: int) -> bool:
    """Append what fits; True if something had to be dropped."""
    if len(buf) + len(chunk) <= room:
        buf += chunk
        return False
    buf += chunk[: max(0, room - len(buf))]
    return True


class JumpSocket:
    """A direct-tcpip channel through a bastion, as the socket of the transport to the host behind.

    paramiko's `Channel.send` builds its data message under the channel's lock but transmits it
    after letting go, so a `close()` from another thread can slip in between and put data on the
    wire after the channel's CLOSE. sshd answers that with "data packet referred to nonexistent
    channel" and ends the bastion connection, and with it every other host still running behind
    it. Here a close waits for a send in flight; a send waits at most the channel's timeout.
    """

    def __init__(self, channel: paramiko.Channel):
        self.channel = channel
        self._sending = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._sending:
            return self.channel.send(data)

    def close(self) -> None:
        with self._sending:
            self.channel.close()

    def recv(self, size: int) -> bytes:
        return self.channel.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    @property
    def _closed(self) -> bool:
        # paramiko's Transport.stop_thread reads this private attribute of real sockets.
        return self.channel.closed


class _HostFailure(Exception):
    """Why a host (or the jump host in front of it) could not be reached; becomes its verdict.

    `dropped`: the server closed the connection before speaking, which is worth a retry.
    """

    def __init__(self, status: TransportStatus, reason: str, dropped: bool = False):
        super().__init__(reason)
        self.status, self.reason, self.dropped = status, reason, dropped


def _close(transport: paramiko.Transport | None, sock) -> None:
    if transport is not None:
        transport.close()
    elif sock is not None:
        sock.close()


def jump_hosts(endpoint: Endpoint | None) -> list[Endpoint]:
    """Jump hosts from the first hop to the last."""
    hops = []
    while endpoint is not None:
        hops.append(endpoint)
        endpoint = endpoint.jump
    return hops[::-1]


def _socket_reason(exc: OSError, where: str) -> str:
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to {where}"
    if exc.errno == errno.ECONNRESET:
        return f"connection reset by {where}"
    return f"cannot connect to {where}: {exc.strerror or exc}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
