"""The error types fleet raises for bad input; the CLI turns them into one line and exit code 2."""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error that fleet reports to the user as one line, never a traceback."""


class InputError(FleetError):
    """A file or value given by the user is wrong: names where (file and line) when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.message}"


class InventoryError(InputError):
    """The inventory cannot be read or makes no sense."""


class RunbookError(InputError):
    """The runbook cannot be read, names an unknown parser, or has a broken expression."""
