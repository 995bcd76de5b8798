"""Every core: hosts spread over worker processes, each running the thread pool of fleet.executor.

One Python process spends its controller CPU on one core (the GIL). With `--workers N` the
parent starts N processes with the *spawn* method (a forked copy of a process with threads and
open paramiko transports is not safe), gives each a shard of the hosts, and reads results back
as they land; each worker builds its own transports (keys, known_hosts, bastions), connects
inside itself and runs `fleet.diagnose.run` with its share of `--forks`. The parent alone writes
the journal and reports and drives the progress line.

* Sharding: all hosts behind one jump host (the whole ProxyJump chain) go to one worker, so a
  bastion still sees one login per run, not one per worker.
* Ctrl-C is the parent's: workers ignore SIGINT (the terminal sends it to them too) and are
  ended by the parent, which keeps the partial report as without workers. SIGTERM likewise.
* A worker dies with its parent (it watches the parent's sentinel), and a worker that dies
  leaves its undiagnosed hosts with an internal-error verdict, never a hang.
* A key's passphrase is asked by the parent, once per key, for whichever worker needs it.
* New host keys (`--accept-new`) are appended by the workers, one `O_APPEND` write per line.

Messages on each worker's pipe (pickled): parent -> worker: the job, then passphrase answers;
worker -> parent: ("ask", path), ("ready", notes), ("start", name), ("result", HostResult),
("fatal", message), ("done", None).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from fleet.errors import FleetError, InputError
from fleet.models import Connection, Diagnosis, Host, HostResult, Severity, TransportStatus
from fleet.redact import Redactor
from fleet.runbook import Runbook

if TYPE_CHECKING:  # multiprocessing is imported only by runs that start workers (~10 ms of CPU)
    from multiprocessing.connection import Connection as Pipe
    from multiprocessing.process import BaseProcess

#: Hosts per worker process before another one pays for its start-up: a worker costs about 0.3 s
#: of CPU (interpreter, imports, keys) and 60 MB, and moves about 4 ms of CPU per host off the
#: parent (bench/README.md, "Worker processes").
HOSTS_PER_WORKER = 250
#: Forks one process keeps fed: at 50 forks one core carries the run (measured: 4 ms of CPU per
#: host for `true`, 10 ms for the 502 runbook, against hosts that each take 0.3 s or more).
FORKS_PER_WORKER = 100
#: Seconds a worker has to finish after the parent asks it to stop, before it is killed.
STOP_GRACE_S = 2.0


def choose_workers(requested: int, n_hosts: int, forks: int) -> int:
    """Worker processes for a run: `requested` if given (>0); else one per FORKS_PER_WORKER forks
    and per HOSTS_PER_WORKER hosts, up to the cores there are (so 1 at the default 50 forks);
    never more than hosts or forks."""
    auto = min(os.cpu_count() or 1, n_hosts // HOSTS_PER_WORKER, -(-forks // FORKS_PER_WORKER))
    wanted = requested if requested > 0 else auto
    return max(1, min(wanted, n_hosts, forks))


def shard(hosts: Sequence[Host], jump_of: Callable[[Host], Any], workers: int) -> list[list[Host]]:
    """Hosts in `workers` shards, those with the same jump host (not None) always together, the
    shards as even as that allows; each shard keeps the inventory's order."""
    groups: dict[Any, list[int]] = {}
    for index, host in enumerate(hosts):
        jump = jump_of(host)
        groups.setdefault(("jump", jump) if jump is not None else ("host", index), []).append(index)
    shards: list[list[int]] = [[] for _ in range(workers)]
    # Largest group first, each to the lightest shard: within one group's size of even.
    for group in sorted(groups.values(), key=len, reverse=True):
        min(shards, key=len).extend(group)
    return [[hosts[i] for i in sorted(s)] for s in shards if s]


