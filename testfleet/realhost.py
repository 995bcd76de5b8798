"""A real server as a test host: systemd as PID 1, and a docker daemon beside it.

The namespace hosts of fleet.py run their services by hand. Production hosts run the backend
under systemd or docker, log to journald, and share the machine with containers. This module
builds one such host on this machine:

* a network namespace on its own bridge (no default route: nothing leaves the machine);
* ``systemd-nspawn --volatile=yes -D /`` booting the machine's own systemd as the host's PID 1,
  on the machine's read-only ``/usr`` with a private ``/etc`` (bound from WORKDIR/etc) holding
  the distribution's ``ssh.service`` and ``nginx.service`` enabled and one unit per systemd
  service below;
* optionally a real ``dockerd`` (vfs storage, no iptables, no bridge) inside the host's
  namespaces, with an image imported from a minimal Python tree copied from this machine, and
  one container per docker service, all on ``--network host``.

Each service (SERVICES) is one backend with its own port, its own nginx server block and its
own expected verdict; the inventory has one entry per service, all with the host's address, so
one diagnose run sees many services on one machine next to each other's processes.

Everything started is recorded in WORKDIR/state.json before it starts, and ``down`` removes it
by PID and by name: containers through docker, dockerd, the nspawn machine, links, netns and
the cgroups the machine and docker made.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .fleet import (
    APP_MAIN,
    FIRST_HOST_OFFSET,
    NGINX_CONF,
    TestFleetError,
    TestFleetUnavailable,
    _link_exists,
    _netns_exists,
    _pid_alive,
    _run,
    route_dev,
)

DEFAULT_PREFIX = "fsrh"
DEFAULT_SUBNET = "198.18.160.0/24"
IMAGE = "fleet-test/backend:1"
BACKEND = "/srv/app/venv/bin/python main.py"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Service:
    """One backend on the real host and the verdict fleet owes it.

    ``manager``: "systemd" (a unit), "docker" (a container) or "compose" (a container with
    docker compose's labels). ``ready``: the state to wait for before diagnosing; "stopped" waits
    until the backend answers, then stops it through its manager (a clean stop, as an operator's).
    """

    name: str
    manager: str
    unit: str
    port: int
    expected: str
    description: str
    args: tuple[str, ...] = ()
    ready: str = "listen"  # listen | alive | failed | exited | restarting | oom | stopped
    docker_opts: tuple[str, ...] = ()
    runner: str | None = None  # systemd: another unit that really runs the backend (`unit` stays inactive)

    @property
    def proxy_port(self) -> int:
        """nginx's port for this service (one server block each)."""
        return self.port + 1000


SERVICES: tuple[Service, ...] = (
    Service("systemd_healthy", "systemd", "orders-api", 8101, "healthy",
            "orders-api.service, active, answers on 8101"),
    Service("systemd_failed", "systemd", "billing-api", 8102, "backend_not_running",
            "billing-api.service crash-loops (ModuleNotFoundError, traceback only in journald) "
            "until systemd gives up at its start limit: failed, result exit-code",
            args=("--jwt-auth",), ready="failed"),
    Service("systemd_not_listening", "systemd", "search-api", 8103, "backend_not_listening",
            "search-api.service active (running), waits for its database, never binds 8103",
            args=("--no-listen",), ready="alive"),
    Service("systemd_other_unit_serves", "systemd", "legacy-api", 8104, "healthy",
            "legacy-api.service installed but inactive; the app on 8104 runs under supervisor.service "
            "(its process is another unit's, yet it serves)", runner="supervisor"),
    Service("systemd_stopped", "systemd", "inventory-api", 8105, "backend_not_running",
            "inventory-api.service came up healthy, then `systemctl stop`: inactive (dead); a start fixes it",
            ready="stopped"),
    Service("docker_running", "docker", "catalog", 8111, "healthy",
            "container catalog running, answers on 8111 (--network host)"),
    Service("docker_exited", "docker", "payments", 8112, "backend_not_running",
            "container payments exited 1 (ModuleNotFoundError in docker logs); other containers "
            "and units on the host run `python main.py` too",
            args=("--jwt-auth",), ready="exited"),
    Service("docker_restarting", "docker", "mailer", 8113, "backend_not_running",
            "container mailer crash-loops under --restart always (status restarting, 7 restarts or more)",
            args=("--jwt-auth",), ready="restarting", docker_opts=("--restart", "always")),
    Service("docker_oom", "docker", "reports", 8114, "backend_not_running",
            "container reports OOM-killed: --memory 48m, the app takes 96 MiB at start",
            args=("--alloc-mb", "96"), ready="oom",
            docker_opts=("--memory", "48m", "--memory-swap", "48m")),
    Service("compose_exited", "compose", "shop-web-1", 8115, "backend_not_running",
            "container shop-web-1 of compose project shop (service web), exited 1",
            args=("--jwt-auth",), ready="exited",
            docker_opts=("--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=web",
                         "--label", "com.docker.compose.project.working_dir=/srv/shop",
                         "--label", "com.docker.compose.container-number=1")),
    # --init: as PID 1 the app would ignore docker stop's SIGTERM (no handler) and be killed after 10 s
    Service("docker_stopped", "docker", "shipping", 8116, "backend_not_running",
            "container shipping came up healthy, then `docker stop`: exited 143; a start fixes it",
            ready="stopped", docker_opts=("--init",)),
)

# Services also diagnosed as an unprivileged login, inventory name `<service>_as_user`, with the
# same verdicts: no sudo on the host (so no journal and no other users' PID namespaces), but in
# group docker, as deploy users often are.
AS_USER = ("systemd_failed", "docker_exited")
LOGIN_USER, LOGIN_UID = "fleetops", 1500
DISTRO_UNITS = ("ssh.service", "nginx.service")
SUDO_FILES = ("sudoers", "sudoers.d", "pam.d", "security")
TMPFILES = """\
# what Debian's packages create on install: the volatile root starts empty
d /var/log/nginx 0755 root adm -
d /var/lib/nginx 0755 www-data www-data -
d /run/sshd 0755 root root -
"""
SSHD_CONFIG = """\
# sshd_config of the real test host (testfleet.realhost)
Port 22
ListenAddress {ip}:22
HostKey /etc/ssh/ssh_host_ed25519_key
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
StrictModes no
MaxStartups 100
MaxSessions 100
UseDNS no
PrintMotd no
"""
UNIT = """\
[Unit]
Description={name} (fleet test backend)
After=network.target
StartLimitIntervalSec=60
StartLimitBurst=3

[Service]
WorkingDirectory=/srv/app
Environment=PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ExecStart={backend} --port {port} --log - {args}
Restart=on-failure
RestartSec=200ms

[Install]
WantedBy=multi-user.target
"""
SERVER_BLOCK = """\
server {{
    listen {proxy_port};
    server_name {name};
    location / {{
        proxy_pass http://127.0.0.1:{port};
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
    }}
}}
"""


class RealHost:
    """The real test host: ``with RealHost(workdir) as host: host.inventory_path ...``.

    ``docker``: also run dockerd and the docker services (when dockerd cannot start, the
    reason is in ``docker_unavailable`` and only the systemd services are in the inventory).
    """

    __test__ = False

    def __init__(self, workdir: str | os.PathLike, *, prefix: str = DEFAULT_PREFIX,
                 subnet: str = DEFAULT_SUBNET, docker: bool = True,
                 log: Callable[[str], None] | None = None):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", prefix):
            raise ValueError("prefix must be 1-6 lowercase letters/digits, starting with a letter")
        self.workdir = Path(workdir).resolve()
        self.prefix = prefix
        self.network = ipaddress.ip_network(subnet, strict=False)
        self.bridge = f"{prefix}br0"
        self.bridge_ip = str(self.network.network_address + 1)
        self.ip = str(self.network.network_address + FIRST_HOST_OFFSET)
        self.netns = f"{prefix}-real"
        self.veth = f"{prefix}v0"
        self.machine = f"{prefix}-real"
        self.cgroup = f"fleet-{prefix}"  # nspawn's cgroup (and docker's parent below it)
        self.want_docker = docker
        self.docker_unavailable: str | None = None
        self._log = log or (lambda msg: None)
        self._state: dict = {}
        self.nspawn: subprocess.Popen | None = None
        self._dockerd: subprocess.Popen | None = None  # the nsenter that runs dockerd
        self.init_pid: int | None = None
        self._stopped: set[str] = set()  # the "stopped" services the harness has stopped

    # ----------------------------------------------------------------- paths
    etc = property(lambda self: self.workdir / "etc")
    key_path = property(lambda self: self.workdir / "id_ed25519")
    inventory_path = property(lambda self: self.workdir / "inventory.yml")
    known_hosts_path = property(lambda self: self.workdir / "known_hosts")
    state_path = property(lambda self: self.workdir / "state.json")

    @property
    def services(self) -> tuple[Service, ...]:
        """The services running on the host (docker ones only with a docker daemon)."""
        return tuple(s for s in SERVICES if s.manager == "systemd" or self._state.get("dockerd_pid"))

    @property
    def entries(self) -> tuple[tuple[str, Service, str], ...]:
        """The inventory: (name, service, login user) per entry."""
        root = tuple((s.name, s, "root") for s in self.services)
        return root + tuple((f"{s.name}_as_user", s, LOGIN_USER) for s in self.services if s.name in AS_USER)

    @property
    def expected(self) -> dict[str, str]:
        return {name: s.expected for name, s, _ in self.entries}

    def __enter__(self) -> "RealHost":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # ------------------------------------------------------------- bring-up
    def up(self) -> "RealHost":
        t0 = time.monotonic()
        self._preflight()
        try:
            self._bring_up()
        except BaseException:
            try:
                self.down()
            except TestFleetError as exc:  # keep the error that stopped the bring-up
                self._log(f"tear-down after the failed bring-up: {exc}")
            raise
        self._log(f"real host up in {time.monotonic() - t0:.1f}s")
        return self

    def _preflight(self) -> None:
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            raise TestFleetUnavailable("a real test host needs Linux and root")
        missing = [tool for tool in ("systemd-nspawn", "ip", "nsenter", "ssh-keygen")
                   if not shutil.which(tool)]
        for path in ("/usr/lib/systemd/systemd", "/usr/sbin/sshd", "/usr/sbin/nginx",
                     "/usr/lib/systemd/system/ssh.service", "/usr/lib/systemd/system/nginx.service"):
            if not os.path.exists(path):
                missing.append(path)
        if missing:
            raise TestFleetUnavailable("missing for a systemd host (apt-get install systemd-container "
                                       "openssh-server nginx-light): " + ", ".join(missing))
        if not (CGROUP_ROOT / "systemd").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
            raise TestFleetUnavailable(f"no cgroup hierarchy for systemd under {CGROUP_ROOT}")
        if self.state_path.exists():
            raise TestFleetError(f"{self.state_path} exists: tear that host down first (testfleet.realhost.down_dir)")
        if _link_exists(self.bridge) or _netns_exists(self.netns) or _link_exists(self.veth):
            raise TestFleetError(f"{self.bridge}, {self.netns} or {self.veth} already exists; use another prefix")

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1))
        os.replace(tmp, self.state_path)

    def _bring_up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._state = {"bridge": self.bridge, "netns": self.netns, "veth": self.veth,
                       "cgroup": self.cgroup, "nspawn_pid": None, "dockerd_pid": None,
                       "nsenter_pid": None, "init_pid": None}
        self._save()
        self._write_files()
        self._network()
        self._boot()
        if self.want_docker:
            try:
                self._start_docker()
            except TestFleetUnavailable as exc:
                self.docker_unavailable = str(exc)
                self._log(f"docker services left out: {exc}")
        self._wait_services()
        self._write_outputs()

    def _write_files(self) -> None:
        """The host's /etc and /srv: identity, sshd, nginx, units, the app and its venv."""
        etc, srv = self.etc, self.workdir / "srv"
        for d in (etc, srv):
            if d.exists():
                shutil.rmtree(d)
        for sub in ("ssh/authorized_keys", "nginx/sites-enabled", "systemd/system/multi-user.target.wants",
                    "tmpfiles.d"):
            (etc / sub).mkdir(parents=True)
        (etc / "machine-id").write_text(os.urandom(16).hex() + "\n")
        (etc / "hostname").write_text("realhost\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{self.ip}\trealhost\n")
        (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
        login = f"{LOGIN_USER}:x:{LOGIN_UID}:{LOGIN_UID}:fleet operator:/srv:/bin/sh\n"
        (etc / "passwd").write_text(_without(Path("/etc/passwd").read_text(), LOGIN_USER) + login)
        groups = re.sub(r"^(docker:[^:]*:[^:]*:)(.*)$", lambda m: m.group(1) + ",".join(filter(None, (m.group(2), LOGIN_USER))),
                        _without(Path("/etc/group").read_text(), LOGIN_USER), flags=re.M)
        (etc / "group").write_text(groups + f"{LOGIN_USER}:x:{LOGIN_UID}:\n")
        shadow = re.sub(r"^root:[^:]*:", "root:*:", _without(Path("/etc/shadow").read_text(), LOGIN_USER), flags=re.M)
        (etc / "shadow").write_text(shadow + f"{LOGIN_USER}:*:20000:0:99999:7:::\n")
        os.chmod(etc / "shadow", 0o600)
        (etc / "tmpfiles.d/fleet-realhost.conf").write_text(TMPFILES)
        # sudo as the machine's package set it up (its sudoers and PAM stack), as a real server has
        # it (`fleet fix` needs none as root); fleetops stays without sudo (not in group sudo)
        for name in SUDO_FILES:
            src = Path("/etc") / name
            if src.is_dir():
                shutil.copytree(src, etc / name, symlinks=True)
            elif src.exists():
                shutil.copy2(src, etc / name)
        # sshd: the distribution's ssh.service reads /etc/ssh/sshd_config
        self._keygen(self.key_path, "testfleet-client")
        self._keygen(etc / "ssh/ssh_host_ed25519_key", "root@realhost")
        (etc / "ssh/sshd_config").write_text(SSHD_CONFIG.format(ip=self.ip))
        for user in ("root", LOGIN_USER):
            shutil.copyfile(self.key_path.with_name("id_ed25519.pub"), etc / f"ssh/authorized_keys/{user}")
        # nginx: one server block per service
        if os.path.exists("/etc/nginx/mime.types"):
            shutil.copyfile("/etc/nginx/mime.types", etc / "nginx/mime.types")
        else:
            (etc / "nginx/mime.types").write_text("types { application/json json; }\n")
        (etc / "nginx/nginx.conf").write_text(NGINX_CONF)
        (etc / "nginx/sites-enabled/services").write_text(
            "\n".join(SERVER_BLOCK.format(name=s.name, port=s.port, proxy_port=s.proxy_port) for s in SERVICES))
        wants = etc / "systemd/system/multi-user.target.wants"
        for unit in DISTRO_UNITS:
            os.symlink(f"/usr/lib/systemd/system/{unit}", wants / unit)
        for s in SERVICES:
            if s.manager == "systemd":
                for unit in {s.unit, s.runner or s.unit}:
                    (etc / f"systemd/system/{unit}.service").write_text(
                        UNIT.format(name=unit, backend=BACKEND, port=s.port, args=" ".join(s.args)))
                enabled = s.runner or s.unit
                os.symlink(f"../{enabled}.service", wants / f"{enabled}.service")
        # the app: main.py and a venv whose python is the machine's (no site packages: no jwt)
        app = srv / "app"
        (app / "venv/bin").mkdir(parents=True)
        shutil.copyfile(APP_MAIN, app / "main.py")
        (app / "requirements.txt").write_text("PyJWT>=2.8\n")
        os.symlink("/usr/bin/python3", app / "venv/bin/python")
        (app / "venv/pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")

    @staticmethod
    def _keygen(path: Path, comment: str) -> None:
        for p in (path, path.with_name(path.name + ".pub")):
            p.unlink(missing_ok=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])

    def _network(self) -> None:
        self._state["created"] = True  # recorded before the links exist
        self._save()
        lines = [f"link add {self.bridge} type bridge",
                 f"addr add {self.bridge_ip}/{self.network.prefixlen} dev {self.bridge}",
                 f"link set {self.bridge} up",
                 f"netns add {self.netns}",
                 f"link add {self.veth} type veth peer name eth0 netns {self.netns}",
                 f"link set {self.veth} master {self.bridge} up"]
        cp = _run(["ip", "-batch", "-"], check=False, input="\n".join(lines) + "\n")
        if cp.returncode != 0:
            raise TestFleetUnavailable(f"cannot create the host's network: {cp.stderr.strip()}")
        inside = ["link set lo up", f"addr add {self.ip}/{self.network.prefixlen} dev eth0", "link set eth0 up"]
        _run(["ip", "-n", self.netns, "-batch", "-"], input="\n".join(inside) + "\n")
        if route_dev(self.ip) != self.bridge:
            raise TestFleetError(f"{self.ip} is not routed via {self.bridge}")

    def _boot(self) -> None:
        """Boot systemd in the netns, in a cgroup of its own (nspawn's --keep-unit uses the caller's)."""
        if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2 only
            own = [CGROUP_ROOT / self.cgroup]
        else:  # v1: systemd's named hierarchy, and the unified one of a hybrid setup
            own = [CGROUP_ROOT / h / self.cgroup for h in ("systemd", "unified") if (CGROUP_ROOT / h).is_dir()]
        for cgroup in own:
            cgroup.mkdir(exist_ok=True)
        procs = " ".join(str(cgroup / "cgroup.procs") for cgroup in own)
        argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", "/", "--volatile=yes",
                "-M", self.machine, f"--network-namespace-path=/run/netns/{self.netns}",
                "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=pipe",
                f"--bind={self.etc}:/etc", f"--bind={self.workdir / 'srv'}:/srv", "-b"]
        if self.want_docker:
            (self.workdir / "docker").mkdir(exist_ok=True)
            argv.insert(-1, f"--bind={self.workdir / 'docker'}:/var/lib/docker")
        script = f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"'
        out = open(self.workdir / "nspawn.log", "ab")
        try:
            self.nspawn = subprocess.Popen(["sh", "-c", script, "sh", *argv], stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=out, start_new_session=True)
        finally:
            out.close()
        self._state["nspawn_pid"] = self.nspawn.pid
        self._save()
        deadline = time.monotonic() + 30
        while self.init_pid is None:
            if self.nspawn.poll() is not None:
                raise TestFleetUnavailable(f"systemd-nspawn exited with {self.nspawn.returncode}: "
                                           f"{self._tail('nspawn.log')}")
            if time.monotonic() > deadline:
                raise TestFleetError(f"systemd did not start in the machine: {self._tail('nspawn.log')}")
            self.init_pid = _child_running(self.nspawn.pid, "/usr/lib/systemd/systemd")
            time.sleep(0.05)
        self._state["init_pid"] = self.init_pid
        self._save()
        # systemctl fails until systemd's private socket exists, then --wait blocks until booted
        while True:
            cp = self.exec(["systemctl", "is-system-running", "--wait"], timeout=60)
            state = cp.stdout.strip()
            if state in ("running", "degraded"):
                break
            if state or time.monotonic() > deadline:
                failed = self.exec(["systemctl", "--failed", "--no-pager"]).stdout
                raise TestFleetError(f"systemd in the machine is {state!r} ({cp.stderr.strip()}): {failed}")
            time.sleep(0.1)
        self._log(f"systemd is {state} in {self.machine} (PID 1 = {self.init_pid} here)")

    def _tail(self, name: str) -> str:
        try:
            return (self.workdir / name).read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def exec(self, cmd: list[str] | str, *, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run cmd inside the host (all its namespaces) via nsenter."""
        if self.init_pid is None:
            raise TestFleetError("the real host is not running")
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return subprocess.run(["nsenter", "-t", str(self.init_pid), "-a", *cmd],
                              capture_output=True, text=True, timeout=timeout, **kw)

    def docker(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """The docker CLI inside the host, against its dockerd."""
        return self.exec(["docker", *args], **kw)

    # ----------------------------------------------------------------- docker
    def _start_docker(self) -> None:
        if not shutil.which("dockerd") or not shutil.which("docker"):
            raise TestFleetUnavailable("dockerd or docker missing (apt-get install docker.io)")
        # nspawn mounts the cgroup v1 controllers read-only; dockerd's cgroupfs driver must create
        # the containers' cgroups (a real server's are writable).
        remount = "mount -o remount,bind,rw /sys/fs/cgroup; for d in /sys/fs/cgroup/*; do mount -o remount,bind,rw \"$d\"; done"
        if (CGROUP_ROOT / "systemd").is_dir():
            self.exec(remount, timeout=10)
        argv = ["nsenter", "-t", str(self.init_pid), "-a", "dockerd", "--storage-driver", "vfs",
                "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
                "--data-root", "/var/lib/docker", "--exec-root", "/run/docker-exec",
                "-H", "unix:///run/docker.sock", "--pidfile", "/run/docker.pid",
                "--cgroup-parent", f"/{self.cgroup}-docker", "--log-level", "warn"]
        out = open(self.workdir / "dockerd.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        finally:
            out.close()
        self._dockerd = proc
        self._state["nsenter_pid"] = proc.pid
        self._save()
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise TestFleetUnavailable(f"dockerd exited with {proc.returncode}: {self._tail('dockerd.log')}")
            pid = _child_running(proc.pid, "dockerd")
            if pid:
                self._state["dockerd_pid"] = pid
                self._save()
            if pid and self.docker("version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise TestFleetUnavailable(f"dockerd did not answer in 30 s: {self._tail('dockerd.log')}")
            time.sleep(0.1)
        self._import_image()
        # all at once: with vfs each container starts as a copy of the image
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(self._run_container, [s for s in SERVICES if s.manager != "systemd"]))
        failed = [f"{unit}: {cp.stderr.strip()}" for unit, cp in runs if cp.returncode != 0]
        if failed:
            raise TestFleetError("docker run failed: " + "; ".join(failed))

    def _run_container(self, s: Service) -> tuple[str, subprocess.CompletedProcess]:
        return s.unit, self.docker("run", "-d", "--name", s.unit, "--network", "host", *s.docker_opts, IMAGE,
                                   "python", "main.py", "--port", str(s.port), "--log", "-", *s.args, timeout=120)

    def _import_image(self) -> None:
        """`docker import` a rootfs of this machine's python3, its libraries, its stdlib and main.py."""
        tarball = self.workdir / "backend-rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            for path in _python_tree():
                tar.add(path, arcname=path.lstrip("/"), recursive=False)
            python = os.path.basename(os.path.realpath("/usr/bin/python3"))
            for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                                 ("usr/bin/python3", python), ("usr/bin/python", python)):
                info = tarfile.TarInfo(link)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            for name, mode in (("tmp", 0o1777), ("srv/app", 0o755)):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            tar.add(APP_MAIN, arcname="srv/app/main.py")
        with open(tarball, "rb") as f:
            cp = self.docker("import", "-c", "WORKDIR /srv/app", "-c", "ENV PYTHONUNBUFFERED=1",
                             "-c", "ENV PATH=/usr/local/bin:/usr/bin:/bin", "-", IMAGE,
                             stdin=f, timeout=120)
        if cp.returncode != 0:
            raise TestFleetUnavailable(f"docker import failed: {cp.stderr.strip()}")
        tarball.unlink()

    # ----------------------------------------------------------------- readiness
    def _wait_services(self) -> None:
        deadline = time.monotonic() + 60
        pending = list(self.services)
        last: dict[str, str] = {}
        while pending:
            for s in list(pending):
                ok, last[s.name] = self._ready(s)
                if ok:
                    pending.remove(s)
            if pending and time.monotonic() > deadline:
                raise TestFleetError("services not in their scenario's state: " +
                                     "; ".join(f"{s.name}: {last[s.name]}" for s in pending))
            if pending:
                time.sleep(0.2)
        self._check_ssh()

    def _ready(self, s: Service) -> tuple[bool, str]:
        """Whether service s is in the state its scenario wants, and what it is in."""
        if s.ready == "stopped":
            return self._stopped_ready(s)
        if s.manager == "systemd":
            show = self.exec(["systemctl", "show", "-p", "ActiveState,SubState,Result", "--", s.runner or s.unit]).stdout
            state = dict(line.partition("=")[::2] for line in show.splitlines())
            active = state.get("ActiveState")
            if s.ready == "failed":
                return active == "failed", show.replace("\n", " ")
        else:
            fmt = "{{.State.Status}} {{.State.OOMKilled}} {{.RestartCount}} {{.State.FinishedAt}}"
            parts = self.docker("inspect", "--format", fmt, s.unit).stdout.split()
            if len(parts) != 4:
                return False, "no such container"
            status, oom, restarts, finished = parts
            if s.ready == "exited":
                return status == "exited", status
            if s.ready == "oom":
                return status == "exited" and oom == "true", f"{status} oom={oom}"
            if s.ready == "restarting":
                # at the start of a back-off of 6.4 s or more (docker doubles it from 0.1 s at each
                # crash), so the diagnosis that follows within seconds sees it restarting, not
                # in the moment it runs between two crashes
                fresh = _seconds_since(finished) < 2.0
                return status == "restarting" and int(restarts) >= 7 and fresh, f"{status} restarts={restarts}"
            active = "active" if status == "running" else status
        if active != "active":
            return False, str(active)
        if s.ready == "alive":
            return True, "active"
        # The backend itself first: asking nginx before the backend listens would leave real
        # upstream errors in nginx's log, which fleet then rightly reports as intermittent 502s.
        for port, via in ((s.port, "backend"), (s.proxy_port, f"nginx -> {s.port}")):
            cp = self.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2",
                            f"http://127.0.0.1:{port}/health"])
            if cp.stdout != "200":
                return False, f"{via}: {cp.stdout or cp.stderr.strip()}"
        return True, "answers"

    def _stopped_ready(self, s: Service) -> tuple[bool, str]:
        """Up and answering first, then stopped through its manager: a backend a start really fixes."""
        if s.name not in self._stopped:
            up, what = self._ready(replace(s, ready="listen"))
            if not up:
                return False, f"not yet up to be stopped: {what}"
            if s.manager == "systemd":
                cp = self.exec(["systemctl", "stop", "--", s.unit], timeout=60)
            else:
                cp = self.docker("stop", "--", s.unit, timeout=60)
            if cp.returncode != 0:
                raise TestFleetError(f"stopping {s.unit} failed: {cp.stderr.strip()}")
            self._stopped.add(s.name)
        if s.manager == "systemd":
            show = self.exec(["systemctl", "show", "-p", "ActiveState,SubState,Result", "--", s.unit]).stdout
            return "ActiveState=inactive" in show.split(), show.replace("\n", " ")
        status = self.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", s.unit).stdout.strip()
        return status in ("exited 0", "exited 143"), status

    def _check_ssh(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((self.ip, 22), timeout=3) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TestFleetError(f"sshd on {self.ip} not answering: {exc}") from None
            time.sleep(0.1)

    def _write_outputs(self) -> None:
        lines = ["# the real test host (testfleet.realhost): one entry per service, one address", "all:", "  hosts:"]
        for name, s, user in self.entries:
            lines += [f"    {name}:", f"      ansible_host: {self.ip}", f"      ansible_user: {user}",
                      f"      ansible_ssh_private_key_file: {self.key_path}",
                      f"      service: {s.unit}", f"      port: {s.port}",
                      f"      proxy_url: http://localhost:{s.proxy_port}"]
        self.inventory_path.write_text("\n".join(lines) + "\n")
        pub = (self.etc / "ssh/ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts_path.write_text(f"{self.ip} {pub[0]} {pub[1]}\n")

    # ------------------------------------------------------------- tear-down
    def down(self) -> None:
        if self._state:
            teardown(self._state, self.exec if self.init_pid else None, log=self._log)
            self._state = {}
            self.state_path.unlink(missing_ok=True)
            # the containers' vfs copies of the image; nothing is mounted on them once the machine is gone
            shutil.rmtree(self.workdir / "docker", ignore_errors=True)
        for proc in (self.nspawn, self._dockerd):
            if proc is not None:
                proc.poll()  # teardown reaped them by PID; let Popen know
        self.init_pid = None


def _without(table: str, name: str) -> str:
    """An /etc/passwd-style table without `name`'s line, ending in a newline."""
    return "".join(line for line in table.splitlines(keepends=True) if not line.startswith(name + ":")).rstrip("\n") + "\n"


def _child_running(ppid: int, exe: str) -> int | None:
    """The PID of a child of ppid whose argv[0] is exe (or ends with /exe)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid and (argv0 == exe or argv0.endswith("/" + exe)):
            return int(entry)
    return None


def _seconds_since(stamp: str) -> float:
    """Seconds since a docker RFC 3339 UTC time (its nanoseconds cut to what datetime reads)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,6})?", stamp)
    if not match:
        return float("inf")
    then = datetime.fromisoformat(match.group(1) + (match.group(2) or "")).replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def _python_tree() -> list[str]:
    """The files of a minimal Python: the interpreter, its stdlib (no tests, no tk) and every
    shared library it and its extension modules link to, as found by ldd."""
    exe = os.path.realpath("/usr/bin/python3")
    # that interpreter's stdlib, not the one running this (which may be another build)
    stdlib = _run([exe, "-I", "-S", "-c", "import os; print(os.path.dirname(os.__file__))"]).stdout.strip()
    skip = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
            "site-packages", "dist-packages", "__pycache__"}
    files = [exe]
    for root, dirs, names in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith("config-")]
        files.extend(os.path.join(root, n) for n in names)
    extensions = [f for f in files if f.endswith(".so")]
    cp = _run(["ldd", exe, *extensions], check=False)
    libs = set()
    for line in cp.stdout.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libs.add(match.group(1))
    for lib in sorted(libs):
        real = os.path.realpath(lib)
        files.append(real)
        if real != lib:
            files.append(lib)  # the soname link or the loader's /lib64 link (a symlink in the tar)
    # /lib64/ld-linux... is a symlink into /usr/lib; the image's /lib64 links to usr/lib64
    return sorted({f if not f.startswith(("/lib/", "/lib64/")) else "/usr" + f for f in files})


