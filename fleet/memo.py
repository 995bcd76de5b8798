"""Work done once per distinct input: parsed facts and rendered rule texts, shared across hosts.

A fleet runs the same config on many hosts, so many probe outputs are byte for byte the same
(`nginx -T`, service states) and so are the rule texts rendered from their facts. Each is
computed once per run and process and looked up afterwards, in a memory-bounded LRU.

Correctness rests on three things:
* the key is everything the result depends on: a parse is keyed by the parser, a SHA-256 of the
  probe's output and the parameters the parser actually read (recorded on the first parse, so a
  host with another `port` gets its own facts); a rule text by the template and the typed values
  of the context names it reads;
* values are compared with their types (`1`, `True` and `1.0` are different keys: they render
  differently), and what cannot be given such a key is simply not memoized;
* facts are frozen dataclasses, so sharing one object between hosts is safe.

Only what repeats is held: an input is remembered (by a hash: a few bytes) the first time it is
seen and its result stored the second time (a "doorkeeper", as in TinyLFU caches). Most hosts'
`ps` or `ss` outputs are their own and never come back; holding their facts until the LRU pushed
them out cost 15 MB of a 500-host run's memory for no hit. The price is one more parse or render
per input that does repeat.

Under the per-host time budget (fleet.budget) an interrupt may land anywhere in the budgeted
code: lookups there only read, and new entries are stored by `ParseMemo.store` after the budget
ended (a parse the budget stopped stores nothing).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterator, Mapping

from fleet.models import ProbeOutput

#: What the memos hold at most, per process: entries and bytes of the inputs they stand for.
MAX_ENTRIES = 4096
MAX_BYTES = 16 * 1024 * 1024
#: Outputs longer than this (stdout + stderr, characters) are parsed each time and never held:
#: they are rare (a huge config, a hostile host), and keeping their facts past the run's hosts
#: would cost more memory than parsing them again costs CPU.
MAX_ENTRY_CHARS = 256 * 1024
#: Parameter variants kept per identical output (one per distinct value of what the parser read).
MAX_VARIANTS = 8
#: A value larger than this (in nested items) is not worth a key: its text is rendered every time.
MAX_KEY_ITEMS = 2000


class Doorkeeper:
    """Which keys were seen before, by hash, bounded: `admit(key)` is False the first time a key
    comes and True after. A hash collision only admits a key early, which is harmless."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> bool:
        """True if `key` was seen before (and is worth storing now); else remember it."""
        h = hash(key)
        with self._lock:
            if h in self._seen:
                del self._seen[h]
                return True
            self._seen[h] = None
            if len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return False


