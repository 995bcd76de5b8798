"""PID 1 of one test host.

Started by the harness as::

    ip netns exec NS unshare --pid --fork --mount --uts --mount-proc \
        --propagation private --kill-child=SIGKILL python3 hostinit.py HOSTDIR

so it runs in the host's own network, PID, mount and UTS namespaces.  It

1. configures the network namespace (lo, eth0 with the host's address, no
   default route, optional blackhole routes, optional netem delay),
2. sets the hostname,
3. bind-mounts the host's private ``/etc/nginx``, ``/etc/ssh``, ``/etc/passwd``,
   ``/etc/shadow``, ``/etc/group``, ``/etc/sudoers``, ``/etc/hosts``,
   ``/var/log``, ``/run``, ``/srv``, ``/home``, ``/root``, ``/tmp`` (and for
   some scenarios ``/usr/local/bin``) from HOSTDIR/root, and hides tools with
   an overlay on their directory, and mounts and fills the scenario's private
   tmpfs filesystems (``filesystems`` in scenarios.py: disk full, inodes exhausted),
4. starts sshd, the backend (``python main.py``) and nginx as the scenario
   says, waits until they listen, writes HOSTDIR/status ("ready" or
   "error: ..."), and then reaps children forever.

Killing this process with SIGKILL (from the parent PID namespace) ends every
process of the host.  Standard library only: it runs under the machine's
/usr/bin/python3, not the project's environment.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback

MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

HFD = -1  # fd of HOSTDIR, opened before anything is mounted over it
LOGF = None


def log(msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} init: {msg}\n"
    if LOGF is not None:
        LOGF.write(line)
        LOGF.flush()


def hpath(rel: str) -> str:
    """Path of HOSTDIR/rel that stays valid after /tmp, /root... are covered."""
    return f"/proc/self/fd/{HFD}/{rel}"


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        src.encode() if src else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} -> {target} ({fstype or 'bind'}): {os.strerror(err)}")


def write_status(text: str) -> None:
    fd = os.open("status.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=HFD)
    os.write(fd, (text.rstrip("\n") + "\n").encode())
    os.close(fd)
    os.rename("status.tmp", "status", src_dir_fd=HFD, dst_dir_fd=HFD)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run(cmd, capture_output=True, text=True, **kw)
    log(f"$ {' '.join(cmd)} -> {cp.returncode} {cp.stderr.strip()[:300]}")
    return cp


# --------------------------------------------------------------------- network
def setup_network(cfg: dict) -> None:
    lines = ["link set lo up", f"addr add {cfg['ip']}/{cfg['prefixlen']} dev eth0", "link set eth0 up"]
    for net in cfg.get("blackholes", []):
        lines.append(f"route add blackhole {net}")
    cp = subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"network setup failed: {cp.stderr.strip()}")
    routes = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout.strip()
    if routes:
        raise RuntimeError(f"unexpected default route in host namespace: {routes}")


def try_netem(delay_ms: int) -> bool:
    cp = run(["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", f"{delay_ms}ms"])
    return cp.returncode == 0


# ---------------------------------------------------------------------- mounts
def hide_tools(tools: list[str]) -> None:
    """Make tools vanish: overlay their directory and delete them (whiteouts)."""
    dirs: dict[str, list[str]] = {}
    for tool in tools:
        for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
            p = os.path.join(d, tool)
            if os.path.lexists(p):
                real_dir = os.path.realpath(d)
                dirs.setdefault(real_dir, [])
                if tool not in dirs[real_dir]:
                    dirs[real_dir].append(tool)
    for i, (d, names) in enumerate(sorted(dirs.items())):
        up, wk = hpath(f"ovl/{i}/upper"), hpath(f"ovl/{i}/work")
        os.makedirs(up, exist_ok=True)
        os.makedirs(wk, exist_ok=True)
        # overlayfs resolves the option paths itself: give it real ones.
        up_real, wk_real = os.path.realpath(up), os.path.realpath(wk)
        try:
            mount("overlay", d, "overlay", 0, f"lowerdir={d},upperdir={up_real},workdir={wk_real}")
        except OSError as exc:
            # the work dir's filesystem may not do overlay upper dirs (e.g. it is
            # itself an overlay): put upper/work on a tmpfs private to this host
            log(f"{exc}; retrying with a tmpfs upper dir")
            tmp = os.path.realpath(hpath(f"ovl/{i}"))
            mount("tmpfs", tmp, "tmpfs", 0, "mode=0755")
            os.makedirs(up_real)
            os.makedirs(wk_real)
            mount("overlay", d, "overlay", 0, f"lowerdir={d},upperdir={up_real},workdir={wk_real}")
        for n in names:
            os.unlink(os.path.join(d, n))
        log(f"hid {names} in {d}")
    for tool in tools:
        cp = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
        if cp.returncode == 0:
            raise RuntimeError(f"{tool} still visible after hiding it: {cp.stdout.strip()}")


def setup_mounts(cfg: dict) -> None:
    if cfg.get("hide_tools"):
        hide_tools(cfg["hide_tools"])
    for rel, target in cfg["mounts"]:
        mount(hpath("root/" + rel), target, None, MS_BIND | MS_REC)
    log("mounts done: " + ", ".join(t for _, t in cfg["mounts"]))


def setup_filesystems(filesystems: list) -> None:
    """Mount each private tmpfs the scenario wants and fill it: with data ("bytes") or empty files ("inodes").

    The list comes in init.json: once /tmp is private, files of a checkout under /tmp are gone.
    """
    for target, options, fill in filesystems:
        os.makedirs(target, exist_ok=True)
        mount("tmpfs", target, "tmpfs", 0, options)
        count = 0
        if fill == "bytes":
            os.makedirs(os.path.join(target, "cache"))
            os.makedirs(os.path.join(target, "uploads"))
            with open(os.path.join(target, "cache", "thumbs.bin"), "wb") as f:
                f.write(b"\xa5" * 256 * 1024)
            try:
                while True:
                    with open(os.path.join(target, "uploads", f"blob{count}"), "wb") as f:
                        count += 1
                        for _ in range(4):
                            f.write(b"\x5a" * 64 * 1024)
                            f.flush()
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC: full, as wanted
                    raise
        elif fill == "inodes":
            os.makedirs(os.path.join(target, "sessions"))
            try:
                while True:
                    open(os.path.join(target, "sessions", f"sess_{count}"), "w").close()
                    count += 1
            except OSError as exc:
                if exc.errno != 28:
                    raise
        st = os.statvfs(target)
        log(f"filled {target} ({fill}, {count} files): {st.f_bavail} blocks, {st.f_favail} inodes free")


# ------------------------------------------------------------ latency proxy
def start_delay_proxy(listen: str, port: int, target: tuple[str, int], delay: float) -> None:
    """TCP proxy that delays every chunk by `delay` seconds in each direction."""
    import asyncio  # only the 'slow' scenario needs it: keep the other inits light

    async def pump(reader, writer, loop):
        q: asyncio.Queue = asyncio.Queue()

        async def rx():
            try:
                while True:
                    data = await reader.read(65536)
                    q.put_nowait((loop.time() + delay, data))
                    if not data:
                        return
            except OSError:
                q.put_nowait((loop.time(), b""))

        async def tx():
            while True:
                due, data = await q.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                except OSError:
                    return

        await asyncio.gather(rx(), tx())

    async def handle(cr, cw):
        loop = asyncio.get_running_loop()
        try:
            ur, uw = await asyncio.open_connection(*target)
        except OSError:
            cw.close()
            return
        try:
            await asyncio.gather(pump(cr, uw, loop), pump(ur, cw, loop))
        finally:
            for w in (uw, cw):
                try:
                    w.close()
                except OSError:
                    pass

    async def serve(ready: threading.Event):
        srv = await asyncio.start_server(handle, listen, port, backlog=256)
        ready.set()
        async with srv:
            await srv.serve_forever()

    ready = threading.Event()
    t = threading.Thread(target=lambda: asyncio.run(serve(ready)), daemon=True, name="delay-proxy")
    t.start()
    if not ready.wait(5):
        raise RuntimeError("delay proxy did not start")
    log(f"delay proxy {listen}:{port} -> {target[0]}:{target[1]} (+{delay * 1000:.0f} ms each way)")


# -------------------------------------------------------------------- services
def listening(port: int, v6: bool = False) -> bool:
    path = "/proc/net/tcp6" if v6 else "/proc/net/tcp"
    try:
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    return True
    except OSError:
        pass
    return False


def wait_for(what: str, pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def start_sshd() -> subprocess.Popen:
    return subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", "/etc/ssh/sshd_config", "-E", "/var/log/sshd.log"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
    )


def start_backend(backend: dict) -> subprocess.Popen:
    env = {
        "PATH": "/srv/app/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "VIRTUAL_ENV": "/srv/app/venv",
    }
    log_path = backend.get("log", "/var/log/bandarupay/app.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    errlog = open(log_path, "ab")
    try:
        # argv[0] "python" is looked up in env PATH: the app venv's interpreter,
        # so the process' args are literally "python main.py ..." (the default command).
        return subprocess.Popen(
            [*backend.get("command", ["python", "main.py"]), *backend["args"]], cwd=backend.get("cwd", "/srv/app"),
            env=env,
            stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, start_new_session=True,
        )
    finally:
        errlog.close()


def start_nginx(pids: dict[str, int]) -> None:
    cp = run(["/usr/sbin/nginx"], cwd="/")
    if cp.returncode != 0:
        raise RuntimeError(f"nginx failed to start: {cp.stderr.strip()}")
    wait_for("nginx on port 80", lambda: listening(80), 10)
    with open("/run/nginx.pid") as f:
        pids["nginx"] = int(f.read().strip())


def warm_up_502(count: int) -> None:
    """Send `count` logins through nginx while no backend runs: nginx answers 502 and logs why."""
    import urllib.error
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never the machine's http_proxy
    for _ in range(count):
        request = urllib.request.Request("http://127.0.0.1:80/api/v1/demo-login", data=b"{}", method="POST")
        try:
            direct.open(request, timeout=5).close()
            raise RuntimeError("nginx answered without a backend")
        except urllib.error.HTTPError as exc:
            if exc.code != 502:
                raise RuntimeError(f"nginx answered {exc.code}, not 502, without a backend") from None
    log(f"{count} requests through nginx answered 502 before the backend started")


def main() -> int:
    global HFD, LOGF
    hostdir = sys.argv[1]
    HFD = os.open(hostdir, os.O_RDONLY | os.O_DIRECTORY)
    LOGF = open(os.path.join(hostdir, "init.log"), "a", buffering=1)
    with open(os.path.join(hostdir, "init.json")) as f:
        cfg = json.load(f)
    os.chdir("/")
    os.umask(0o022)
    log(f"host {cfg['name']} scenario {cfg['scenario']} pid {os.getpid()}")
    pids: dict[str, int] = {}
    try:
        setup_network(cfg)
        socket.sethostname(cfg["name"])
        delay_proxy = None
        if cfg.get("latency_ms"):
            if try_netem(cfg["latency_ms"]):
                log(f"netem delay {cfg['latency_ms']}ms on eth0")
            else:
                delay_proxy = cfg["latency_ms"] / 1000.0
        setup_mounts(cfg)
        setup_filesystems(cfg.get("filesystems", []))

        sshd_addr = "127.0.0.1" if delay_proxy else cfg["ip"]
        with open("/etc/ssh/sshd_config", "a") as f:
            f.write(f"ListenAddress {sshd_addr}:22\n")
        sshd = start_sshd()
        pids["sshd"] = sshd.pid
        if delay_proxy:
            wait_for("sshd on 127.0.0.1:22", lambda: listening(22) or sshd.poll() is not None, 10)
            start_delay_proxy(cfg["ip"], 22, ("127.0.0.1", 22), delay_proxy)

        if cfg.get("nginx_warmup_502"):
            start_nginx(pids)
            warm_up_502(cfg["nginx_warmup_502"])
        backend = cfg.get("backend")
        if backend is not None:
            proc = start_backend(backend)
            pids["backend"] = proc.pid
            if backend.get("expect") == "exit":
                try:
                    rc = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    raise RuntimeError("backend was expected to crash but is still running")
                log(f"backend exited with {rc} as the scenario wants")
                del pids["backend"]
            elif backend.get("expect") == "listen":
                v6 = "--ipv6-only" in backend["args"]
                port = backend.get("port", 8000)
                wait_for(f"backend on port {port}", lambda: listening(port, v6) or proc.poll() is not None, 15)
                if proc.poll() is not None:
                    raise RuntimeError(f"backend exited with {proc.returncode}")
            else:  # alive but not listening
                log_path = backend.get("log", "/var/log/bandarupay/app.log")
                wait_for("backend start", lambda: os.path.getsize(log_path) > 0, 10)
                if proc.poll() is not None:
                    raise RuntimeError(f"backend exited with {proc.returncode}")

        if cfg.get("nginx") and "nginx" not in pids:
            start_nginx(pids)

        wait_for("sshd on port 22", lambda: listening(22) or sshd.poll() is not None, 10)
        if sshd.poll() is not None:
            cp = run(["/usr/sbin/sshd", "-t", "-f", "/etc/ssh/sshd_config"])
            raise RuntimeError(f"sshd exited with {sshd.returncode}: {cp.stderr.strip()}")
        write_status("ready " + json.dumps(pids))
        log("ready " + json.dumps(pids))
    except Exception as exc:  # report, then die: the harness shows init.log
        log("FAILED\n" + traceback.format_exc())
        try:
            write_status(f"error: {exc}")
        except OSError:
            pass
        return 1

    # Reap everything (orphans are re-parented to us) until we are killed.
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)
        except InterruptedError:
            pass


if __name__ == "__main__":
    sys.exit(main())
