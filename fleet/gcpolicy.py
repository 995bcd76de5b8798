"""The cyclic garbage collector in a fleet process: off while it starts, then blind to what start-up built.

Start-up (interpreter, imports, runbook, inventory) allocates some 200,000 objects that live as
long as the process, and Python's collector, triggered every 700 allocations, walks them again
and again: measured on a 150-host 502 run, collections were about a fifth of fleet's CPU outside
SSH (0.85 -> 0.72 s with the collector off). So a process that fleet itself starts (`python -m
fleet`, a worker) runs its start-up with the collector off, then, once set up, moves everything
alive into the permanent generation (`gc.freeze`) and turns the collector back on: cycles made
during the run (paramiko's transports, Jinja2's contexts) are still collected, among the run's
own objects only. Reference counting, which frees almost everything, is never affected.

Only a process that called `start()` is touched: fleet used as a library (the tests, a caller's
program) keeps its collector as it was, and never has its objects frozen.
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) between two collections of the youngest generation; Python's 700
#: made a 150-host run collect hundreds of times, each pass also ageing the run's results.
YOUNG_THRESHOLD = 20_000

_owned = False
_settled = False


def start() -> None:
    """Collector off for this process's start-up (call first thing in a process fleet owns)."""
    global _owned
    _owned = True
    gc.disable()


def settle(final: bool = True) -> None:
    """Set-up is over: what is alive now is never scanned again, and the collector is on for
    what comes next. `final=False` for a step of set-up after which more may come (the CLI
    before its command's own imports); after the final call (the run begins) later calls do
    nothing, so a watch's later rounds never freeze, and never keep, the garbage of earlier ones."""
    global _settled
    if not _owned or _settled:
        return
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()
    _settled = final
