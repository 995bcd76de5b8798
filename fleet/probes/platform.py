"""The host's platform from `uname` and os-release, and what fleet's probes can do there.

Input: `uname=S release=R machine=M` then os-release's `ID=`, `ID_LIKE=`, `VERSION_ID=`,
`PRETTY_NAME=` lines, `macos_version=` (sw_vers) or `freebsd_version=` (freebsd-version).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from fleet.probes._common import clip, key_values


class Family(str, enum.Enum):
    """The platforms fleet tells apart; the probes pick their commands by these."""

    DEBIAN = "debian"  # Debian, Ubuntu and their derivatives: what the probes are built and tested on
    LINUX = "linux"  # other Linux distributions (RHEL, Alpine, ...): same kernel interfaces
    MACOS = "macos"
    FREEBSD = "freebsd"
    OTHER_BSD = "bsd"  # OpenBSD, NetBSD, DragonFly
    WINDOWS = "windows"  # a POSIX layer (Git Bash, MSYS2, Cygwin) on Windows
    UNKNOWN = "unknown"


# uname -s prefixes of POSIX layers on Windows.
_WINDOWS = ("MINGW", "MSYS", "CYGWIN", "Windows_NT", "UWIN")


@dataclass(frozen=True)
class Platform:
    kernel: str  # uname -s
    release: str
    machine: str
    os_id: str  # os-release ID, or macos / freebsd
    os_like: str
    version: str
    name: str  # os-release PRETTY_NAME, or kernel and version
    family: Family

    @property
    def label(self) -> str:
        """`Debian GNU/Linux 12 (bookworm)`, `macOS 14.4`, `FreeBSD 14.0-RELEASE`."""
        return self.name or self.kernel or "an unknown platform"

    @property
    def supported(self) -> bool:
        """False where fleet's probes cannot run at all (Windows, or no uname answer)."""
        return self.family not in (Family.WINDOWS, Family.UNKNOWN)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return clip(value, 120)


def _family(kernel: str, os_id: str, like: str) -> Family:
    if kernel.startswith(_WINDOWS):
        return Family.WINDOWS
    if kernel == "Linux":
        words = {os_id, *like.split()}
        return Family.DEBIAN if words & {"debian", "ubuntu"} else Family.LINUX
    if kernel == "Darwin":
        return Family.MACOS
    if kernel == "FreeBSD":
        return Family.FREEBSD
    if kernel in ("OpenBSD", "NetBSD", "DragonFly"):
        return Family.OTHER_BSD
    return Family.UNKNOWN


def parse_platform(lines: list[str]) -> Platform:
    """The platform from the `platform` section's lines; Family.UNKNOWN when uname said nothing."""
    fields: dict[str, str] = {}
    release: dict[str, str] = {}
    for line in lines:
        if line.startswith("uname="):
            fields.update(key_values(line))
        else:
            key, sep, value = line.partition("=")
            if sep and key in ("ID", "ID_LIKE", "VERSION_ID", "PRETTY_NAME", "macos_version", "freebsd_version"):
                release[key] = _unquote(value)
    kernel = clip(fields.get("uname", ""), 60)
    kernel = "" if kernel == "unknown" else kernel
    os_id, like = release.get("ID", "").lower(), release.get("ID_LIKE", "").lower()
    version, name = release.get("VERSION_ID", ""), release.get("PRETTY_NAME", "")
    if release.get("macos_version"):
        os_id, version, name = "macos", release["macos_version"], f"macOS {release['macos_version']}"
    elif release.get("freebsd_version"):
        os_id, version, name = "freebsd", release["freebsd_version"], f"FreeBSD {release['freebsd_version']}"
    elif not name and kernel:
        name = f"{kernel} {fields.get('release', '')}".strip()
    return Platform(kernel, clip(fields.get("release", ""), 80), clip(fields.get("machine", ""), 40), os_id, like,
                    version, name, _family(kernel, os_id, like))


# What Windows' shells answer to `sh -s` when no POSIX layer is installed: cmd.exe, then PowerShell.
_WINDOWS_SHELL = re.compile(r"'sh' is not recognized as an internal or external command"
                            r"|The term 'sh' is not recognized as (?:the )?name of a cmdlet")


def windows_shell(text: str) -> str | None:
    """The line saying `sh` is missing on a Windows host, or None: the script never ran there."""
    # Split on \n only (str.splitlines also splits on U+2028 and others the host did not).
    for line in text.split("\n", 50)[:50]:
        if _WINDOWS_SHELL.search(line):
            return clip(line.strip())
    return None
