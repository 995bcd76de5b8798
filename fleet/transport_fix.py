"""Fixes for the verdicts the transport gives (nothing ran on the host, so no runbook rule could).

What to do about a changed or unknown host key, a refused login or a host that cannot be reached,
with this host's real values: the known_hosts file and line, the user and keys tried, whether
DNS, the route, a refusal or silence stopped the connection. Every value is shell-quoted, as it
may be pasted into a shell.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Callable

from fleet.models import HostResult, TransportStatus
from fleet.transport.hostkeys import known_hosts_names
from fleet.transport.ssh import Endpoint, SSHTransport


@dataclass(frozen=True)
class TransportContext:
    """What the run knew about connecting: for the fix lines of hosts it could not diagnose."""

    ssh: SSHTransport | None  # None when the run had no SSH hosts
    record_in: str  # the known_hosts file --accept-new records new keys in


def with_transport_fix(result: HostResult, context: TransportContext) -> HostResult:
    """The result with fix lines for a transport verdict that has none; other results unchanged."""
    d = result.diagnosis
    endpoint = context.ssh.endpoints.get(result.host.name) if context.ssh else None
    if d.fix or endpoint is None or d.verdict not in _FIXES:
        return result
    fix = _FIXES[d.verdict](d.summary, endpoint, context)
    return replace(result, diagnosis=replace(d, fix=tuple(fix))) if fix else result


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _host_key(reason: str, endpoint: Endpoint, context: TransportContext) -> list[str]:
    names = known_hosts_names(endpoint.hostname, endpoint.port)
    fingerprint = next((w for w in reason.split() if w.startswith(("SHA256:", "MD5:"))), "the new fingerprint")
    if "CHANGED" in reason:
        recorded = context.ssh.known_hosts.lines_of(names) if context.ssh else []
        files = dict.fromkeys(path for path, _ in recorded) or [context.record_in]
        return [*(f"the key of {endpoint.hostname} is recorded in {path} line {line}" for path, line in recorded),
                f"if {endpoint.hostname} was reinstalled or its key rotated, confirm {fingerprint} with its owner "
                "(on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then remove the old key:",
                *(f"ssh-keygen -R {_q(names[0])} -f {_q(path)}" for path in files),
                "if nobody changed it, do not connect: the connection may be intercepted"]
    keyscan = f"ssh-keyscan -p {endpoint.port} {_q(endpoint.hostname)}" if endpoint.port != 22 \
        else f"ssh-keyscan {_q(endpoint.hostname)}"
    return [f"record the key after checking {fingerprint} with the host's owner: "
            f"{keyscan} >> {_q(context.record_in)}",
            f"or let fleet record unknown keys (never changed ones) in {context.record_in}: add --accept-new"]


def _auth(reason: str, endpoint: Endpoint, context: TransportContext) -> list[str]:
    if "sudo" in reason:
        return ["the login worked but sudo (ansible_become) did not: give the password with --ask-become-pass or "
                "--become-password-file, or allow this user NOPASSWD for sh in sudoers"]
    credentials = context.ssh.credentials
    tried = [p for p in endpoint.key_files if p in credentials.keys] or list(credentials.keys)
    tried += ["the ssh-agent's keys"] if credentials.use_agent else []
    user = f"{endpoint.user}@{endpoint.hostname}"
    if not tried:
        return [f"no key to log in as {user}: set ansible_ssh_private_key_file (or IdentityFile), "
                "put a key in ~/.ssh, or load one into ssh-agent"]
    return [f"logged in as user {endpoint.user!r} with {', '.join(tried)}: none was accepted",
            f"add one of their public keys to ~{endpoint.user}/.ssh/authorized_keys on {endpoint.hostname}, "
            "or set ansible_user / ansible_ssh_private_key_file to a login that has one",
            f"check by hand: ssh -p {endpoint.port} -o BatchMode=yes {_q(user)} true"]


def _unreachable(reason: str, endpoint: Endpoint, context: TransportContext) -> list[str]:
    where = f"{endpoint.hostname} port {endpoint.port}"
    if reason.startswith("DNS") or "does not resolve" in reason or "looking up" in reason:
        return [f"DNS: the name {endpoint.hostname} does not resolve here: check it (getent hosts "
                f"{_q(endpoint.hostname)}) or set ansible_host to its address"]
    if reason.startswith("no route"):
        return [f"route: this machine has no route to {endpoint.hostname}: ip route get {_q(endpoint.hostname)}; "
                "is the address right, is a VPN or bastion (ProxyJump) needed?"]
    if "refused" in reason:
        return [f"refusal: {endpoint.hostname} answers but nothing accepts connections on port {endpoint.port}: "
                "is sshd running there, is ansible_port right?"]
    if reason.startswith("no answer") or "timed out" in reason:
        return [f"silence: nothing answered from {where} within the connect timeout: the host is down, a firewall "
                f"drops the packets, or the address is wrong; try: nc -vz -w 5 {_q(endpoint.hostname)} "
                f"{endpoint.port}"]
    if reason.startswith("SSH handshake") or "sent no SSH banner" in reason:
        return [f"silence: {where} accepts connections but the SSH handshake did not complete: is it sshd that "
                "listens there, is it overloaded (MaxStartups), or does a middlebox hold the connection?"]
    if reason.startswith("jump host"):
        return ["the bastion (ProxyJump) could not be used: fix the jump host first; its own line says why"]
    if "connection lost" in reason or "reset" in reason:
        return [f"the connection to {where} dropped: re-run this host (it is in the .retry file); if it "
                "keeps dropping, check sshd's MaxStartups and the network path"]
    return []


_FIXES: dict[str, Callable[[str, Endpoint, TransportContext], list[str]]] = {
    TransportStatus.HOST_KEY_REJECTED.value: _host_key,
    TransportStatus.AUTH_FAILED.value: _auth,
    TransportStatus.UNREACHABLE.value: _unreachable,
}
