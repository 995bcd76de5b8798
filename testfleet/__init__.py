"""testfleet: real test hosts for fleet, as Linux namespaces on this machine.

Each host is a small container made of namespaces (net, pid, mount, uts) with
a real OpenSSH sshd, a real nginx and a real backend (``python main.py``),
set up to show one "502 Bad Gateway" scenario; see ``SCENARIOS``.

    from testfleet import TestFleet, SCENARIOS
    with TestFleet(workdir, scenarios=["healthy", "backend_hanging"]) as tf:
        tf.inventory_path, tf.known_hosts_path, tf.expected

CLI: ``python -m testfleet up --dir D --scenarios all`` / ``python -m testfleet down --dir D``.
Needs root; raises ``TestFleetUnavailable`` (with the reason) otherwise.
"""

from .fleet import (
    DEFAULT_PREFIX,
    DEFAULT_SUBNET,
    Host,
    TestFleet,
    TestFleetError,
    TestFleetUnavailable,
    down_dir,
    route_dev,
)
from .scenarios import EXPECTED, FAMILIES, SCENARIOS, Scenario, parse_scenarios

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_SUBNET",
    "EXPECTED",
    "FAMILIES",
    "Host",
    "SCENARIOS",
    "Scenario",
    "TestFleet",
    "TestFleetError",
    "TestFleetUnavailable",
    "down_dir",
    "parse_scenarios",
    "route_dev",
]
