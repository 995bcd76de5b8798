"""The typed data that flows through fleet: inventory -> hosts -> raw output -> facts -> verdict -> report."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Connection(str, enum.Enum):
    SSH = "ssh"
    LOCAL = "local"
    # An Ansible connection plugin fleet cannot speak (winrm, network_cli...): the host gets a verdict, not a run.
    UNSUPPORTED = "unsupported"


class Severity(str, enum.Enum):
    """How bad a verdict is. Anything but OK makes `fleet diagnose` exit 1."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class TransportStatus(str, enum.Enum):
    """How far the transport got with a host. Anything but OK is also the host's verdict code."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    HOST_KEY_REJECTED = "host_key_rejected"
    TIMEOUT = "timeout"
    # Decided from the inventory before any connection: nothing was tried on the host.
    UNSUPPORTED_CONNECTION = "unsupported_connection"
    INVENTORY_ERROR = "inventory_error"


#: Verdict codes the transport gives when the runbook could not run (or not to its end).
TRANSPORT_VERDICTS = frozenset(s.value for s in TransportStatus if s is not TransportStatus.OK)


def reached(verdict: str) -> bool:
    """The runbook ran on the host (to its end): `verdict` is the rules', not the transport's."""
    return verdict not in TRANSPORT_VERDICTS


class Judged:
    """What a verdict means, for a diagnosis and a report's host entry alike."""

    verdict: str
    severity: Severity

    @property
    def problem(self) -> bool:
        """The host needs attention: any verdict but a healthy one (makes `fleet diagnose` exit 1)."""
        return self.severity is not Severity.OK

    @property
    def reached(self) -> bool:
        """The runbook ran on the host (to its end): the verdict is not the transport's."""
        return reached(self.verdict)


class Privilege(str, enum.Enum):
    """What the probes ran as on a host (the script's `meta priv=`): what `fleet fix` may act with."""

    ROOT = "root"  # the login (or its become) is root: no sudo needed, none assumed installed
    SUDO = "sudo"  # passwordless `sudo -n` works
    USER = "user"  # neither: nothing that needs root is ever attempted

    @property
    def note(self) -> str:
        """The host note that records it in reports (read back by `privilege_of_notes`)."""
        return f"{_PRIVILEGE_NOTE}{self.value}"


_PRIVILEGE_NOTE = "privilege: "


def privilege_of_notes(notes: tuple[str, ...] | list[str]) -> Privilege | None:
    """The privilege a report's host notes record, None when they record none (or an unknown one)."""
    values = {p.value: p for p in Privilege}
    return next((values[n.removeprefix(_PRIVILEGE_NOTE)] for n in notes
                 if n.startswith(_PRIVILEGE_NOTE) and n.removeprefix(_PRIVILEGE_NOTE) in values), None)


class ExitCode(enum.IntEnum):
    OK = 0
    PROBLEMS = 1
    USAGE = 2
    INTERRUPTED = 130
    TERMINATED = 143


#: The inventory variables whose text Ansible puts on ssh's command line, in its order; fleet reads
#: ProxyJump and ProxyCommand from them.
SSH_ARG_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")


@dataclass(frozen=True)
class Unusable:
    """A variable value fleet cannot use: Ansible Vault ciphertext, or a template that failed to render.

    It stays in the host's variables and fails only a host that needs it (a connection setting or
    a runbook parameter), as Ansible fails only the tasks that use such a value.
    """

    reason: str

    def __str__(self) -> str:
        return f"<unusable: {self.reason}>"


@dataclass(frozen=True)
class HostProblem:
    """Why fleet will not run anything on a host, known before connecting; it becomes the host's verdict."""

    status: "TransportStatus"
    reason: str


class ProxyKind(str, enum.Enum):
    JUMP = "proxyjump"
    COMMAND = "proxycommand"


@dataclass(frozen=True)
class Jump:
    """How the inventory says to reach a host through another: ProxyJump's `[user@]host[:port][,...]`
    or a ProxyCommand (from `-J`, `-o ProxyJump=`, `-o ProxyCommand=` in its ssh arguments)."""

    kind: ProxyKind
    spec: str


@dataclass(frozen=True)
class Host:
    """One target, resolved from the inventory with its variables merged by precedence."""

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    connection: Connection = Connection.SSH
    groups: tuple[str, ...] = ()
    # Every non-connection variable, templates rendered; these become runbook parameters for the host.
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # The text as written of those variables that were templates (what `fleet hosts` shows, as Ansible does).
    templates: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # ansible_connection as written, when it names a plugin fleet does not support.
    plugin: str = ""
    # Set when the inventory alone rules the host out (unsupported connection, a setting fleet cannot use).
    problem: HostProblem | None = None
    # Ansible's become: run the script through sudo as this user ("" = no become).
    become_user: str = ""
    # ProxyJump or ProxyCommand from the inventory's ssh arguments (ssh_config may give one too).
    jump: Jump | None = None


@dataclass(frozen=True)
class Execution:
    """What the transport brought back from running one script on one host."""

    status: TransportStatus
    reason: str = ""
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    duration_s: float = 0.0
    # True when the controller stopped reading because the output passed its size cap.
    truncated: bool = False
    # A known_hosts line for a new host key accepted under --accept-new, for the caller to record.
    new_host_key: str = ""
    # Connection attempts made; more than one when sshd dropped connections (MaxStartups).
    attempts: int = 1


@dataclass(frozen=True)
class ProbeOutput:
    """The output of one probe, cut out of the host's script output."""

    name: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float | None
    truncated: bool = False
    # Set when the probe did not finish: cut off by the deadline, or killed by `timeout`.
    error: str = ""

    @property
    def ran(self) -> bool:
        return self.exit_code is not None


@dataclass(frozen=True)
class Diagnosis(Judged):
    """A verdict with what decided it and what to do about it."""

    verdict: str
    severity: Severity
    summary: str
    evidence: tuple[str, ...] = ()
    # The fix as report lines (`#` comments and shell lines), rendered from `steps` by fleet.fixes.
    fix: tuple[str, ...] = ()
    # The fix as data (fleet.fixes steps): what `fleet fix` executes.
    steps: tuple[Any, ...] = ()
    # With several runbooks (`--runbook 502,host`): each runbook's name and own diagnosis.
    parts: tuple[tuple[str, "Diagnosis"], ...] = ()


@dataclass(frozen=True)
class HostResult:
    host: Host
    diagnosis: Diagnosis
    probes: Mapping[str, ProbeOutput] = field(default_factory=dict, hash=False)
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    duration_s: float = 0.0
    # Host-level notes: privilege level, degraded probes, retries.
    notes: tuple[str, ...] = ()
    # The runbook parameters this host was diagnosed with.
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # Where each parameter's value came from: default, discovered, inventory or --var.
    param_sources: Mapping[str, str] = field(default_factory=dict, hash=False)
    # What the probes ran as (None: the script never said, e.g. the host was not reached).
    privilege: Privilege | None = None
