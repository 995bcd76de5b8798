"""fleet/gcpolicy.py: the collector off during a fleet process's start-up, start-up frozen, and
nothing touched in a process that only imports fleet (each case runs in its own interpreter:
the collector's state is process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleet import gcpolicy

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import gc, json
from fleet import gcpolicy
seen = {}
def note(step):
    seen[step] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
%s
print(json.dumps(seen))
"""


def _run(body: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PROBE % body], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_fleet_process_starts_with_the_collector_off_then_freezes_its_start_up():
    seen = _run("gcpolicy.start(); note('start'); import fleet.cli; note('imported');"
                "gcpolicy.settle(final=False); note('cli'); import fleet.runloop; gcpolicy.settle(); note('run');"
                "x = [object() for _ in range(1000)]; gcpolicy.settle(); note('later round')")
    assert seen["start"]["enabled"] is False
    assert seen["imported"]["enabled"] is False and seen["imported"]["frozen"] == 0
    assert seen["cli"]["enabled"] is True and seen["cli"]["frozen"] > 10_000  # the CLI's imports
    assert seen["cli"]["young"] == gcpolicy.YOUNG_THRESHOLD
    assert seen["run"]["frozen"] > seen["cli"]["frozen"]  # the run's set-up (runloop's imports)
    # A watch's later rounds freeze nothing more: their garbage stays collectable.
    assert seen["later round"]["frozen"] == seen["run"]["frozen"]


def test_fleet_as_a_library_leaves_the_collector_alone():
    seen = _run("import fleet.cli, fleet.runloop; gcpolicy.settle(final=False); gcpolicy.settle(); note('after')")
    assert seen["after"] == {"enabled": True, "frozen": 0, "young": 700}


def test_garbage_cycles_made_during_a_run_are_still_collected():
    seen = _run("gcpolicy.start(); gcpolicy.settle();\n"
                "class Node:\n    pass\n"
                "import weakref\nrefs = []\n"
                "for _ in range(100):\n    a, b = Node(), Node(); a.b, b.a = b, a; refs.append(weakref.ref(a))\n"
                "del a, b; gc.collect(); seen['alive'] = sum(1 for r in refs if r() is not None)")
    assert seen["alive"] == 0
