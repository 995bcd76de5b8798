"""Offline runbook tests: a runbook's rules evaluated on captured probe outputs, no fleet needed.

Cases come from either
* a directory with one sub-directory per case, holding `<probe>.out` (stdout), optional
  `<probe>.err` and `<probe>.exit` (exit code, default 0), `expected` (the verdict code) and
  optional `params.yml` (parameters as inventory variables would give them); or
* a JSON report written by `fleet diagnose`: each diagnosed host is a case expecting the
  verdict it got then, so a changed rule shows which hosts it would judge differently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from fleet.errors import InputError
from fleet.interpret import interpret
from fleet.models import Diagnosis, Host, ProbeOutput
from fleet.report import document
from fleet.runbook import Runbook, resolve_params
from fleet.yamlfile import load_yaml


@dataclass(frozen=True)
class Case:
    name: str
    expected: str | None
    probes: Mapping[str, ProbeOutput] = field(hash=False)
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    diagnosis: Diagnosis

    @property
    def passed(self) -> bool:
        return self.case.expected is None or self.diagnosis.verdict == self.case.expected


def load_cases(source: str) -> list[Case]:
    """Cases from a directory of case folders or from a JSON report; InputError when neither."""
    if os.path.isdir(source):
        # A case is a folder of PROBE.out files: any other folder (fixtures, a parent directory
        # given by mistake) is no case, or "9 passed" would be said of nothing tested.
        return [_case_from_dir(os.path.join(source, d), d) for d in sorted(os.listdir(source))
                if os.path.isdir(os.path.join(source, d))
                and any(f.endswith(".out") for f in os.listdir(os.path.join(source, d)))]
    doc = document.load(source)
    return [Case(h.name, h.verdict, {name: _probe_from_json(name, p) for name, p in h.probes.items()}, h.parameters)
            for h in document.hosts_of(doc) if h.reached]


def _probe_from_json(name: str, probe: Mapping[str, Any]) -> ProbeOutput:
    return ProbeOutput(name, probe.get("exit_code"), probe.get("stdout", ""), probe.get("stderr", ""),
                       probe.get("duration_s"), bool(probe.get("truncated")), probe.get("error", ""))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


def _case_from_dir(folder: str, name: str) -> Case:
    probes: dict[str, ProbeOutput] = {}
    for entry in sorted(os.listdir(folder)):
        probe, ext = os.path.splitext(entry)
        if ext != ".out":
            continue
        exit_text = (_read(os.path.join(folder, probe + ".exit")) or "0").strip()
        if not exit_text.lstrip("-").isdigit():
            raise InputError(f"exit code must be a number, not {exit_text!r}", os.path.join(folder, probe + ".exit"))
        probes[probe] = ProbeOutput(probe, int(exit_text), _read(os.path.join(folder, entry)) or "",
                                    _read(os.path.join(folder, probe + ".err")) or "", None)
    params_path = os.path.join(folder, "params.yml")
    params = load_yaml(params_path) if os.path.exists(params_path) else {}
    if not isinstance(params, dict):
        raise InputError("params.yml must be a mapping", params_path)
    expected = _read(os.path.join(folder, "expected"))
    return Case(name, expected.strip() if expected else None, probes, params)


def run_case(runbook: Runbook, case: Case, overrides: Mapping[str, str] | None = None) -> CaseResult:
    """Redact, discover, parse and judge the case's outputs through the path a live run takes (fleet.interpret)."""
    params = resolve_params(runbook, case.params, overrides or {})
    return CaseResult(case, interpret(runbook, Host(case.name, ""), case.probes, params).diagnosis)
