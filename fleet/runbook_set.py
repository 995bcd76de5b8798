"""Several runbooks in one connection per host (`--runbook 502,host`).

The runbooks' probes are sent as one script (each probe carrying its own runbook's prelude), the
facts parsed once, and each runbook's rules walked on its own probes' facts (fleet.rules.evaluate,
inside the host's interpretation budget): a host gets a verdict per runbook, and its overall
verdict is the worst of them (a full disk or an OOM kill is often the real cause of a 502).
"""

from __future__ import annotations

from typing import Sequence

from fleet.errors import RunbookError
from fleet.runbook import Runbook, load_runbook

def load_runbooks(spec: str) -> tuple[Runbook, ...]:
    """The runbooks a comma list names (`502,host`), each once, in the order given."""
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise RunbookError(f"--runbook takes a name, a path or a comma list of them, not {spec!r}")
    return tuple(load_runbook(name) for name in names)


def combine(books: Sequence[Runbook]) -> Runbook:
    """One runbook whose script holds every runbook's probes; its rules are the parts' (see `judge`)."""
    if len(books) == 1:
        return books[0]
    probes, params, owner = [], {}, {}
    for book in books:
        for probe in book.probes:
            if probe.name in owner:
                raise RunbookError(f"runbooks {owner[probe.name]!r} and {book.name!r} both have a probe named "
                                   f"{probe.name!r}; they cannot run in one script")
            owner[probe.name] = book.name
            probes.append(probe)  # a runbook's prelude travels with each of its own probes
        for param in book.parameters:
            if param.name in params and params[param.name].default != param.default:
                raise RunbookError(f"runbooks disagree on parameter {param.name!r}'s default "
                                   f"({params[param.name].default!r} and {param.default!r})")
            params.setdefault(param.name, param)
    return Runbook(name="+".join(b.name for b in books), description="; ".join(b.description for b in books),
                   path=", ".join(b.path for b in books), parameters=tuple(params.values()), probes=tuple(probes),
                   rules=(), redact=tuple(dict.fromkeys(r for b in books for r in b.redact)), parts=tuple(books))
