"""Defaults from a config file: `./fleet.toml`, else `$XDG_CONFIG_HOME/fleet/fleet.toml`.

Precedence is the command line, then `FLEET_*` environment variables, then this file, then
fleet's own defaults: click applies the file's values as `default_map`, beneath the other two.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from fleet.errors import InputError
from fleet.trustpath import others_can_write, warn_once

# Keys a [diagnose] table may set, and the option parameter each one feeds.
DIAGNOSE_KEYS = {
    "runbook": "runbook_name", "forks": "forks", "workers": "workers", "connect_timeout": "connect_timeout", "timeout": "timeout",
    "ssh_config": "ssh_config", "known_hosts": "known_hosts", "format": "formats", "out": "out",
}


def config_paths() -> list[Path]:
    """Where a config file is looked for, first found wins."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path("fleet.toml"), base / "fleet" / "fleet.toml"]


def load_default_map(paths: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """The first config file's settings as click's default_map; {} when there is none.

    A file that other users can write (or that sits in a directory they can write, such as a
    shared working directory) is skipped with a warning: it would let them choose what fleet,
    often run as root, does.
    """
    for path in paths if paths is not None else config_paths():
        if path.is_file():
            reason = others_can_write(path, in_shared_dir_ok=False)
            if reason:
                warn_once(f"ignoring {path}: {reason}")
                continue
            return _read(path)
    return {}


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config: {exc}", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise InputError(f"invalid TOML: {exc}", str(path), int(found.group(1)) if found else None) from None
    unknown_tables = set(data) - {"diagnose"}
    if unknown_tables:
        raise InputError(f"unknown table(s) {', '.join(sorted(unknown_tables))} (only [diagnose])", str(path))
    table = data.get("diagnose", {})
    unknown = set(table) - set(DIAGNOSE_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) in [diagnose]: {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(DIAGNOSE_KEYS)})", str(path))
    values = {DIAGNOSE_KEYS[k]: v for k, v in table.items()}
    if isinstance(values.get("known_hosts"), str):
        values["known_hosts"] = [values["known_hosts"]]
    if isinstance(values.get("formats"), list):
        values["formats"] = ",".join(values["formats"])
    return {"diagnose": values}
