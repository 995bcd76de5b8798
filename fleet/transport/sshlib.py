"""paramiko, imported without invoke.

paramiko.config imports invoke at load time for one rarely used ssh_config feature (`Match exec`,
which runs a local command), and invoke brings asyncio, unittest.mock and importlib.metadata:
35 ms of CPU and 7 MB of memory on every run. Here paramiko is imported with `import invoke`
failing, which paramiko.config expects and handles (it raises the import error only if a
`Match exec` is ever evaluated); `enable_match_exec` imports invoke for a config that has one.
"""

from __future__ import annotations

import sys

if "paramiko" not in sys.modules and "invoke" not in sys.modules:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` raises ImportError
    try:
        import paramiko
    finally:
        if sys.modules.get("invoke", False) is None:
            del sys.modules["invoke"]

import paramiko  # noqa: E402,F811 - the module imported above (or earlier by someone else)
import paramiko.config  # noqa: E402


def enable_match_exec() -> None:
    """Give paramiko's ssh_config lookups invoke, which they run `Match exec` commands with."""
    if getattr(paramiko.config, "invoke", None) is None:
        import invoke

        paramiko.config.invoke = invoke


__all__ = ["paramiko", "enable_match_exec"]
