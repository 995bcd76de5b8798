"""`fleet fix plan`: from diagnosed hosts to a plan of remedies, written as JSON and Markdown.

The plan changes nothing anywhere. It records, per host, the remedy with its exact commands
(argv and quoted shell line), preconditions, fingerprint, verification and rollback; apart, the
hosts left alone and why; and the digests apply checks (runbook, inventory, the plan itself).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fleet import fixes
from fleet.errors import InputError
from fleet.fix import actions
from fleet.fix import remedies as remedy_spec
from fleet.fix.policy import Risk
from fleet.models import Host, HostResult, Privilege
from fleet.report import document
from fleet.report.render import md_cell, md_code, write_private
from fleet.rules import Rule
from fleet.runbook import Runbook
from fleet.textfile import parse_json, read_text

PLAN_SCHEMA = 1
DEFAULT_BACKUP_ROOT = "/var/backups/fleet"


@dataclass(frozen=True)
class Settings:
    """What the plan records about how to reach and judge the hosts again at apply time."""

    runbook: str
    inventory: str
    limit: str | None
    options: Mapping[str, Any]
    backup_root: str = DEFAULT_BACKUP_ROOT


def context(result: HostResult) -> dict[str, Any]:
    """What rules (and so remedies) see for a host: its facts, parameters, identity and probe outputs."""
    return {**result.facts, "params": result.params, "host": {"name": result.host.name,
                                                              "address": result.host.address},
            "probes": result.probes}


def rule_for(runbook: Runbook, verdict: str) -> Rule | None:
    return next((r for r in runbook.rules if r.verdict == verdict), None)


def remedy_for(runbook: Runbook, result: HostResult) -> remedy_spec.Built | None:
    """The host's remedy made concrete from its facts, or None when its rule declares none that applies."""
    rule = rule_for(runbook, result.diagnosis.verdict)
    if rule is None:
        return None
    ctx = context(result)
    chosen = remedy_spec.choose(rule.remedies, ctx)
    return remedy_spec.build(chosen, ctx, result.diagnosis.verdict) if chosen else None


def commands(built: remedy_spec.Built, backup_dir: str, privilege: Privilege) -> dict[str, list[dict[str, Any]]]:
    """The exact commands of a remedy run with `privilege`: evidence, steps, rollback (edited files restored first)."""
    def rows(acts: Iterable[actions.Action]) -> list[dict[str, Any]]:
        return [{"argv": list(a.argv), "shell": a.shell, "explain": a.explain} for a in acts]

    return {"evidence": rows(actions.for_steps(built.evidence, backup_dir, privilege)),
            "steps": rows(actions.for_steps(built.steps, backup_dir, privilege)),
            "rollback": rows(actions.restores(built.steps, backup_dir, privilege)
                             + actions.for_steps(built.rollback, backup_dir, privilege))}


def privilege_of(result: HostResult) -> Privilege:
    """What `fleet fix` acts with on a host: what its probes ran as; `sudo -n` where they did not
    say (a plan made from a report that does not record it): apply re-checks it before acting."""
    return result.privilege or Privilege.SUDO


def _root_problem(built: remedy_spec.Built, privilege: Privilege) -> str | None:
    """Why a plain user's login cannot run the remedy (None when the login can act as root).

    Every remedy runs as root at least for its lock (in /run); fleet never tries a step that needs
    root from such a login, nor a sudo that would ask for a password.
    """
    if privilege is not Privilege.USER:
        return None
    steps = (*built.evidence, *built.steps, *built.rollback)
    lines = [fixes.render(s)[-1] for s in steps if fixes.needs_root(s)]
    what = f"its steps {'; '.join(lines)}" if lines else f"its lock in {actions.LOCK_DIR}"
    return (f"needs root, and this login is a plain user without passwordless sudo (its probes ran with "
            f"priv=user), so fleet never attempts {what}, nor any password prompt: log in as root, allow this "
            "user `sudo -n`, or use become (ansible_become with --ask-become-pass)")


def _backup_problem(backup_dir: str, params: Mapping[str, Any]) -> str | None:
    conf = os.path.normpath(str(params.get("nginx_conf_dir") or "/etc/nginx"))
    inside = os.path.normpath(backup_dir)
    if not inside.startswith("/") or inside == conf or inside.startswith(conf + "/"):
        return f"the backup directory {backup_dir} must be an absolute path outside {conf}"
    return None