def teardown(state: dict, exec_in_host: Callable | None = None, log: Callable[[str], None] = lambda m: None) -> None:
    """Remove what a state dict records: containers, dockerd, the machine, links, cgroups."""
    problems = []
    dockerd = state.get("dockerd_pid")
    if dockerd and _pid_alive(dockerd) and exec_in_host is not None:
        # through docker, so dockerd removes the containers' cgroups and mounts itself
        ids = exec_in_host(["docker", "ps", "-aq"], timeout=30).stdout.split()
        if ids:
            exec_in_host(["docker", "rm", "-f", *ids], timeout=60)
    for key in ("dockerd_pid", "nsenter_pid"):
        pid = state.get(key)
        if pid and _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 15):
                os.kill(pid, signal.SIGKILL)
    nspawn = state.get("nspawn_pid")
    if nspawn and _pid_alive(nspawn):
        # the first SIGTERM asks systemd to power off; a second one ends the machine at once
        os.kill(nspawn, signal.SIGTERM)
        if not _wait_gone(nspawn, 5):
            os.kill(nspawn, signal.SIGTERM)
            if not _wait_gone(nspawn, 5):
                os.kill(nspawn, signal.SIGKILL)
                if not _wait_gone(nspawn, 5):
                    problems.append(f"systemd-nspawn {nspawn} did not exit")
    if state.get("created"):
        lines = []
        if _link_exists(state["veth"]):
            lines.append(f"link del {state['veth']}")
        if _netns_exists(state["netns"]):
            lines.append(f"netns del {state['netns']}")
        if _link_exists(state["bridge"]):
            lines.append(f"link del {state['bridge']}")
        if lines:
            _run(["ip", "-force", "-batch", "-"], check=False, input="\n".join(lines) + "\n")
    problems += _remove_cgroups(state.get("cgroup"))
    if problems:
        raise TestFleetError("real host tear-down incomplete: " + "; ".join(problems))
    log("real host down")


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    try:
        os.waitpid(pid, os.WNOHANG)  # our child: reap it
    except ChildProcessError:
        pass
    return True


def _remove_cgroups(name: str | None) -> list[str]:
    """rmdir, deepest first, the cgroups named after this host in every hierarchy (nspawn's
    `fleet-PREFIX` and docker's `fleet-PREFIX-docker`, at most four levels down)."""
    if not name:
        return []
    left = []
    found = [p for pattern in ("*", "*/*", "*/*/*", "*/*/*/*") for p in CGROUP_ROOT.glob(pattern)
             if p.name in (name, f"{name}-docker") and p.is_dir()]
    for base in found:
        if base.is_dir():  # not already removed under another match
            for sub in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [base]:
                try:
                    sub.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    left.append(f"cgroup {sub}: {exc.strerror}")
    return left


def down_dir(workdir: str | os.PathLike, log: Callable[[str], None] = lambda m: None) -> bool:
    """Tear down the real host recorded in WORKDIR/state.json (after a crash). False if none."""
    path = Path(workdir).resolve() / "state.json"
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    init = state.get("init_pid")

    def exec_in_host(cmd, timeout=30):
        return subprocess.run(["nsenter", "-t", str(init), "-a", *cmd], capture_output=True, text=True,
                              timeout=timeout)

    teardown(state, exec_in_host if init and _pid_alive(init) else None, log=log)
    path.unlink()
    return True
