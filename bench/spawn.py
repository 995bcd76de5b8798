"""Run a command and write its exact rusage (wait4) as JSON: `python3 -I -S spawn.py OUT.json ARGV...`.

The bench measures each tool through this small launcher rather than directly: a process forked
from the (large) bench process inherits the bench's memory high-water mark in ru_maxrss, and
this launcher is small, so the tool's own peak RSS and CPU come out exact. Descendants the tool
reaped (ssh clients, ansible workers) are included, as with RUSAGE_CHILDREN.
"""
import json
import os
import signal
import sys

out, argv = sys.argv[1], sys.argv[2:]
pid = os.posix_spawnp(argv[0], argv, os.environ)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda s, f: os.kill(pid, signal.SIGKILL))
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
with open(out, "w") as fh:
    json.dump({"user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status)}, fh)
sys.exit(min(255, max(0, os.waitstatus_to_exitcode(status))))