class _Missing:
    """A key's value that is not there (distinct from None, which a parameter may be)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class LRU:
    """A bounded map: past `max_entries` entries or `max_bytes` of their declared sizes, the least
    recently used go. Thread-safe; `get` takes no lock (one dict read and one reorder, each
    atomic), so it may run where an asynchronous exception can land."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any:
        """The value stored for `key`, or MISSING."""
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return MISSING
        try:
            self._items.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile: the value read is still right
            pass
        self.hits += 1
        return found[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Store `value` as `size` bytes, evicting the oldest entries past the bounds."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped


def typed_key(value: Any, budget: list[int] | None = None) -> Hashable:
    """A hashable key equal for two values only if they render and compare alike, types included.

    Raises TypeError for a value of a kind it does not know (or past MAX_KEY_ITEMS items).
    """
    budget = budget if budget is not None else [MAX_KEY_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise TypeError("value too large to key")
    kind = type(value)
    if value is None or value is MISSING or kind in (str, bytes, int, bool):
        return kind, value
    if kind is float:
        return kind, repr(value)  # -0.0 == 0.0 and nan != nan, but they print differently
    if isinstance(value, enum.Enum):
        return kind, value.name
    if kind in (tuple, list, frozenset, set):
        items = (typed_key(v, budget) for v in value)
        return kind, (frozenset(items) if kind in (frozenset, set) else tuple(items))
    if isinstance(value, Mapping):
        return kind, tuple((typed_key(k, budget), typed_key(v, budget)) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return kind, tuple(typed_key(getattr(value, f.name), budget) for f in dataclasses.fields(value))
    raise TypeError(f"no key for {kind.__name__}")


class RecordingParams(Mapping[str, Any]):
    """The parameters as a parser sees them, noting every one it reads (and what it found)."""

    _ALL = "<all>"
    _NONEMPTY = "<nonempty>"

    def __init__(self, params: Mapping[str, Any]):
        self._params = params
        self.reads: dict[str, Hashable] = {}
        # A value read that has no key: the facts are right but must not be memoized. Never an
        # exception, which the parser might catch and take for a missing parameter.
        self.unkeyable = False

    def _record(self, name: str, value: Any) -> None:
        try:
            self.reads[name] = typed_key(value)
        except TypeError:
            self.unkeyable = True

    def _note(self, name: Any) -> Any:
        value = self._params.get(name, MISSING)
        self._record(name, value)
        return value

    def __getitem__(self, name: str) -> Any:
        value = self._note(name)
        if value is MISSING:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        value = self._note(name)
        return default if value is MISSING else value

    def __contains__(self, name: object) -> bool:
        return self._note(name) is not MISSING

    def __bool__(self) -> bool:
        # `params or {}` asks only whether there are any; that does not make every value a read.
        nonempty = bool(self._params)
        self._record(self._NONEMPTY, nonempty)
        return nonempty

    def __iter__(self) -> Iterator[str]:
        self._record(self._ALL, dict(self._params))
        return iter(self._params)

    def __len__(self) -> int:
        self._record(self._ALL, dict(self._params))
        return len(self._params)


def _reads_match(reads: Mapping[str, Hashable], params: Mapping[str, Any]) -> bool:
    for name, key in reads.items():
        if name == RecordingParams._ALL:
            value = dict(params)
        elif name == RecordingParams._NONEMPTY:
            value = bool(params)
        else:
            value = params.get(name, MISSING)
        try:
            if typed_key(value) != key:
                return False
        except TypeError:
            return False
    return True


def output_digest(output: ProbeOutput) -> bytes:
    """What a parser can read of a probe's output, hashed. `duration_s` is left out: it differs on
    every host and no parser reads it (timing is not content)."""
    head = repr((output.name, output.exit_code, output.truncated, output.error, len(output.stdout)))
    digest = hashlib.sha256(head.encode())
    digest.update(output.stdout.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(output.stderr.encode("utf-8", "surrogatepass"))
    return digest.digest()


class ParseMemo:
    """Facts by (parser, output digest, parameters read). `parse` only reads the memo; the caller
    stores what it returned as new with `store`, once its time budget is over."""

    def __init__(self, lru: LRU | None = None):
        self.lru = lru or LRU()
        self.doorkeeper = Doorkeeper()

    def parse(self, parser_name: str, parser: Callable[[ProbeOutput, Mapping[str, Any]], Any],
              output: ProbeOutput, params: Mapping[str, Any]) -> tuple[Any, tuple | None]:
        """The facts, and what to `store` when they were computed here (None on a hit or for an
        output too large to hold)."""
        size = len(output.stdout) + len(output.stderr) + 256
        if size > MAX_ENTRY_CHARS:
            return parser(output, params), None
        key = (parser_name, output_digest(output))
        variants = self.lru.get(key)
        for reads, facts in () if variants is MISSING else variants:
            if _reads_match(reads, params):
                return facts, None
        recorder = RecordingParams(params)
        facts = parser(output, recorder)
        if recorder.unkeyable:
            return facts, None
        return facts, (key, dict(recorder.reads), facts, size)

    def store(self, pending: list[tuple]) -> None:
        """Keep facts `parse` computed for an output seen before (call outside any time budget)."""
        for key, reads, facts, size in pending:
            if not self.doorkeeper.admit((key, tuple(reads.items()))):
                continue
            variants = self.lru.get(key)
            kept = [] if variants is MISSING else [v for v in variants if v[0] != reads]
            kept = [(reads, facts), *kept][:MAX_VARIANTS]
            self.lru.put(key, tuple(kept), size * len(kept))


class TextMemo:
    """Rendered rule texts by (template, typed values of the context names it reads).

    Keying a text costs more than rendering it when it reads a large fact (a healthy host's
    evidence quotes every HTTP check with its timings): a template whose first PROBATION
    lookups found its text less than once in HIT_RATE is rendered directly from then on.
    """

    PROBATION = 32
    HIT_RATE = 4

    def __init__(self, lru: LRU | None = None):
        self.lru = lru or LRU()
        self.doorkeeper = Doorkeeper()
        # Per template: [lookups, hits] (the templates are the runbooks' texts, a bounded set).
        self._tally: dict[Hashable, list[int]] = {}

    def render(self, template_id: Hashable, names: tuple[str, ...], context: Mapping[str, Any],
               render: Callable[[], str]) -> str:
        """The text `render()` gives for this context, rendered once per distinct input."""
        tally = self._tally.setdefault(template_id, [0, 0])
        if tally[0] >= self.PROBATION and tally[1] * self.HIT_RATE < tally[0]:
            return render()
        tally[0] += 1
        try:
            budget = [MAX_KEY_ITEMS]
            key = (template_id, tuple(typed_key(context.get(n, MISSING), budget) for n in names))
        except TypeError:
            return render()
        text = self.lru.get(key)
        if text is MISSING:
            text = render()
            if self.doorkeeper.admit(key):
                self.lru.put(key, text, len(text) + 64)
        else:
            tally[1] += 1
        return text


#: The process's memos (each worker process has its own).
PARSES = ParseMemo()
RULE_TEXTS = TextMemo()
