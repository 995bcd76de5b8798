"""The report document: a run's results as plain JSON-able data, the one source every renderer reads.

`fleet report RESULTS.json` re-renders from this document, so the JSON file is the truth.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from collections import defaultdict
from typing import Any, Iterable, Mapping

from fleet import __version__
from fleet.errors import InputError
from fleet.limits import REPORT_OUTPUT_CHARS, cap_text
from fleet.report.schema_check import first_error
from fleet.models import HostResult, Severity, TRANSPORT_VERDICTS
from fleet.textfile import parse_json, read_text

SCHEMA = 1
# How a healthy verdict says a check could not be judged ("healthy; nginx -t not judged: ...").
NOT_JUDGED = " not judged: "
# Host-specific values masked so that the same cause on many hosts groups together.
_MASKS = (
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"\b[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\d+"), "<n>"),
)


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """Facts and models as JSON values: dataclasses to dicts, enums to their values, tuples to lists."""
    # Exact types first: this walks every fact of every host, and isinstance() against the
    # typing ABCs below was a third of the CPU of interpreting and reporting a 502 run.
    kind = type(value)
    if kind is str and len(value) > REPORT_OUTPUT_CHARS:
        # A fact may quote a whole output (a text probe's `text`): the report keeps what it keeps of outputs.
        return cap_text(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        return {name: jsonable(getattr(value, name)) for name in _shown_fields(kind)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@functools.cache
def _shown_fields(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind) if f.repr)


def host_entry(result: HostResult, runbooks: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One host as the report's JSON has it; `runbooks`: its verdict per runbook when several ran."""
    d, host = result.diagnosis, result.host
    entry = {
        "name": host.name,
        "address": host.address,
        "groups": list(host.groups),
        "verdict": d.verdict,
        "severity": d.severity.value,
        "summary": d.summary,
        "evidence": list(d.evidence),
        "fix": list(d.fix),
        "fix_steps": jsonable(d.steps),
        "probes": {name: {"exit_code": p.exit_code, "stdout": p.stdout, "stderr": p.stderr,
                          "duration_s": p.duration_s, "truncated": p.truncated, "error": p.error}
                   for name, p in result.probes.items()},
        "parameters": jsonable(result.params),
        "parameter_sources": dict(result.param_sources),
        "facts": jsonable(result.facts),
        "notes": list(result.notes),
        "duration_s": round(result.duration_s, 3),
    }
    if runbooks:
        entry["runbooks"] = list(runbooks)
    return entry


_FINGERPRINT = re.compile(r"\b(?:SHA256|MD5):\S+")


def signature(entry: Mapping[str, Any]) -> str:
    """The cause of a host's verdict with host-specific numbers and addresses masked.

    A transport verdict's summary names the host and its key: masked too, so 18 unknown host
    keys are one cause, not 18.
    """
    text = entry["summary"]
    if entry["verdict"] in TRANSPORT_VERDICTS:
        text = _FINGERPRINT.sub("<key>", text)
        for value in {entry["name"], entry.get("address") or entry["name"]}:
            text = text.replace(value, "<host>")
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text