@dataclass(frozen=True)
class WorkerJob:
    """What one worker is given: its hosts, the runbooks (by path; a runbook holds compiled
    templates, which do not pickle) and the run options with its share of the forks."""

    hosts: tuple[Host, ...]
    runbook_paths: tuple[str, ...]
    options: Any  # fleet.diagnose.RunOptions


class Sharded:
    """A run spread over started workers; stands where `fleet.diagnose.Prepared` does for the CLI."""

    transports: Mapping[Connection, Any] = MappingProxyType({})  # each worker has its own

    def __init__(self, procs: list[tuple[BaseProcess, Pipe, tuple[Host, ...]]],
                 notes: tuple[str, ...], redactor: Redactor, hosts: tuple[Host, ...]):
        self._procs = procs
        self.hosts = hosts
        self.notes = notes
        self.redactor = redactor

    def results(self, on_start: Callable[[str], None] | None = None) -> Iterator[HostResult]:
        """Each host's result as a worker sends it; closing the iterator (Ctrl-C, SIGTERM) stops the workers."""
        from multiprocessing.connection import wait

        pending = {conn: (proc, {h.name: h for h in hosts}) for proc, conn, hosts in self._procs}
        try:
            while pending:
                for conn in wait(list(pending)):
                    proc, left = pending[conn]
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        kind, payload = "died", None
                    if kind == "start" and on_start is not None:
                        on_start(payload)
                    elif kind == "result":
                        left.pop(payload.host.name, None)
                        yield payload
                    elif kind in ("done", "fatal", "died"):
                        del pending[conn]
                        proc.join(STOP_GRACE_S)
                        why = payload if kind == "fatal" else f"worker process ended (exit code {proc.exitcode})"
                        yield from (_lost(host, why) for host in left.values())
        finally:
            self.close()

    def close(self) -> None:
        """End every worker still running: SIGTERM, then SIGKILL after STOP_GRACE_S."""
        for proc, conn, _ in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc, conn, _ in self._procs:
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()


def _lost(host: Host, why: str) -> HostResult:
    """The verdict of a host whose worker ended before diagnosing it (as the pool's own `crashed`)."""
    return HostResult(host, Diagnosis(TransportStatus.UNREACHABLE.value, Severity.CRITICAL, f"internal error: {why}"))


def start(hosts: Sequence[Host], books: Sequence[Runbook], runbook: Runbook, options: Any, workers: int,
          ask_passphrase: Callable[[str], str | None] | None = None) -> Sharded:
    """Start `workers` processes on shards of `hosts` and wait until each has built its transports.

    Raises InputError with a worker's own message when one cannot start (bad key, ssh_config).
    """
    import multiprocessing

    from fleet.transport.ssh import resolve_endpoint
    from fleet.transport.sshconfig import load_ssh_config

    ssh_config = load_ssh_config(options.ssh.ssh_config)

    def jump_of(host: Host) -> Any:
        if host.connection is not Connection.SSH or host.problem is not None:
            return None
        try:
            return resolve_endpoint(host, ssh_config).jump
        except ValueError:
            return None  # the worker's prepare says what is wrong with this host

    shards = shard(hosts, jump_of, workers)
    context = multiprocessing.get_context("spawn")
    paths = tuple(os.path.abspath(b.path) for b in books)
    procs = []
    # Workers start with SIGINT ignored (kept across exec, and Python leaves an ignored SIGINT
    # alone): a Ctrl-C while they import must not print their tracebacks; the parent ends them.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for index, part in enumerate(shards):
            forks = options.forks // len(shards) + (1 if index < options.forks % len(shards) else 0)
            parent_end, child_end = context.Pipe()
            job = WorkerJob(tuple(part), paths, replace(options, forks=max(1, forks)))
            proc = context.Process(target=_worker_main, args=(child_end, job), name=f"fleet-worker-{index}",
                                   daemon=True)
            proc.start()
            child_end.close()
            procs.append((proc, parent_end, tuple(part)))
    finally:
        signal.signal(signal.SIGINT, previous)
    sharded = Sharded(procs, (), Redactor.build(runbook.redact), tuple(hosts))
    try:
        sharded.notes = _wait_ready(procs, ask_passphrase)
    except BaseException:
        sharded.close()
        raise
    return sharded


