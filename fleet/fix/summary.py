"""What `fleet fix apply` leaves in --out besides its journal: before/after reports and the fix summary.

The before and after reports are diagnose's own documents (JSON, Markdown, HTML), so `fleet
diff BEFORE.json AFTER.json` and `fleet report` work on them; the summary says per host what
was done and how it ended.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from fleet.fix.apply import HostOutcome
from fleet.report import document
from fleet.report.render import md_cell, md_code, md_span, write_private, write_reports
from fleet.runbook import Runbook

FORMATS = ("json", "md", "html")


def write_all(out_dir: str, stem: str, plan: Mapping[str, Any], runbook: Runbook, after: Sequence[dict[str, Any]],
              outcomes: Mapping[str, HostOutcome], meta: Mapping[str, Any]) -> list[str]:
    """Write before/after reports and the summary (JSON and Markdown); return their paths."""
    common = dict(runbook=runbook, params={}, inventory=plan["inventory"]["path"], limit=plan["inventory"]["limit"],
                  options={}, started_at=meta["started_at"], duration_s=meta["duration_s"],
                  partial=bool(meta.get("interrupted")))
    planned = {h["name"] for h in plan["fix"]}
    before = [h for h in plan["before"] if h["name"] in planned]
    paths = write_reports(document.build(before, notes=[f"before fleet fix {plan['id']}"], **common), out_dir,
                          f"{stem}-before", FORMATS)
    paths += write_reports(document.build(list(after), notes=[f"after fleet fix {plan['id']}"], **common), out_dir,
                           f"{stem}-after", FORMATS)
    doc = summary(plan, after, outcomes, meta)
    write_private(os.path.join(out_dir, f"{stem}.fix.json"), json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    write_private(os.path.join(out_dir, f"{stem}.fix.md"), markdown(doc))
    return paths + [os.path.join(out_dir, f"{stem}.fix.json"), os.path.join(out_dir, f"{stem}.fix.md")]


def summary(plan: Mapping[str, Any], after: Sequence[Mapping[str, Any]], outcomes: Mapping[str, HostOutcome],
            meta: Mapping[str, Any]) -> dict[str, Any]:
    """Per planned host: verdict before, what fleet did, verdict after."""
    after_by = {h["name"]: h for h in after}
    hosts = []
    for entry in plan["fix"]:
        outcome = outcomes[entry["name"]]
        hosts.append({"name": entry["name"], "before": entry["verdict"], "remedy": entry["remedy"]["name"],
                      "risk": entry["remedy"]["risk"], "outcome": outcome.outcome.value, "reason": outcome.reason,
                      "after": after_by.get(entry["name"], {}).get("verdict"),
                      "verification": dict(outcome.verification),
                      "evidence": [{"shell": e["shell"], "exit_code": e["exit_code"], "stdout_tail": e["stdout_tail"],
                                    "stderr_tail": e["stderr_tail"]} for e in outcome.evidence]})
    return {"fleet_fix": 1, "plan": plan["id"], **meta, "hosts": hosts,
            "left_alone": [{"name": h["name"], "verdict": h["verdict"], "reason": h["reason"]}
                           for h in plan["left_alone"]]}


def markdown(doc: Mapping[str, Any]) -> str:
    fixed = sum(h["after"] == "healthy" for h in doc["hosts"])
    out = [f"# fleet fix {md_cell(doc['plan'])}", "",
           f"**{fixed} of {len(doc['hosts'])} planned hosts healthy after the fix.** Run by {md_cell(doc['who'])} "
           f"at {doc['started_at']}; plan sha256 {doc['plan_digest'][:12]}; journal {md_cell(doc['journal'])}."
           + (f" Stopped early: {md_cell(doc['interrupted'])}." if doc.get("interrupted") else ""), "",
           "| host | before | remedy (risk) | outcome | after | why |", "|---|---|---|---|---|---|"]
    for h in doc["hosts"]:
        url = (h["verification"] or {}).get("url") or {}
        why = h["reason"] + (f"; {url.get('url')}: {url.get('status')} from {url.get('layer')}" if url else "")
        out.append(f"| {md_cell(h['name'])} | {h['before']} | {h['remedy']} ({h['risk']}) | {h['outcome']} | "
                   f"{h['after'] or '-'} | {md_cell(why)} |")
    for h in doc["hosts"]:
        for e in h["evidence"]:
            out += ["", f"Evidence kept on {md_cell(h['name'])} before acting: {md_span(e['shell'])} "
                        f"(exit {e['exit_code']})", "", md_code(e["stdout_tail"] or e["stderr_tail"])]
    if doc["left_alone"]:
        out += ["", "Left alone:", ""]
        out += [f"- {md_cell(h['name'])} ({h['verdict']}): {md_cell(h['reason'])}" for h in doc["left_alone"]]
    return "\n".join(out) + "\n"
