"""Reading text files given by the user: every failure an InputError (or a subclass) naming the file and line."""

from __future__ import annotations

import json
from typing import Any

from fleet.errors import InputError


def read_bytes(path: str, what: str = "file", error: type[InputError] = InputError) -> bytes:
    """The file's bytes; `what` names the kind of file in error messages."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise error(f"{what} not found", path) from None
    except IsADirectoryError:
        raise error(f"{what} is a directory", path) from None
    except PermissionError:
        raise error(f"cannot read {what}: permission denied", path) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", path) from None
    except ValueError as exc:  # a NUL byte in the path
        raise error(f"cannot read {what}: {exc}", path) from None


def decode(data: bytes, path: str, error: type[InputError] = InputError) -> str:
    """UTF-8 text (a leading BOM dropped); bytes that are not UTF-8 are an error naming their line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", path, line) from None


def read_text(path: str, what: str = "file", error: type[InputError] = InputError) -> str:
    """The file as UTF-8 text."""
    return decode(read_bytes(path, what, error), path, error)


def parse_json(text: str, path: str) -> Any:
    """JSON read from the file at `path`; InputError naming the file and the line where it breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", path, exc.lineno) from None