def host_plan(result: HostResult, runbook: Runbook, backup_dir: str) -> tuple[dict | None, dict | None]:
    """(the host's entry in the plan, None) or (None, why it is left alone)."""
    d = result.diagnosis
    base = {"name": result.host.name, "address": result.host.address, "verdict": d.verdict,
            "severity": d.severity.value, "summary": d.summary, "manual": list(d.fix)}
    if not d.problem:
        return None, {**base, "reason": "healthy"}
    if not d.reached:
        return None, {**base, "reason": f"{d.verdict}: not diagnosed, nothing to fix from here"}
    built = remedy_for(runbook, result)
    if built is None:
        rule = rule_for(runbook, d.verdict)
        names = ", ".join(r.name for r in rule.remedies) if rule else ""
        why = f"none of its remedies ({names}) applies to this host" if names else "the runbook declares no remedy"
        return None, {**base, "reason": f"{why}: fix it by hand"}
    problems = list(built.problems)
    problem = _backup_problem(backup_dir, result.params)
    problems += [problem] if problem and any(isinstance(s, fixes.EditFile) for s in built.steps) else []
    privilege = privilege_of(result)
    problems += [why for why in (_root_problem(built, privilege),) if why]
    remedy = built.remedy
    info = {"name": remedy.name, "risk": remedy.risk.value, "description": remedy.description}
    if problems:
        reason = "manual remedy" if remedy.risk is Risk.MANUAL else "remedy cannot run automatically"
        return None, {**base, "reason": f"{reason}: {'; '.join(problems)}", "remedy": info}
    return {**base, "cause": f"{d.verdict}/{remedy.name}", "privilege": privilege.value,
            "remedy": {**info, "steps": remedy_spec.step_data(built.steps),
                       "commands": commands(built, backup_dir, privilege),
                       "preconditions": [list(p) for p in built.preconditions],
                       "facts": [list(f) for f in built.facts], "fingerprint": built.fingerprint,
                       "verify": {"healthy_runs": remedy.verify.healthy_runs,
                                  "deadline_s": remedy.verify.deadline_s},
                       "max_per_day": remedy.max_per_day}}, None


def build(results: list[HostResult], runbook: Runbook, hosts: list[Host], settings: Settings) -> dict[str, Any]:
    """The plan document for diagnosed hosts."""
    plan_id = f"{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    backup_dir = f"{settings.backup_root.rstrip('/')}/{plan_id}"
    fix, alone = [], []
    for result in results:
        entry, left = host_plan(result, runbook, backup_dir)
        (fix if entry else alone).append(entry or left)
    return {
        "fleet_plan": PLAN_SCHEMA,
        "id": plan_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "created_by": who(),
        "runbook": {"name": settings.runbook, "path": runbook.path, "digest": file_digest(runbook.path)},
        "inventory": {"path": settings.inventory, "limit": settings.limit, "digest": inventory_digest(hosts)},
        "options": dict(settings.options),
        "backup_dir": backup_dir,
        "counts": {"hosts": len(results),
                   "problems": sum(r.diagnosis.problem for r in results)},
        "fix": fix,
        "left_alone": alone,
        "before": [document.host_entry(r) for r in results],
    }


