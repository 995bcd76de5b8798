"""The README's demo: a small mixed fleet is brought up, diagnosed by `fleet diagnose`, and torn down.

Without root or namespaces there is no test fleet; the demo then diagnoses this machine over the
local connection and says why. The bring-up's own log is kept back and shown only if something
fails: what the demo shows is fleet's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .fleet import TestFleet, TestFleetUnavailable

SCENARIOS = ("healthy*3,backend_not_running*2,backend_hanging,backend_refusing,nginx_upstream_mismatch,"
             "nginx_config_invalid,sudo_password,unreachable")
DEMO_PREFIX, DEMO_SUBNET = "fltd", "198.18.220.0/24"
# The same as inventories/local.yml, written here so the demo needs no file of the checkout.
LOCAL_INVENTORY = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"


def _log(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


def _diagnose(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "fleet", "diagnose", *args], stdin=subprocess.DEVNULL)


def demo(out: str, prefix: str = DEMO_PREFIX, subnet: str = DEMO_SUBNET) -> int:
    """Exit 0 when fleet ran and (on a test fleet) every host got its expected verdict."""
    held: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-demo-") as workdir:
            try:
                with TestFleet(Path(workdir) / "fleet", scenarios=SCENARIOS, prefix=prefix, subnet=subnet,
                               log=held.append) as tf:
                    _log(f"{len(tf.expected)} test hosts up; running: fleet diagnose -i {tf.inventory_path}")
                    code = _diagnose("-i", str(tf.inventory_path), "--known-hosts", str(tf.known_hosts_path),
                                     "--ssh-config", "/dev/null", "--out", out)
                    return _check(tf.expected, out) if code in (0, 1) else code
            except TestFleetUnavailable as exc:
                _log(f"no test fleet here ({exc}); diagnosing this machine through the local connection instead")
                inventory = Path(workdir) / "local.yml"
                inventory.write_text(LOCAL_INVENTORY)
                code = _diagnose("-i", str(inventory), "--out", out)
                return 0 if code in (0, 1) else code
    except BaseException:
        for line in held:
            _log(line)
        raise


def _check(expected: dict[str, str], out: str) -> int:
    newest = max(Path(out).glob("*.json"), key=lambda p: p.stat().st_mtime)
    got = {h["name"]: h["verdict"] for h in json.loads(newest.read_text())["hosts"]}
    wrong = {name: (want, got.get(name)) for name, want in expected.items() if got.get(name) != want}
    if wrong:
        _log(f"unexpected verdicts (expected, got): {wrong}")
        return 1
    _log(f"every host got its expected verdict; reports in {out}/")
    return 0
