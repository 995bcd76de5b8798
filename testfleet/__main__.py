"""python -m testfleet up|down|status|scenarios|demo"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .fleet import DEFAULT_PREFIX, DEFAULT_SUBNET, TestFleet, TestFleetError, TestFleetUnavailable, _netns_exists, _pid_alive, down_dir
from .scenarios import SCENARIOS


def _log(msg: str) -> None:
    print(f"testfleet: {msg}", file=sys.stderr, flush=True)


class _Stop(Exception):
    pass


def cmd_up(a: argparse.Namespace) -> int:
    tf = TestFleet(a.dir, scenarios=a.scenarios, count=a.count, prefix=a.prefix, subnet=a.subnet,
                   light=a.light, timeout=a.timeout, log=_log)

    def on_signal(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        tf.up()
    except _Stop as exc:
        _log(f"interrupted by {exc} during bring-up (cleaned up)")
        return 130
    print(f"inventory:   {tf.inventory_path}")
    print(f"known_hosts: {tf.known_hosts_path}")
    print(f"expected:    {tf.expected_path}")
    print(f"client key:  {tf.key_path}")
    print(f"state:       {tf.state_path}")
    if a.detach:
        _log(f"detached; tear down with: python -m testfleet down --dir {a.dir}")
        return 0
    _log(f"running; stop with Ctrl-C or: python -m testfleet down --dir {a.dir}")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except _Stop as exc:
        _log(f"{exc}: tearing down")
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        tf.down()
    return 0


def cmd_down(a: argparse.Namespace) -> int:
    if not down_dir(a.dir, log=_log):
        _log(f"nothing to tear down in {a.dir} (no state.json)")
    else:
        _log("down")
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    p = Path(a.dir) / "state.json"
    if not p.exists():
        print("down")
        return 1
    st = json.loads(p.read_text())
    print(f"bridge {st['bridge']}  subnet {st['subnet']}  ready {st.get('ready')}")
    for name, h in st["hosts"].items():
        if h["scenario"] == "unreachable":
            print(f"{name:28} {h['ip']:15} {h['scenario']:24} (address only, no host)")
            continue
        alive = bool(h.get("init_pid")) and _pid_alive(h["init_pid"])
        print(f"{name:28} {h['ip']:15} {h['scenario']:24} init {h.get('init_pid')} "
              f"{'alive' if alive else 'DEAD'}, netns {'yes' if _netns_exists(h['netns']) else 'no'}")
    return 0


def cmd_scenarios(a: argparse.Namespace) -> int:
    for s in SCENARIOS.values():
        print(f"{s.name:24} {s.family:9} -> {s.expected:24} {s.description}")
    from .realhost import SERVICES

    print("\non the real host (python -m testfleet realhost up): one machine, systemd as PID 1, dockerd")
    for r in SERVICES:
        print(f"{r.name:24} {r.manager:9} -> {r.expected:24} {r.description}")
    return 0


def cmd_realhost(a: argparse.Namespace) -> int:
    from . import realhost

    if a.action == "down":
        if not realhost.down_dir(a.dir, log=_log):
            _log(f"nothing to tear down in {a.dir} (no state.json)")
        return 0
    host = realhost.RealHost(a.dir, prefix=a.prefix, subnet=a.subnet, docker=not a.no_docker, log=_log)
    if a.action == "capture":
        from .capture import capture

        with host:
            capture(Path(a.fixtures), host, log=_log)
        _log("check the .json files by hand (git diff) before committing them")
        return 0
    host.up()  # everything it started is in DIR/state.json: `realhost down` ends it
    print(f"inventory:   {host.inventory_path}")
    print(f"known_hosts: {host.known_hosts_path}")
    for name, verdict in host.expected.items():
        print(f"  {name:26} -> {verdict}")
    _log(f"up; tear down with: python -m testfleet realhost down --dir {a.dir}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import demo

    return demo(a.out, a.prefix, a.subnet)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m testfleet", description="namespace test hosts for fleet")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring a test fleet up (stays in the foreground until `down`)")
    up.add_argument("--dir", required=True, help="work dir: inventory.yml, known_hosts, expected.json, state.json")
    up.add_argument("--scenarios", default="all", help="all, or a,b,c (name*N for N hosts)")
    up.add_argument("--count", type=int, default=1, help="hosts per scenario")
    up.add_argument("--prefix", default=DEFAULT_PREFIX, help="names: <prefix>br0, <prefix>-<host>, <prefix>v<n>")
    up.add_argument("--subnet", default=DEFAULT_SUBNET)
    up.add_argument("--light", action="store_true", help="hosts run only sshd (big benchmark fleets)")
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait for hosts to boot")
    up.add_argument("--detach", action="store_true", help="return once up; hosts keep running")
    up.set_defaults(fn=cmd_up)
    dn = sub.add_parser("down", help="tear down the fleet recorded in DIR/state.json")
    dn.add_argument("--dir", required=True)
    dn.set_defaults(fn=cmd_down)
    st = sub.add_parser("status", help="show the hosts recorded in DIR/state.json")
    st.add_argument("--dir", required=True)
    st.set_defaults(fn=cmd_status)
    de = sub.add_parser("demo", help="bring up a small mixed fleet, run fleet diagnose on it, tear it down")
    de.add_argument("--out", default="reports", help="where fleet writes its reports")
    de.add_argument("--prefix", default="fltd", help="names of the demo's interfaces and namespaces")
    de.add_argument("--subnet", default="198.18.220.0/24", help="the demo fleet's subnet")
    de.set_defaults(fn=cmd_demo)
    sc = sub.add_parser("scenarios", help="list the scenarios and their expected verdicts")
    sc.set_defaults(fn=cmd_scenarios)
    rh = sub.add_parser("realhost", help="a real server: systemd as PID 1 and dockerd, one service per scenario")
    rh.add_argument("action", choices=("up", "down", "capture"),
                    help="capture: up, recapture the parser fixtures that come from it (--fixtures), down")
    rh.add_argument("--dir", required=True, help="work dir: inventory.yml, known_hosts, state.json")
    rh.add_argument("--prefix", default="fsrh", help="names: <prefix>br0, <prefix>-real, <prefix>v0")
    rh.add_argument("--subnet", default="198.18.160.0/24")
    rh.add_argument("--no-docker", action="store_true", help="systemd services only")
    rh.add_argument("--fixtures", default="tests/fixtures/parsers", help="capture: the parser fixtures directory")
    rh.set_defaults(fn=cmd_realhost)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except TestFleetUnavailable as exc:
        _log(f"unavailable: {exc}")
        return 2
    except (TestFleetError, ValueError) as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
