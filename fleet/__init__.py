"""fleet: agentless fleet diagnostics over SSH."""

__version__ = "0.1.0"
