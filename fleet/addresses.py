"""Telling an IP address from a host name, for the inventory (Ansible's magic variables) and the
SSH transport (names to look up) alike."""

from __future__ import annotations

import ipaddress


def is_ip(name: str) -> bool:
    """`name` is an IPv4 or IPv6 address as written (no brackets, no port), not a name to resolve."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