def who() -> str:
    """The operator as the audit records them: login name at this machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def inventory_digest(hosts: Iterable[Host]) -> str:
    """A digest of the hosts as fleet resolved them (any inventory format: files, directories, scripts)."""
    data = [[h.name, h.address, h.port, h.user, h.key_file, h.connection.value, document.jsonable(dict(h.vars))]
            for h in sorted(hosts, key=lambda h: h.name)]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def write(plan: Mapping[str, Any], path: str) -> list[str]:
    """Write PLAN.json (mode 0600) and its Markdown beside it; return both paths."""
    markdown = os.path.splitext(path)[0] + ".md"
    write_private(path, json.dumps(plan, indent=1, ensure_ascii=False) + "\n")
    write_private(markdown, render_markdown(plan))
    return [path, markdown]


def load(path: str) -> tuple[dict[str, Any], str]:
    """A plan and the digest of its bytes; InputError when it is not a fleet plan."""
    text = read_text(path, "plan")
    plan = parse_json(text, path)
    if not isinstance(plan, dict) or plan.get("fleet_plan") != PLAN_SCHEMA:
        raise InputError(f"not a fleet plan of schema {PLAN_SCHEMA}", path)
    for key, kind in (("fix", list), ("left_alone", list), ("runbook", dict), ("inventory", dict),
                      ("options", dict), ("counts", dict), ("created_at", str), ("id", str), ("before", list),
                      ("backup_dir", str)):
        if not isinstance(plan.get(key), kind):
            raise InputError(f"the plan's {key!r} is missing or malformed", path)
    for number, entry in enumerate(plan["fix"], 1):
        remedy = entry.get("remedy") if isinstance(entry, dict) else None
        if not (isinstance(remedy, dict) and all(isinstance(entry.get(k), str) for k in ("name", "verdict", "cause"))
                and isinstance(remedy.get("name"), str) and remedy.get("risk") in {r.value for r in Risk}
                and isinstance(remedy.get("fingerprint"), str) and isinstance(remedy.get("facts"), list)
                and isinstance(remedy.get("commands"), dict)
                and entry.get("privilege") in {Privilege.ROOT.value, Privilege.SUDO.value}):
            raise InputError(f"the plan's host entry {number} is malformed", path)
    return plan, hashlib.sha256(text.encode()).hexdigest()


_RUNS_AS = {Privilege.ROOT: "The probes ran as root (a root login, or become): the commands run without sudo.",
            Privilege.SUDO: "The login has passwordless sudo: the commands run through `sudo -n` (never a password "
                            "prompt)."}


def render_markdown(plan: Mapping[str, Any]) -> str:
    """The plan for a human: per host what will run and how it is checked, then who is left alone."""
    out = [f"# fleet fix plan {plan['id']}", "",
           f"Created {plan['created_at']} by {md_cell(plan['created_by'])}; runbook {md_cell(plan['runbook']['name'])} "
           f"(sha256 {plan['runbook']['digest'][:12]}), inventory {md_cell(plan['inventory']['path'])} "
           f"(sha256 {plan['inventory']['digest'][:12]}). {plan['counts']['problems']} of {plan['counts']['hosts']} "
           "hosts have a problem. Nothing has been changed.", "",
           f"## To fix: {len(plan['fix'])} host(s)", ""]
    for host in plan["fix"]:
        remedy = host["remedy"]
        high = " (needs `--allow-risk high`)" if remedy["risk"] == Risk.HIGH.value else ""
        out += [f"### {md_cell(host['name'])}: {host['verdict']}", "", md_cell(host["summary"]), "",
                f"Remedy **{remedy['name']}**, risk **{remedy['risk']}**{high}: {md_cell(remedy['description'])}", "",
                _RUNS_AS[Privilege(host["privilege"])], ""]
        for title, key in (("Evidence kept first", "evidence"), ("Commands", "steps"),
                           ("Rollback (after a failed step or verification)", "rollback")):
            rows = remedy["commands"][key]
            if rows:
                out += [f"{title}:", ""]
                for row in rows:
                    out += [f"- {md_cell(row['explain']) or 'run'}:", "", md_code(row["shell"]), ""]
        checks = "; ".join(src for src, _ in remedy["preconditions"]) or "none"
        out += [f"Re-checked just before acting: the verdict, the fingerprint of {len(remedy['facts'])} fact(s) "
                f"({md_cell(', '.join(src for src, _ in remedy['facts']))}), preconditions: {md_cell(checks)}.", "",
                f"Verified by: {remedy['verify']['healthy_runs']} healthy diagnoses in a row within "
                f"{remedy['verify']['deadline_s']:g} s. At most {remedy['max_per_day']} attempts per day.", ""]
        if host["manual"]:
            out += ["The diagnosis' full fix (for reference; only the commands above run):", "",
                    md_code("\n".join(host["manual"])), ""]
    out += [f"## Left alone: {len(plan['left_alone'])} host(s)", "", "| host | verdict | why |", "|---|---|---|"]
    out += [f"| {md_cell(h['name'])} | {h['verdict']} | {md_cell(h['reason'])} |" for h in plan["left_alone"]]
    out += [f"| {md_cell(h['name'])} | {h['verdict']} | risk {h['remedy']['risk']}: above the default --allow-risk "
            f"medium, runs only with `--allow-risk {h['remedy']['risk']}` |"
            for h in plan["fix"] if Risk(h["remedy"]["risk"]).rank > Risk.MEDIUM.rank]
    manual = [h for h in plan["left_alone"] if h["manual"] and h["reason"] != "healthy"]
    if manual:
        out += ["", "### Manual steps (fleet never runs these)", ""]
        for host in manual:
            out += [f"{md_cell(host['name'])} ({host['verdict']}):", "", md_code("\n".join(host["manual"])), ""]
    return "\n".join(out) + "\n"
