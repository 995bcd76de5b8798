"""Ansible inventories (YAML, INI, dynamic scripts, directories, group_vars/ and host_vars/) read into fleet Hosts.

Every source fills one Tree (tree.py); resolve.py applies Ansible's groups and precedence to it.
"""

from fleet.inventory.load import load_inventory
from fleet.inventory.resolve import Inventory

__all__ = ["Inventory", "load_inventory"]
