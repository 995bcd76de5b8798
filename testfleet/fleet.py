"""Bring test hosts up as Linux namespaces on this machine, and tear them down.

Every host gets its own network namespace joined to one bridge by a veth pair
(no default route: nothing can leave), its own PID, mount and UTS namespaces,
and private copies of /etc/nginx, /etc/ssh, /etc/passwd, /etc/shadow,
/etc/group, /etc/sudoers, /etc/hosts, /var/log, /run, /srv, /home, /root and
/tmp bind-mounted inside its mount namespace, so nothing on the real machine
changes.  In it run a real OpenSSH sshd, a real nginx and the backend
(``python main.py``), shaped by the host's scenario (see scenarios.py).

Everything created is recorded in WORKDIR/state.json *before* it is created,
so ``down`` (also ``python -m testfleet down --dir WORKDIR`` after a crash)
removes exactly what this harness made: processes by PID (checked against
their command line first), veths, netns and the bridge by name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .scenarios import SCENARIOS, Scenario, parse_scenarios

PKG_DIR = Path(__file__).resolve().parent
HOSTINIT = PKG_DIR / "hostinit.py"
APP_MAIN = PKG_DIR / "main.py"
DEFAULT_PREFIX = "flt"
DEFAULT_SUBNET = "198.18.0.0/24"  # RFC 2544 benchmark range: our test subnet
FIRST_HOST_OFFSET = 10
FLEETOPS_UID = 1500


class TestFleetError(RuntimeError):
    """Bring-up or tear-down of the test fleet failed."""

    __test__ = False  # not a pytest test class


class TestFleetUnavailable(TestFleetError):
    """This machine cannot run a test fleet (not root, no namespaces, missing tools)."""

    __test__ = False


@dataclass
class Host:
    name: str
    scenario: Scenario
    index: int
    ip: str
    netns: str
    veth: str
    hostdir: Path
    user: str
    light: bool = False
    unshare_pid: int | None = None
    init_pid: int | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    pids: dict = field(default_factory=dict)  # pids inside the host's PID namespace

    @property
    def expected(self) -> str | None:
        # light hosts run only sshd: only SSH-level verdicts are still meaningful
        return None if self.light and self.scenario.family != "ssh" else self.scenario.expected


def _run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and cp.returncode != 0:
        raise TestFleetError(f"command failed ({cp.returncode}): {' '.join(cmd)}\n{cp.stderr.strip()}")
    return cp


def _tail(path: Path, lines: int = 25) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(missing)"
    return "\n".join(data[-lines:]) or "(empty)"


def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pid_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _find_host_procs(hostdirs: set[str]) -> set[int]:
    """PIDs (in our PID namespace) of `unshare`/init processes of these host dirs."""
    found = set()
    if not hostdirs:
        return found
    for d in os.listdir("/proc"):
        if d.isdigit():
            argv = _pid_argv(int(d))
            if any(a.endswith("hostinit.py") for a in argv) and hostdirs & set(argv):
                found.add(int(d))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _children_of(ppids: set[int]) -> dict[int, int]:
    """{parent pid: child pid} for the given parents (scans /proc once)."""
    found: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid in ppids:
            found[ppid] = int(d)
    return found


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def route_dev(addr: str) -> str | None:
    """The device the kernel would use to reach addr (``ip -j route get``)."""
    cp = _run(["ip", "-j", "route", "get", addr], check=False)
    if cp.returncode != 0:
        return None
    try:
        return json.loads(cp.stdout)[0].get("dev")
    except (ValueError, IndexError, AttributeError):
        return None


class TestFleet:
    """A fleet of namespace test hosts.

    >>> with TestFleet("/tmp/tf", scenarios=["healthy", "backend_hanging*2"]) as tf:
    ...     tf.inventory_path, tf.known_hosts_path, tf.expected

    ``scenarios``: "all", "a,b*3" or a list; ``count`` multiplies every entry.
    ``light``: hosts run only sshd (no nginx, no backend; expected verdict None)
    for big benchmark fleets.  ``prefix`` names the bridge (``<prefix>br0``),
    netns (``<prefix>-<host>``) and veths (``<prefix>v<n>``); ``subnet`` holds
    the bridge (first address) and the hosts (from .10 on).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        workdir: str | os.PathLike,
        scenarios: str | Iterable[str] = "all",
        count: int = 1,
        *,
        prefix: str = DEFAULT_PREFIX,
        subnet: str = DEFAULT_SUBNET,
        light: bool = False,
        timeout: float | None = None,
        auto_install: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix):
            raise ValueError("prefix must be 1-8 lowercase letters/digits, starting with a letter")
        self.workdir = Path(workdir).resolve()
        self.prefix = prefix
        self.bridge = f"{prefix}br0"
        self.network = ipaddress.ip_network(subnet, strict=False)
        if self.network.version != 4 or self.network.prefixlen > 28:
            raise ValueError("subnet must be an IPv4 network of /28 or larger")
        self.bridge_ip = str(self.network.network_address + 1)
        self.light = light
        self.auto_install = auto_install
        self._log = log or (lambda msg: None)
        self._lock = threading.RLock()
        self._up = False
        self.timings: dict[str, float] = {}

        specs = parse_scenarios(scenarios, count)
        capacity = self.network.num_addresses - FIRST_HOST_OFFSET - 1
        if len(specs) > capacity:
            raise ValueError(f"{len(specs)} hosts do not fit in {self.network} (room for {capacity})")
        self.hosts: dict[str, Host] = {}
        for i, (name, scen) in enumerate(specs):
            sc = SCENARIOS[scen]
            self.hosts[name] = Host(
                name=name, scenario=sc, index=i,
                ip=str(self.network.network_address + FIRST_HOST_OFFSET + i),
                netns=f"{prefix}-{name}", veth=f"{prefix}v{i}",
                hostdir=self.workdir / "hosts" / name, user=sc.user, light=light,
            )
        self.timeout = timeout if timeout is not None else 30.0 + 0.3 * len(self.hosts)
        self._state: dict = {}

    # ----------------------------------------------------------------- paths
    key_path = property(lambda self: self.workdir / "id_ed25519")
    inventory_path = property(lambda self: self.workdir / "inventory.yml")
    known_hosts_path = property(lambda self: self.workdir / "known_hosts")
    expected_path = property(lambda self: self.workdir / "expected.json")
    state_path = property(lambda self: self.workdir / "state.json")

    @property
    def expected(self) -> dict[str, str | None]:
        return {h.name: h.expected for h in self.hosts.values()}

    def __enter__(self) -> "TestFleet":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # ------------------------------------------------------------- bring-up
    def up(self) -> "TestFleet":
        t0 = time.monotonic()
        self._preflight()
        try:
            self._bring_up()
        except BaseException as exc:
            self._log(f"bring-up failed ({exc.__class__.__name__}); tearing down what was started")
            try:
                self.down()
            except Exception as exc2:  # keep the original error
                self._log(f"tear-down after failed bring-up also failed: {exc2}")
            raise
        self.timings["up"] = t = time.monotonic() - t0
        self._log(f"{len(self.hosts)} hosts up in {t:.1f}s (prepare {self.timings['prepare']:.1f}s, "
                  f"network {self.timings['network']:.1f}s, boot {self.timings['boot']:.1f}s, "
                  f"verify {self.timings['verify']:.1f}s)")
        return self

    def _preflight(self) -> None:
        if not sys.platform.startswith("linux"):
            raise TestFleetUnavailable("test fleets need Linux namespaces; this is not Linux")
        if os.geteuid() != 0:
            raise TestFleetUnavailable(
                "test fleets need root (creating network/PID/mount namespaces, veths and a bridge); "
                f"running as uid {os.geteuid()}"
            )
        for ns in ("net", "pid", "mnt", "uts"):
            if not os.path.exists(f"/proc/self/ns/{ns}"):
                raise TestFleetUnavailable(f"kernel has no {ns} namespace support (/proc/self/ns/{ns} missing)")
        need = {"ip": "iproute2", "unshare": "util-linux", "nsenter": "util-linux",
                "ssh-keygen": "openssh-client", "curl": "curl"}
        full = not self.light and any(h.scenario.exists for h in self.hosts.values())
        missing = [f"{b} ({pkg})" for b, pkg in need.items() if not shutil.which(b)]
        if not os.access("/usr/sbin/sshd", os.X_OK):
            missing.append("/usr/sbin/sshd (openssh-server)")
        if full and not os.access("/usr/sbin/nginx", os.X_OK):
            missing.append("/usr/sbin/nginx (nginx)")
        if missing:
            raise TestFleetUnavailable("missing tools: " + ", ".join(missing))
        self.host_python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else None
        if self.host_python is None:
            py = shutil.which("python3")
            if not py:
                raise TestFleetUnavailable("no python3 for the hosts' init and backend")
            self.host_python = os.path.realpath(py)
        for target in ("/srv", "/home", "/etc/nginx" if full else "/etc/ssh"):
            if not os.path.isdir(target):
                raise TestFleetUnavailable(f"{target} does not exist: it is a bind-mount target inside hosts")
        if any(h.user != "root" for h in self.hosts.values()) and not os.access("/usr/bin/sudo", os.X_OK):
            if not self.auto_install:
                raise TestFleetUnavailable("sudo_password hosts need sudo (apt-get install sudo)")
            self._log("installing sudo (apt-get install -y sudo)")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            cp = _run(["apt-get", "install", "-y", "--no-install-recommends", "sudo"], check=False, env=env)
            if cp.returncode != 0:  # empty or stale package lists on a fresh machine
                _run(["apt-get", "update"], check=False, env=env)
                cp = _run(["apt-get", "install", "-y", "--no-install-recommends", "sudo"], check=False, env=env)
            if cp.returncode != 0 or not os.access("/usr/bin/sudo", os.X_OK):
                raise TestFleetUnavailable(f"sudo is missing and apt-get install sudo failed: {cp.stderr[-500:]}")
        if self.state_path.exists():
            raise TestFleetError(
                f"{self.state_path} exists: a fleet from this directory may still be up; "
                f"run `python -m testfleet down --dir {self.workdir}` first"
            )
        if _link_exists(self.bridge):
            raise TestFleetError(
                f"bridge {self.bridge} already exists (another test fleet?); tear that fleet down "
                "or use another prefix"
            )
        for h in self.hosts.values():
            if _netns_exists(h.netns) or _link_exists(h.veth):
                raise TestFleetError(f"netns {h.netns} or link {h.veth} already exists; use another prefix")
        cp = _run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False)
        for r in json.loads(cp.stdout or "[]"):
            dst = r.get("dst", "")
            if dst in ("default", "") or r.get("type") in ("local", "broadcast"):
                continue
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.overlaps(self.network):
                raise TestFleetError(
                    f"route {dst} dev {r.get('dev')} overlaps the test subnet {self.network}; "
                    "choose another subnet"
                )

    def _save_state(self) -> None:
        with self._lock:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._state, indent=1))
            os.replace(tmp, self.state_path)

    def _bring_up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        existing = [h for h in self.hosts.values() if h.scenario.exists]
        self._state = {
            "version": 1,
            "owner_pid": os.getpid(),
            "owner_cmdline": _pid_cmdline(os.getpid()),
            "workdir": str(self.workdir),
            "prefix": self.prefix,
            "subnet": str(self.network),
            "bridge": self.bridge,
            "bridge_created": False,
            "netns": [],
            "veths": [],
            "hosts": {},
            "ready": False,
        }
        for h in self.hosts.values():
            self._record_host(h)
        self._save_state()

        # keys and per-host files
        self._keygen(self.key_path, "testfleet-client")
        self.key_path.chmod(0o600)
        if any(not h.scenario.authorized for h in self.hosts.values()):
            self._keygen(self.workdir / "keys" / "other_ed25519", "someone-else")
        self._password = secrets.token_urlsafe(12)
        self._pwhash = self._hash_password(self._password)
        pw = self.workdir / "fleetops.password"
        pw.write_text(self._password + "\n")
        pw.chmod(0o600)
        self._passwd = Path("/etc/passwd").read_text()
        self._shadow = Path("/etc/shadow").read_text()
        self._group = Path("/etc/group").read_text()
        m = re.search(r"^shadow:[^:]*:(\d+):", self._group, re.M)
        self._shadow_gid = int(m.group(1)) if m else 0
        workers = min(32, max(4, len(existing)))
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(self._prepare_host, existing))
        self.timings["prepare"] = time.monotonic() - t

        # network: bridge, netns, veth pairs (one ip -batch)
        t = time.monotonic()
        self._state["bridge_created"] = True  # recorded before creation
        self._save_state()
        cp = _run(["ip", "link", "add", self.bridge, "type", "bridge"], check=False)
        if cp.returncode != 0:
            self._state["bridge_created"] = False
            self._save_state()
            raise TestFleetUnavailable(f"cannot create bridge {self.bridge}: {cp.stderr.strip()}")
        _run(["ip", "addr", "add", f"{self.bridge_ip}/{self.network.prefixlen}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        self._state["netns"] = [h.netns for h in existing]
        self._state["veths"] = [h.veth for h in existing]
        self._save_state()
        if existing:
            first = existing[0]
            cp = _run(["ip", "netns", "add", first.netns], check=False)
            if cp.returncode != 0:
                raise TestFleetUnavailable(f"cannot create a network namespace: {cp.stderr.strip()}")
            lines = []
            for h in existing:
                if h is not first:
                    lines.append(f"netns add {h.netns}")
                lines.append(f"link add {h.veth} type veth peer name eth0 netns {h.netns}")
                lines.append(f"link set {h.veth} master {self.bridge} up")
            _run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")
        self.timings["network"] = time.monotonic() - t

        # launch each host's init in fresh PID/mount/UTS namespaces
        t = time.monotonic()
        for h in existing:
            self._launch(h)
            self._save_state()
        self._wait_ready(existing)
        self.timings["boot"] = time.monotonic() - t

        # readiness from outside: route check, sshd banner, HTTP inside the netns
        t = time.monotonic()
        with ThreadPoolExecutor(min(16, max(1, len(self.hosts)))) as pool:
            errors = [e for e in pool.map(self._verify_host, self.hosts.values()) if e]
        if errors:
            raise TestFleetError("test hosts failed their readiness checks:\n\n" + "\n\n".join(errors[:6]))
        self.timings["verify"] = time.monotonic() - t

        self._write_outputs()
        self._state["ready"] = True
        self._save_state()
        self._up = True

    # ---------------------------------------------------------------- files
    @staticmethod
    def _keygen(path: Path, comment: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for p in (path, path.with_name(path.name + ".pub")):
            if p.exists():
                p.unlink()
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])

    @staticmethod
    def _hash_password(pw: str) -> str:
        cp = _run(["openssl", "passwd", "-6", "-stdin"], check=False, input=pw + "\n") if shutil.which("openssl") else None
        if cp is not None and cp.returncode == 0 and cp.stdout.startswith("$6$"):
            return cp.stdout.strip()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: PLC0415 (stdlib, deprecated in 3.11)

        return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512))

    def _prepare_host(self, h: Host) -> None:
        sc = h.scenario
        full = not h.light
        d = h.hostdir
        if d.exists():
            shutil.rmtree(d)
        r = d / "root"
        for sub in ("etc/ssh/authorized_keys", "etc/nginx/conf.d", "etc/nginx/sites-available",
                    "etc/nginx/sites-enabled", "var/log/nginx", "var/log/bandarupay", "run/sshd",
                    "srv/app", "home", "roothome/.ssh", "tmp", "ovl"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "tmp").chmod(0o1777)
        (r / "roothome").chmod(0o700)

        # identity files
        passwd = self._passwd
        if not re.search(r"^fleetops:", passwd, re.M):
            passwd = passwd.rstrip("\n") + f"\nfleetops:x:{FLEETOPS_UID}:{FLEETOPS_UID}:fleet operator:/home/fleetops:/bin/bash\n"
        (r / "etc/passwd").write_text(passwd)
        shadow = re.sub(r"^root:[^:]*:", "root:*:", self._shadow, flags=re.M)  # key login, never locked
        shadow = re.sub(r"^fleetops:.*\n?", "", shadow, flags=re.M)
        shadow = shadow.rstrip("\n") + f"\nfleetops:{self._pwhash}:20000:0:99999:7:::\n"
        (r / "etc/shadow").write_text(shadow)
        os.chmod(r / "etc/shadow", 0o640)
        os.chown(r / "etc/shadow", 0, self._shadow_gid)
        group = self._group
        if not re.search(r"^fleetops:", group, re.M):
            group = group.rstrip("\n") + f"\nfleetops:x:{FLEETOPS_UID}:\n"
        (r / "etc/group").write_text(group)
        (r / "etc/sudoers").write_text(
            "# private sudoers of test host %s\n"
            "Defaults\tenv_reset\n"
            "Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n"
            "root\tALL=(ALL:ALL) ALL\n"
            "fleetops\tALL=(ALL:ALL) ALL\n" % h.name
        )
        os.chmod(r / "etc/sudoers", 0o440)
        (r / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{h.name}\n{h.ip}\t{h.name}\n"
        )
        (r / "etc/hostname").write_text(h.name + "\n")
        home = r / "home/fleetops"
        home.mkdir()
        (home / ".ssh").mkdir()
        os.chown(home, FLEETOPS_UID, FLEETOPS_UID)
        os.chown(home / ".ssh", FLEETOPS_UID, FLEETOPS_UID)

        # sshd (ListenAddress is appended by the init, which knows whether a latency proxy fronts it)
        key = r / "etc/ssh/ssh_host_ed25519_key"
        self._keygen(key, f"root@{h.name}")
        key.chmod(0o600)
        (r / "etc/ssh/sshd_config").write_text(
            f"# sshd_config of test host {h.name} (testfleet)\n"
            "Port 22\n"
            "AddressFamily inet\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PidFile /run/sshd.pid\n"
            "UsePAM no\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"
            "StrictModes no\n"
            "MaxStartups 200\n"
            "MaxSessions 100\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "X11Forwarding no\n"
            "AcceptEnv LANG LC_*\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel INFO\n"
        )
        client_pub = (self.workdir / ("id_ed25519.pub" if sc.authorized else "keys/other_ed25519.pub")).read_text()
        (r / "etc/ssh/authorized_keys" / h.user).write_text(client_pub)

        # app: main.py, a venv whose python is the machine's python3 (no site packages: no jwt)
        app = r / "srv/app"
        shutil.copyfile(APP_MAIN, app / "main.py")
        (app / "requirements.txt").write_text("PyJWT>=2.8\npsycopg2-binary>=2.9\n")
        venv = app / "venv"
        (venv / "bin").mkdir(parents=True)
        ver = "%d.%d" % sys.version_info[:2]
        if self.host_python == "/usr/bin/python3":
            try:
                ver = os.path.basename(os.path.realpath("/usr/bin/python3")).replace("python", "") or ver
            except OSError:
                pass
        (venv / "lib" / f"python{ver}" / "site-packages").mkdir(parents=True)
        os.symlink(self.host_python, venv / "bin/python")
        os.symlink("python", venv / "bin/python3")
        (venv / "pyvenv.cfg").write_text(
            f"home = {os.path.dirname(self.host_python)}\ninclude-system-site-packages = false\nversion = {ver}\n"
        )
        (r / "var/log/bandarupay/app.log").touch()
        if sc.app_dir != "/srv/app":  # the zeroconf shape: main.py under another name and directory
            other = r / sc.app_dir.lstrip("/")
            other.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(APP_MAIN, other / next(a for a in sc.app_command if a.endswith(".py")))
        app_log = r / sc.app_log.lstrip("/")
        app_log.parent.mkdir(parents=True, exist_ok=True)
        app_log.touch()

        # nginx
        if os.path.exists("/etc/nginx/mime.types"):
            shutil.copyfile("/etc/nginx/mime.types", r / "etc/nginx/mime.types")
        else:
            (r / "etc/nginx/mime.types").write_text("types { text/html html; application/json json; }\n")
        (r / "etc/nginx/nginx.conf").write_text(NGINX_CONF)
        (r / "etc/nginx/sites-available/backend").write_text(SITE_CONF.format(upstream=sc.upstream))
        os.symlink("../sites-available/backend", r / "etc/nginx/sites-enabled/backend")

        # slow: shims first in PATH (/usr/local/bin) that sleep before each tool
        mounts = [
            ("etc/ssh", "/etc/ssh"), ("etc/passwd", "/etc/passwd"), ("etc/shadow", "/etc/shadow"),
            ("etc/group", "/etc/group"), ("etc/hosts", "/etc/hosts"),
            ("var/log", "/var/log"), ("run", "/run"), ("srv", "/srv"), ("home", "/home"),
            ("roothome", "/root"), ("tmp", "/tmp"),
        ]
        if os.path.isdir("/etc/nginx"):
            mounts.insert(0, ("etc/nginx", "/etc/nginx"))
        if os.path.exists("/etc/sudoers"):
            mounts.append(("etc/sudoers", "/etc/sudoers"))
        if os.path.exists("/etc/hostname"):
            mounts.append(("etc/hostname", "/etc/hostname"))
        if sc.slow_shims and os.path.isdir("/usr/local/bin"):
            shims = r / "usr_local_bin"
            shims.mkdir()
            for tool in SLOW_TOOLS:
                real = shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
                if real:
                    p = shims / tool
                    p.write_text(f"#!/bin/sh\n# testfleet 'slow' shim\nsleep 0.2\nexec {real} \"$@\"\n")
                    p.chmod(0o755)
            mounts.append(("usr_local_bin", "/usr/local/bin"))

        backend = None
        if full and sc.backend_args is not None:
            backend = {"args": list(sc.backend_args), "expect": sc.backend_expect, "command": list(sc.app_command),
                       "cwd": sc.app_dir, "port": sc.app_port, "log": sc.app_log}
        cfg = {
            "name": h.name,
            "scenario": sc.name,
            "ip": h.ip,
            "prefixlen": self.network.prefixlen,
            "blackholes": list(sc.blackholes),
            "latency_ms": sc.latency_ms,
            "hide_tools": list(sc.hide_tools),
            "filesystems": [list(f) for f in sc.filesystems],
            "mounts": mounts,
            "backend": backend,
            "nginx": bool(full and sc.nginx),
            "nginx_warmup_502": sc.nginx_warmup_502,
        }
        (d / "init.json").write_text(json.dumps(cfg, indent=1))

    # --------------------------------------------------------------- launch
    def _launch(self, h: Host) -> None:
        cmd = [
            "ip", "netns", "exec", h.netns,
            "unshare", "--pid", "--fork", "--mount", "--uts", "--mount-proc",
            "--propagation", "private", "--kill-child=SIGKILL",
            self.host_python, "-I", "-S", str(HOSTINIT), str(h.hostdir),
        ]
        out = open(h.hostdir / "init.out", "ab")
        try:
            h.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      start_new_session=True, cwd="/")
        finally:
            out.close()
        h.unshare_pid = h.proc.pid
        self._record_host(h)

    def _record_host(self, h: Host) -> None:
        with self._lock:
            self._state["hosts"][h.name] = {
                "scenario": h.scenario.name, "ip": h.ip, "netns": h.netns, "veth": h.veth,
                "hostdir": str(h.hostdir), "user": h.user,
                "unshare_pid": h.unshare_pid, "init_pid": h.init_pid, "pids_in_ns": h.pids,
            }

    def _wait_ready(self, hosts: list[Host]) -> None:
        pending = {h.name: h for h in hosts}
        deadline = time.monotonic() + self.timeout
        failed: list[str] = []
        while pending:
            need_init = {h.unshare_pid: h for h in pending.values() if h.init_pid is None}
            if need_init:
                for ppid, child in _children_of(set(need_init)).items():
                    need_init[ppid].init_pid = child
                    self._record_host(need_init[ppid])
                self._save_state()
            for name, h in list(pending.items()):
                status = ""
                try:
                    status = (h.hostdir / "status").read_text()
                except OSError:
                    pass
                if status.startswith("ready") and h.init_pid is not None:
                    try:
                        h.pids = json.loads(status.split(" ", 1)[1])
                    except (ValueError, IndexError):
                        pass
                    self._record_host(h)
                    del pending[name]
                elif status.startswith("error") or h.proc.poll() is not None:
                    failed.append(self._host_report(h, status.strip() or f"init exited with {h.proc.poll()}"))
                    del pending[name]
            if failed:
                break
            if pending and time.monotonic() > deadline:
                failed.extend(self._host_report(h, f"not ready after {self.timeout:.1f}s") for h in pending.values())
                break
            if pending:
                time.sleep(0.05)
        self._save_state()
        if failed:
            raise TestFleetError("test hosts failed to come up:\n\n" + "\n\n".join(failed[:6]))

    def _host_report(self, h: Host, why: str) -> str:
        r = h.hostdir / "root"
        parts = [f"== host {h.name} ({h.scenario.name}, {h.ip}): {why}"]
        for label, p in (("init.log", h.hostdir / "init.log"), ("init.out", h.hostdir / "init.out"),
                         ("sshd.log", r / "var/log/sshd.log"), ("nginx error.log", r / "var/log/nginx/error.log"),
                         ("app log", r / h.scenario.app_log.lstrip("/"))):
            if p.exists() and p.stat().st_size:
                parts.append(f"-- {label} ({p}):\n{_tail(p)}")
        return "\n".join(parts)

    # --------------------------------------------------------------- checks
    def check_route(self, addr: str) -> None:
        """Refuse unless the kernel routes addr via our bridge."""
        dev = route_dev(addr)
        if dev != self.bridge:
            raise TestFleetError(f"refusing to send traffic to {addr}: it is routed via {dev!r}, not {self.bridge}")

    def _verify_host(self, h: Host) -> str | None:
        try:
            self.check_route(h.ip)
            if not h.scenario.exists:
                return None
            self._check_ssh_banner(h)
            if h.light:
                return None
            self._check_http(h)
            if h.scenario.log_expect:
                self._check_log(h, h.scenario.log_expect)
            if h.scenario.break_nginx_config:
                self._break_nginx(h)
        except Exception as exc:
            return self._host_report(h, str(exc))
        return None

    def _check_ssh_banner(self, h: Host) -> None:
        # While hundreds of hosts boot on two cores, an sshd can take longer than 10 s to answer.
        deadline = time.monotonic() + 10 + 0.05 * len(self.hosts)
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((h.ip, 22), timeout=5) as s:
                    s.settimeout(5)
                    banner = s.recv(256)
                if banner.startswith(b"SSH-2.0-"):
                    return
                last = f"unexpected banner {banner[:60]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise TestFleetError(f"sshd on {h.ip}:22 not answering: {last}")

    def _check_http(self, h: Host) -> None:
        checks = h.scenario.http_checks
        if not checks:
            return
        script = []
        for method, url, expect in checks:
            mt = 1 if expect == "timeout" else 5
            script.append(
                f"curl -s -o /dev/null --noproxy '*' -m {mt} -X {method} -w '%{{http_code}}' '{url}'; echo \" $?\""
            )
        deadline = time.monotonic() + 10
        while True:
            cp = _run(["ip", "netns", "exec", h.netns, "sh", "-c", "\n".join(script)], check=False)
            got = []
            for line in cp.stdout.strip().splitlines():
                code, _, rc = line.rpartition(" ")
                rc_i = int(rc) if rc.isdigit() else -1
                got.append("refused" if rc_i == 7 else "timeout" if rc_i == 28 else
                           int(code) if code.isdigit() and code != "000" else f"curl rc {rc}")
            want = [e for _, _, e in checks]
            if got == want:
                return
            if time.monotonic() > deadline:
                detail = ", ".join(f"{m} {u} -> {g} (want {w})" for (m, u, w), g in zip(checks, got))
                raise TestFleetError(f"HTTP checks inside {h.netns} failed: {detail or cp.stderr.strip()}")
            time.sleep(0.2)

    def _check_log(self, h: Host, needle: str) -> None:
        p = h.hostdir / "root" / h.scenario.app_log.lstrip("/")
        deadline = time.monotonic() + 10
        while needle not in p.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise TestFleetError(f"{h.scenario.app_log} lacks {needle!r}")
            time.sleep(0.1)

    def _break_nginx(self, h: Host) -> None:
        site = h.hostdir / "root/etc/nginx/sites-available/backend"
        text = site.read_text()
        broken = text.replace(f"server {h.scenario.upstream};", f"server {h.scenario.upstream}", 1)
        if broken == text:
            raise TestFleetError("could not break the nginx site config")
        site.write_text(broken)
        cp = self.exec(h.name, ["/usr/sbin/nginx", "-t"])
        if cp.returncode == 0:
            raise TestFleetError("nginx -t still passes after breaking the config")

    # ------------------------------------------------------------- helpers
    def exec(self, host: str, cmd: list[str] | str, *, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run cmd inside host (all its namespaces, as root) via nsenter."""
        h = self.hosts[host]
        if h.init_pid is None:
            raise TestFleetError(f"host {host} has no running init")
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return subprocess.run(["nsenter", "-t", str(h.init_pid), "-a", *cmd],
                              capture_output=True, text=True, timeout=timeout, **kw)

    def ssh_argv(self, host: str, *cmd: str, user: str | None = None) -> list[str]:
        """argv for OpenSSH's ssh client to host (route checked first)."""
        h = self.hosts[host]
        self.check_route(h.ip)
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key_path), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"{user or h.user}@{h.ip}", *cmd,
        ]

    # -------------------------------------------------------------- outputs
    def _write_outputs(self) -> None:
        key = str(self.key_path)
        lines = ["# test fleet inventory written by testfleet; expected verdicts in expected.json",
                 "all:", "  hosts:"]
        for h in self.hosts.values():
            lines += [f"    {h.name}:", f"      ansible_host: {h.ip}", f"      ansible_user: {h.user}",
                      f"      ansible_ssh_private_key_file: {key}"]
        lines.append("  children:")
        fams: dict[str, list[str]] = {}
        for h in self.hosts.values():
            fams.setdefault(h.scenario.family, []).append(h.name)
        for fam, names in fams.items():
            lines += [f"    {fam}:", "      hosts:"] + [f"        {n}: {{}}" for n in names]
        self.inventory_path.write_text("\n".join(lines) + "\n")

        kh = []
        for h in self.hosts.values():
            if not h.scenario.exists:
                continue
            if h.scenario.known_host_ok:
                pub = (h.hostdir / "root/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            else:
                wrong = self.workdir / "keys" / f"wrong_hostkey_{h.name}"
                self._keygen(wrong, f"not-{h.name}")
                pub = wrong.with_name(wrong.name + ".pub").read_text().split()
            kh.append(f"{h.ip} {pub[0]} {pub[1]}")
        self.known_hosts_path.write_text("\n".join(kh) + "\n")
        self.expected_path.write_text(json.dumps(self.expected, indent=1) + "\n")

    # ------------------------------------------------------------ tear-down
    def down(self) -> None:
        t0 = time.monotonic()
        if self._state:  # only what this object brought up (its own state.json)
            teardown_state(self._state, log=self._log,
                           children={h.unshare_pid: h.proc for h in self.hosts.values() if h.proc})
            self._state = {}
            self.state_path.unlink(missing_ok=True)
        self._up = False
        self.timings["down"] = time.monotonic() - t0
        self._log(f"down in {self.timings['down']:.1f}s")


def teardown_state(state: dict, log: Callable[[str], None] = lambda m: None,
                   children: dict | None = None) -> None:
    """Remove everything recorded in a state dict: processes, veths, netns, bridge."""
    children = children or {}
    problems: list[str] = []
    # 1. processes: SIGKILL each namespace init (that ends its whole PID namespace)
    #    and its unshare parent.  PIDs come from the state, plus -- for hosts
    #    launched just before a crash, before their PIDs were saved -- any
    #    process whose argv is exactly "... hostinit.py <one of our host dirs>".
    hostdirs = {hs["hostdir"] for hs in state.get("hosts", {}).values() if hs.get("hostdir")}
    pids = {hs.get(k) for hs in state.get("hosts", {}).values() for k in ("init_pid", "unshare_pid")}
    pids.discard(None)
    pids |= _find_host_procs(hostdirs)
    victims: list[int] = []
    for pid in sorted(pids):
        argv = _pid_argv(pid)
        if any(a.endswith("hostinit.py") for a in argv) and hostdirs & set(argv):  # still ours
            try:
                os.kill(pid, signal.SIGKILL)
                victims.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for pid in victims:
        proc = children.get(pid)
        if proc is not None:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problems.append(f"pid {pid} did not exit")
            continue
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_alive(pid):
            problems.append(f"pid {pid} did not exit")
    # 2. links and namespaces we created (by name, from the state)
    lines = [f"link del {v}" for v in state.get("veths", []) if _link_exists(v)]
    lines += [f"netns del {n}" for n in state.get("netns", []) if _netns_exists(n)]
    if state.get("bridge_created") and _link_exists(state.get("bridge", "\0")):
        lines.append(f"link del {state['bridge']}")
    if lines:
        cp = _run(["ip", "-force", "-batch", "-"], check=False, input="\n".join(lines) + "\n")
        if cp.returncode != 0:
            log(f"ip -batch reported: {cp.stderr.strip()[:500]}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [v for v in state.get("veths", []) if _link_exists(v)]
        left += [n for n in state.get("netns", []) if _netns_exists(n)]
        if state.get("bridge_created") and _link_exists(state.get("bridge", "\0")):
            left.append(state["bridge"])
        if not left:
            break
        time.sleep(0.05)
    else:
        problems.append("still present: " + ", ".join(left))
    if problems:
        raise TestFleetError("tear-down incomplete: " + "; ".join(problems))


def down_dir(workdir: str | os.PathLike, log: Callable[[str], None] = lambda m: None, wait: float = 60) -> bool:
    """Tear down the fleet recorded in WORKDIR/state.json. False if there was none."""
    state_path = Path(workdir).resolve() / "state.json"
    if not state_path.exists():
        return False
    state = json.loads(state_path.read_text())
    owner = state.get("owner_pid")
    if owner and owner != os.getpid() and _pid_alive(owner) and \
            _pid_cmdline(owner) == state.get("owner_cmdline") and "testfleet" in _pid_cmdline(owner):
        log(f"asking the `up` process {owner} to tear down")
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while _pid_alive(owner) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not state_path.exists():
            return True
        state = json.loads(state_path.read_text())
    teardown_state(state, log=log)
    state_path.unlink(missing_ok=True)
    return True


SLOW_TOOLS = ("ps", "ss", "netstat", "curl", "cat", "tail", "head", "grep", "pgrep", "ls", "nginx",
              "systemctl", "journalctl", "sudo", "awk", "sed", "uname", "date", "hostname", "id", "stat")

NGINX_CONF = """\
# nginx.conf of a testfleet host (private /etc/nginx)
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;

events {
    worker_connections 256;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    server_tokens off;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
"""

SITE_CONF = """\
upstream backend_app {{
    server {upstream};
}}

server {{
    listen 80 default_server;
    server_name _;

    location / {{
        proxy_pass http://backend_app;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
    }}
}}
"""