def _wait_ready(procs: list, ask_passphrase: Callable[[str], str | None] | None) -> tuple[str, ...]:
    """Answer the workers' passphrase questions until each is ready; their notes, each once."""
    from multiprocessing.connection import wait

    answers: dict[str, str | None] = {}
    notes: dict[str, None] = {}
    waiting = {conn for _, conn, _ in procs}
    while waiting:
        for conn in wait(list(waiting)):
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                raise InputError("a worker process ended while starting") from None
            if kind == "ask":
                if payload not in answers:
                    answers[payload] = ask_passphrase(payload) if ask_passphrase else None
                conn.send(answers[payload])
            elif kind == "ready":
                notes.update(dict.fromkeys(payload))
                waiting.discard(conn)
            elif kind == "fatal":
                raise InputError(payload)
    return tuple(notes)


class _Stopped(BaseException):
    """The parent ended this worker (SIGTERM): unwind, so the pool cancels its hosts' connections
    and kills their local commands, instead of dying with them still running."""


def _stop(signum, frame):  # noqa: ANN001 - signal handler signature
    raise _Stopped()


def _worker_main(conn: Pipe, job: WorkerJob) -> None:
    """A worker: prepare its hosts, run them, send each result; all errors become messages."""
    from fleet import gcpolicy

    gcpolicy.start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    _die_with_parent()
    lock = threading.Lock()

    def send(kind: str, payload: Any) -> None:
        with lock:  # pool threads send "start" while the main thread sends results
            conn.send((kind, payload))

    def ask(path: str) -> str | None:
        send("ask", path)
        return conn.recv()

    try:
        from fleet.diagnose import prepare, run
        from fleet.runbook import load_runbook
        from fleet.runbook_set import combine
        from fleet.transport_fix import TransportContext, with_transport_fix

        runbook = combine([load_runbook(p) for p in job.runbook_paths])
        prepared = prepare(job.hosts, runbook, job.options, ask)
        context = TransportContext(prepared.transports.get(Connection.SSH), job.options.ssh.known_hosts_files()[0])
        send("ready", prepared.notes)
        gcpolicy.settle()
        for result in run(prepared, runbook, job.options, lambda name: send("start", name)):
            send("result", with_transport_fix(result, context))
        send("done", None)
    except _Stopped:
        pass  # the parent is not listening any more
    except FleetError as exc:
        send("fatal", str(exc))
    except BaseException as exc:  # noqa: BLE001 - the parent turns it into the hosts' verdicts
        # One line: it becomes the verdict of the worker's remaining hosts (never a traceback).
        send("fatal", f"worker {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def _die_with_parent() -> None:
    """Exit at once if the parent process goes away (killed, crashed): never an orphan run."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)  # unwind as when the parent stops us...
        time.sleep(STOP_GRACE_S)
        os._exit(1)  # ...but go regardless

    threading.Thread(target=watch, name="fleet-parent-watch", daemon=True).start()


def prepare_run(hosts: Sequence[Host], books: Sequence[Runbook], runbook: Runbook, options: Any, workers: int,
                ask_passphrase: Callable[[str], str | None] | None = None) -> Any:
    """`fleet.diagnose.prepare` in this process for one worker, or `start` for several."""
    from fleet.diagnose import prepare

    count = choose_workers(workers, len(hosts), options.forks)
    if count == 1:
        return prepare(hosts, runbook, options, ask_passphrase)
    return start(hosts, books, runbook, options, count, ask_passphrase)


def run_prepared(prepared: Any, runbook: Runbook, options: Any,
                 on_start: Callable[[str], None] | None = None) -> Iterator[HostResult]:
    """Results of a run `prepare_run` set up, in whichever of the two forms it took."""
    from fleet.diagnose import run

    if isinstance(prepared, Sharded):
        return prepared.results(on_start)
    return run(prepared, runbook, options, on_start)
