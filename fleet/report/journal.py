"""The run's journal: each host's entry appended as a JSON line the moment it lands.

A run that is killed, even with SIGKILL, still leaves every result it had.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping


class Journal:
    """An append-only JSON Lines file, readable by its owner only (it holds host output)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = None

    def __enter__(self) -> "Journal":
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, entry: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()