def identical_outputs(hosts: list[dict[str, Any]], preview: int = 200) -> list[dict[str, Any]]:
    """Per probe, the hosts whose output was byte-for-byte the same (dshbak's idea), largest groups first."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for entry in hosts:
        for name, probe in entry["probes"].items():
            if probe["stdout"] or probe["stderr"]:
                groups[(name, probe["stdout"], probe["stderr"])].append(entry["name"])
    shared = [{"probe": name, "hosts": members, "count": len(members), "preview": stdout[:preview]}
              for (name, stdout, _), members in groups.items() if len(members) > 1]
    return sorted(shared, key=lambda g: (-g["count"], g["probe"]))


def _cause(verdict: str, sig: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """One cause: its hosts, and their fix, or each distinct fix with the hosts it is for."""
    by_fix: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for member in members:
        by_fix[tuple(member["fix"])].append(member["name"])
    fixes = [{"hosts": names, "fix": list(fix)} for fix, names in by_fix.items()]
    return {"verdict": verdict, "signature": sig, "severity": members[0]["severity"], "count": len(members),
            "hosts": [m["name"] for m in members], "fix": fixes[0]["fix"] if len(fixes) == 1 else [],
            "fixes": fixes, "summary": members[0]["summary"]}


def summarise(hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """Fleet-level view: counts by verdict, and problem hosts grouped by verdict and cause, largest first.

    A fix names this host's files, addresses and processes: a cause shows one `fix` only when
    it is identical for all its hosts; otherwise `fix` is empty and `fixes` holds each set of
    hosts with their own fix.
    """
    counts: dict[str, int] = defaultdict(int)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in hosts:
        counts[entry["verdict"]] += 1
        if entry["severity"] != Severity.OK.value:
            groups[(entry["verdict"], signature(entry))].append(entry)
    causes = [_cause(verdict, sig, members) for (verdict, sig), members in groups.items()]
    causes.sort(key=lambda c: (c["verdict"] in TRANSPORT_VERDICTS, -c["count"], c["verdict"]))
    problems = sum(1 for e in hosts if e["severity"] != Severity.OK.value)
    not_run = sum(1 for e in hosts if e["verdict"] in TRANSPORT_VERDICTS)
    return {
        "total": len(hosts),
        "healthy": len(hosts) - problems,
        "problems": problems,
        "not_reached": not_run,
        "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "causes": causes,
        "headline": headline(len(hosts), problems, not_run, causes),
        "identical_outputs": identical_outputs(hosts),
    }


def headline(total: int, problems: int, not_run: int, causes: list[dict[str, Any]]) -> str:
    """One sentence: how many hosts are affected, of how many, by which causes, most hosts first."""
    if total == 0:
        return "No hosts were diagnosed."
    if problems == 0:
        return f"All {total} hosts healthy." if total > 1 else "The host is healthy."
    by_verdict: dict[str, int] = defaultdict(int)
    for cause in causes:  # already largest first, so the first seen verdicts are the largest
        by_verdict[cause["verdict"]] += cause["count"]
    ranked = sorted(by_verdict.items(), key=lambda kv: -kv[1])
    parts = []
    if problems > not_run:
        top = ", ".join(f"{n} {v}" for v, n in ranked if v not in TRANSPORT_VERDICTS)
        broken = problems - not_run
        parts.append(f"{broken} of {total} host{'s' if total != 1 else ''} {'has' if broken == 1 else 'have'} "
                     f"a problem ({top})")
    if not_run:
        kinds = ", ".join(f"{n} {v}" for v, n in ranked if v in TRANSPORT_VERDICTS)
        parts.append(f"{not_run} of {total} could not be diagnosed ({kinds})")
    return "; ".join(parts) + "."


def build(hosts: list[dict[str, Any]], *, runbook: Any, params: Mapping[str, Any], inventory: str,
          limit: str | None, options: Mapping[str, Any], started_at: str, duration_s: float,
          partial: bool = False, notes: Iterable[str] = (), not_diagnosed: Iterable[str] = ()) -> dict[str, Any]:
    """The whole report document for a run, from its hosts' entries (see `host_entry`).

    `not_diagnosed`: hosts selected but never diagnosed (the run was interrupted); the headline
    counts them and the retry file lists them.
    """
    missing = list(not_diagnosed)
    summary = summarise(hosts)
    caveats = [h for h in hosts if h["severity"] == Severity.OK.value and NOT_JUDGED in h["summary"]]
    if caveats:
        # "All 12 hosts healthy" must not hide that a healthy host's check was not judged.
        summary["headline"] = (f"{summary['headline'].rstrip('.')}; {len(caveats)} healthy "
                               f"host{'s' if len(caveats) != 1 else ''} with a check not judged.")
    if missing:
        total = len(hosts) + len(missing)
        summary["headline"] = (f"Interrupted: {len(missing)} of {total} host{'s' if total != 1 else ''} never "
                               f"diagnosed. {summary['headline']}")
    return {
        "schema": SCHEMA,
        "fleet_version": __version__,
        "runbook": runbook.name,
        "runbook_description": runbook.description,
        # Where the runbook was read from, so a report shows whose probes and rules judged the hosts.
        "runbook_source": getattr(runbook, "path", ""),
        "parameters": jsonable(params),
        "inventory": inventory,
        "limit": limit,
        "options": jsonable(options),
        "started_at": started_at,
        "duration_s": round(duration_s, 3),
        "partial": partial,
        "notes": list(notes),
        "not_diagnosed": missing,
        "summary": summary,
        "hosts": hosts,
    }


def load(path: str) -> dict[str, Any]:
    """Read a JSON report back; InputError (file and line) if it is not a fleet report of this schema."""
    text = read_text(path, "report")
    doc = parse_json(text, path)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"not a fleet report of schema {SCHEMA}", path)
    hosts = doc.get("hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, dict) and {"name", "verdict", "severity"} <= h.keys()
                                              for h in hosts):
        raise InputError("the report's hosts are malformed", path)
    # Renderers trust the document's shape: a value of the wrong type is one line here, not a traceback there.
    error = first_error(doc)
    if error:
        raise InputError(f"not a valid fleet report: {error}", path)
    # The summary is derived from the hosts: derived again, it cannot disagree with them.
    return {**doc, "summary": summarise(doc["hosts"])}
