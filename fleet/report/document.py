"""The report document: a run's results as plain JSON-able data, the one source every renderer reads.

`fleet report RESULTS.json` re-renders from this document, so the JSON file is the truth. This
module alone turns the typed report (fleet/report/model.py) into JSON and back, the journal's
lines included.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import re
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from fleet import __version__
from fleet.errors import InputError
from fleet.limits import REPORT_OUTPUT_CHARS, cap_text
from fleet.memo import LRU, MISSING
from fleet.report.model import HostEntry, Report, RunbookRef
from fleet.report.schema_check import first_error
from fleet.models import HostResult, Severity, reached
from fleet.textfile import parse_json, read_text

SCHEMA = 1
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


# One probe's facts as JSON, shared by every host entry whose facts are the same: hosts of one
# config have the same nginx and discovery facts, and a report holds every entry to its end.
_SHARED_FACTS = LRU(max_entries=1024, max_bytes=8 * 1024 * 1024)


def shared_facts_json(value: Any) -> Any:
    """`jsonable(value)`, the same object for equal facts (keyed by a digest of their JSON text,
    which tells 1, 1.0, true and "1" apart). Nothing may change what it returns."""
    data = jsonable(value)
    text = dumps(data)
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    shared = _SHARED_FACTS.get(key)
    if shared is MISSING:
        _SHARED_FACTS.put(key, data, len(text))
        return data
    return shared


@functools.cache
def _shown_fields(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind) if f.repr)


def entry(result: HostResult) -> HostEntry:
    """One host's result as the report keeps it (with its verdict per runbook when several ran)."""
    d, host = result.diagnosis, result.host
    return HostEntry(
        name=host.name, address=host.address, groups=tuple(host.groups), verdict=d.verdict, severity=d.severity,
        summary=d.summary, evidence=tuple(d.evidence), fix=tuple(d.fix), fix_steps=tuple(jsonable(d.steps)),
        probes={name: {"exit_code": p.exit_code, "stdout": p.stdout, "stderr": p.stderr, "duration_s": p.duration_s,
                       "truncated": p.truncated, "error": p.error}
                for name, p in result.probes.items()},
        parameters=jsonable(result.params), parameter_sources=dict(result.param_sources),
        facts={str(name): shared_facts_json(value) for name, value in result.facts.items()},
        notes=tuple(result.notes), duration_s=round(result.duration_s, 3),
        runbooks=tuple({"runbook": name, "verdict": part.verdict, "severity": part.severity.value,
                        "summary": part.summary, "evidence": list(part.evidence), "fix": list(part.fix)}
                       for name, part in d.parts))


def host_entry(result: HostResult) -> dict[str, Any]:
    """One host as the report's JSON has it (see `entry`)."""
    return entry_json(entry(result))


def entry_json(host: HostEntry) -> dict[str, Any]:
    """A host entry as the report's JSON has it (the schema's `host`)."""
    out = {
        "name": host.name,
        "address": host.address,
        "groups": list(host.groups),
        "verdict": host.verdict,
        "severity": host.severity.value,
        "summary": host.summary,
        "evidence": list(host.evidence),
        "fix": list(host.fix),
        "fix_steps": list(host.fix_steps),
        "probes": dict(host.probes),
        "parameters": dict(host.parameters),
        "parameter_sources": dict(host.parameter_sources),
        "facts": dict(host.facts),
        "notes": list(host.notes),
        "duration_s": host.duration_s,
    }
    if host.runbooks:
        out["runbooks"] = [dict(r) for r in host.runbooks]
    return out


def entry_from_json(data: Mapping[str, Any]) -> HostEntry:
    """A host entry back from the report's JSON (checked against the schema by whoever read it)."""
    return HostEntry(
        name=data["name"], address=data.get("address", ""), groups=tuple(data.get("groups", ())),
        verdict=data["verdict"], severity=Severity(data["severity"]), summary=data.get("summary", ""),
        evidence=tuple(data.get("evidence", ())), fix=tuple(data.get("fix", ())),
        fix_steps=tuple(data.get("fix_steps", ())), probes=data.get("probes", {}),
        parameters=data.get("parameters", {}), parameter_sources=data.get("parameter_sources", {}),
        facts=data.get("facts", {}), notes=tuple(data.get("notes", ())), duration_s=data.get("duration_s", 0.0),
        runbooks=tuple(data.get("runbooks", ())))


def hosts_of(doc: Mapping[str, Any]) -> list[HostEntry]:
    """A report document's hosts, typed."""
    return [entry_from_json(h) for h in doc["hosts"]]


_FINGERPRINT = re.compile(r"\b(?:SHA256|MD5):\S+")


def signature(host: HostEntry) -> str:
    """The cause of a host's verdict with host-specific numbers and addresses masked.

    A transport verdict's summary names the host and its key: masked too, so 18 unknown host
    keys are one cause, not 18.
    """
    text = host.summary
    if not host.reached:
        text = _FINGERPRINT.sub("<key>", text)
        for value in {host.name, host.address or host.name}:
            text = text.replace(value, "<host>")
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text


def identical_outputs(hosts: Sequence[HostEntry], preview: int = 200) -> list[dict[str, Any]]:
    """Per probe, the hosts whose output was byte-for-byte the same (dshbak's idea), largest groups first."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for host in hosts:
        for name, probe in host.probes.items():
            if probe["stdout"] or probe["stderr"]:
                groups[(name, probe["stdout"], probe["stderr"])].append(host.name)
    shared = [{"probe": name, "hosts": members, "count": len(members), "preview": stdout[:preview]}
              for (name, stdout, _), members in groups.items() if len(members) > 1]
    return sorted(shared, key=lambda g: (-g["count"], g["probe"]))


def _cause(verdict: str, sig: str, members: list[HostEntry]) -> dict[str, Any]:
    """One cause: its hosts, and their fix, or each distinct fix with the hosts it is for."""
    by_fix: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for member in members:
        by_fix[member.fix].append(member.name)
    fixes = [{"hosts": names, "fix": list(fix)} for fix, names in by_fix.items()]
    return {"verdict": verdict, "signature": sig, "severity": members[0].severity.value, "count": len(members),
            "hosts": [m.name for m in members], "fix": fixes[0]["fix"] if len(fixes) == 1 else [],
            "fixes": fixes, "summary": members[0].summary}


def summarise(hosts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary of a document's hosts (JSON entries), as `to_json` derives it."""
    return _summary([entry_from_json(h) for h in hosts])


def _summary(hosts: Sequence[HostEntry]) -> dict[str, Any]:
    """Fleet-level view: counts by verdict, and problem hosts grouped by verdict and cause, largest first.

    A fix names this host's files, addresses and processes: a cause shows one `fix` only when
    it is identical for all its hosts; otherwise `fix` is empty and `fixes` holds each set of
    hosts with their own fix.
    """
    counts: dict[str, int] = defaultdict(int)
    groups: dict[tuple[str, str], list[HostEntry]] = defaultdict(list)
    for host in hosts:
        counts[host.verdict] += 1
        if host.problem:
            groups[(host.verdict, signature(host))].append(host)
    causes = [_cause(verdict, sig, members) for (verdict, sig), members in groups.items()]
    causes.sort(key=lambda c: (not reached(c["verdict"]), -c["count"], c["verdict"]))
    problems = sum(1 for h in hosts if h.problem)
    not_run = sum(1 for h in hosts if not h.reached)
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
        top = ", ".join(f"{n} {v}" for v, n in ranked if reached(v))
        broken = problems - not_run
        parts.append(f"{broken} of {total} host{'s' if total != 1 else ''} {'has' if broken == 1 else 'have'} "
                     f"a problem ({top})")
    if not_run:
        kinds = ", ".join(f"{n} {v}" for v, n in ranked if not reached(v))
        parts.append(f"{not_run} of {total} could not be diagnosed ({kinds})")
    return "; ".join(parts) + "."


def build(hosts: list[dict[str, Any]], *, runbook: Any, params: Mapping[str, Any], inventory: str,
          limit: str | None, options: Mapping[str, Any], started_at: str, duration_s: float,
          partial: bool = False, notes: Iterable[str] = (), not_diagnosed: Iterable[str] = ()) -> dict[str, Any]:
    """The report document from hosts' JSON entries (see `host_entry`) and a runbook (name,
    description, path): `to_json` of the Report they make."""
    return to_json(Report(RunbookRef(runbook.name, runbook.description, getattr(runbook, "path", "")),
                          tuple(entry_from_json(h) for h in hosts), inventory, limit, params, options, started_at,
                          duration_s, partial, tuple(notes), tuple(not_diagnosed)))


def to_json(report: Report) -> dict[str, Any]:
    """The whole report document for a run.

    Hosts never diagnosed (the run was interrupted) count in the headline; the retry file lists them.
    """
    summary = _summary(report.hosts)
    caveats = [h for h in report.hosts if h.not_judged]
    if caveats:
        # "All 12 hosts healthy" must not hide that a healthy host's check was not judged.
        summary["headline"] = (f"{summary['headline'].rstrip('.')}; {len(caveats)} healthy "
                               f"host{'s' if len(caveats) != 1 else ''} with a check not judged.")
    missing = report.not_diagnosed
    if missing:
        total = len(report.hosts) + len(missing)
        summary["headline"] = (f"Interrupted: {len(missing)} of {total} host{'s' if total != 1 else ''} never "
                               f"diagnosed. {summary['headline']}")
    return {"schema": SCHEMA, "fleet_version": __version__, **run_fields(report), **end_fields(report),
            "summary": summary, "hosts": [entry_json(h) for h in report.hosts]}


def run_fields(report: Report) -> dict[str, Any]:
    """What the run is, as the document has it: known before any host (a journal's first line)."""
    return {
        "runbook": report.runbook.name,
        "runbook_description": report.runbook.description,
        # Where the runbook was read from, so a report shows whose probes and rules judged the hosts.
        "runbook_source": report.runbook.source,
        "parameters": jsonable(report.parameters),
        "inventory": report.inventory,
        "limit": report.limit,
        "options": jsonable(report.options),
        "started_at": report.started_at,
    }


def end_fields(report: Report) -> dict[str, Any]:
    """How the run ended, as the document has it (a journal's last line)."""
    return {"duration_s": round(report.duration_s, 3), "partial": report.partial, "notes": list(report.notes),
            "not_diagnosed": list(report.not_diagnosed)}


def dumps(doc: Mapping[str, Any]) -> str:
    """The report document (or a journal line) as JSON text, non-ASCII kept as is."""
    return json.dumps(doc, ensure_ascii=False)


def parse_line(line: str) -> Any:
    """One journal line's JSON value; json.JSONDecodeError if it is not JSON."""
    return json.loads(line)


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
