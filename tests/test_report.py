"""Reports: the JSON document against its schema, Markdown against a golden file, hostile host output inert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from fleet.models import Diagnosis, Host, HostResult, ProbeOutput, Severity
from fleet.report import document
from fleet.report.diff import compare
from fleet.report.render import render_html, render_markdown, write_reports

GOLDEN = Path(__file__).parent / "fixtures/reports/golden.md"
HOSTILE = "<script>alert(1)</script></textarea> | pipe `tick` ``` {{ 7*7 }} {% raw %} \x1b[31mred"


class FakeRunbook:
    name = "502"
    description = "Why does nginx answer 502?"


def result(name: str, verdict: str, severity: Severity, summary: str, stdout: str = "ok\n",
           fix: tuple[str, ...] = ()) -> HostResult:
    probe = ProbeOutput("process", 0, stdout, "", 0.012)
    return HostResult(Host(name, f"198.18.0.{len(name)}"), Diagnosis(verdict, severity, summary, (stdout.strip(),), fix),
                      {"process": probe}, {}, 0.5)


def sample_doc() -> dict:
    results = [
        result("web-01", "healthy", Severity.OK, "backend answers 401 locally and through nginx"),
        result("web-02", "backend_not_running", Severity.CRITICAL, "no process matches python main.py on port 8000",
               fix=("sudo systemctl start bandarupay-backend",)),
        result("web-03", "backend_not_running", Severity.CRITICAL, "no process matches python main.py on port 8001",
               fix=("sudo systemctl start bandarupay-backend",)),
        result("web-04", "unreachable", Severity.CRITICAL, "connection refused on 198.18.0.6:22"),
        result("web-05", "backend_app_error", Severity.CRITICAL, HOSTILE, stdout=HOSTILE),
    ]
    return document.build([document.host_entry(r) for r in results], runbook=FakeRunbook(), params={"port": 8000}, inventory="inv.yml", limit=None,
                          options={"forks": 50}, started_at="2026-11-24T03:00:00+00:00", duration_s=1.25)


def schema() -> dict:
    return json.loads((resources.files("fleet") / "schema/report-1.json").read_text())


def test_document_matches_its_schema_and_groups_causes():
    doc = sample_doc()
    jsonschema.validate(doc, schema())
    summary = doc["summary"]
    assert summary["counts"] == {"backend_not_running": 2, "backend_app_error": 1, "healthy": 1, "unreachable": 1}
    first = summary["causes"][0]
    # The same cause on two hosts with different ports is one group, with one fix.
    assert (first["verdict"], first["hosts"], first["count"]) == ("backend_not_running", ["web-02", "web-03"], 2)
    assert summary["causes"][-1]["verdict"] == "unreachable"
    assert summary["headline"] == ("3 of 5 hosts have a problem (2 backend_not_running, 1 backend_app_error); "
                                   "1 of 5 could not be diagnosed (1 unreachable).")


def test_markdown_matches_golden_file():
    text = render_markdown(sample_doc())
    if os.environ.get("FLEET_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_hostile_output_is_inert_in_html():
    html = render_html(sample_doc())
    assert "<script>alert(1)" not in html and "</textarea>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;/textarea&gt;" in html
    assert "{{ 7*7 }}" in html  # shown as text, never evaluated
    assert html.count("<script>") == 1  # fleet's own filter/sort script only
    # Raw outputs travel as JSON in a data block that no "</script>" inside them can close.
    data = html.split('<script id="probe-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "\\u003c/textarea>" in data and "<" not in data  # no "<": nothing can end or change the element


def test_hostile_output_cannot_break_markdown():
    md = render_markdown(sample_doc())
    row = next(line for line in md.splitlines() if line.startswith("| web-05 "))
    assert row.count(" | ") == 4  # the host's pipe is escaped, the row keeps its five cells
    assert "<script>" not in md.split("## Evidence")[0]
    assert "{{ 7*7 }}" in md


def test_every_file_of_a_run_is_private(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_connection: local, cmd: 'exit 1'}\n")
    out = tmp_path / "r"
    subprocess.run([sys.executable, "-m", "fleet", "diagnose", "-i", str(inventory), "--runbook",
                    str(Path(__file__).parent / "fixtures/runbooks/command.yml"), "--format", "json,md,html,junit",
                    "--out", str(out)], capture_output=True, timeout=60)
    files = sorted(p.name.split(".", 1)[1] for p in out.iterdir())
    assert files == ["html", "json", "jsonl", "junit.xml", "md", "retry"]
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o600"}


def test_reports_are_private_files(tmp_path):
    paths = write_reports(sample_doc(), str(tmp_path / "out"), "run", ("json", "md", "html"))
    for path in paths:
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "out").st_mode & 0o077 == 0


def test_report_files_written_in_pieces_hold_exactly_the_whole_texts(tmp_path):
    """Files are written a host (or a template block) at a time; the text must be what one string gives."""
    doc = sample_doc()
    paths = write_reports(doc, str(tmp_path), "run", ("json", "md", "html"))
    texts = {p.rsplit(".", 1)[1]: Path(p).read_text() for p in paths}
    assert texts["json"] == json.dumps(doc, ensure_ascii=False) + "\n"
    assert json.loads(texts["json"]) == doc
    assert texts["md"] == render_markdown(doc) and texts["html"] == render_html(doc)
    for odd in ({}, {"hosts": []}, {"hosts": [{"a": "é"}], "after": 1}):  # hosts absent, empty, not last
        [path] = write_reports(odd, str(tmp_path), "odd", ("json",))
        assert Path(path).read_text() == json.dumps(odd, ensure_ascii=False) + "\n"


def test_report_command_rerenders_from_json(tmp_path):
    [path] = write_reports(sample_doc(), str(tmp_path), "run", ("json",))
    proc = subprocess.run([sys.executable, "-m", "fleet", "report", path, "--format", "md"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run.md").read_text() == render_markdown(sample_doc())


@pytest.mark.parametrize("content, message", [("{", "not JSON"), ('{"schema": 2}', "schema 1"),
                                              ('{"schema": 1, "hosts": [1]}', "malformed")])
def test_report_command_rejects_bad_json_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "fleet", "report", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_diff_classifies_each_host(tmp_path):
    old = sample_doc()
    new = json.loads(json.dumps(old))
    hosts = {h["name"]: h for h in new["hosts"]}
    hosts["web-02"].update(verdict="healthy", severity="ok")            # fixed
    hosts["web-01"].update(verdict="unreachable", severity="critical")  # newly unreachable
    hosts["web-05"].update(verdict="nginx_not_running")                 # another problem
    kinds = {c.name: c.kind for c in compare(old, new).changes}
    assert kinds == {"web-01": "newly_unreachable", "web-02": "fixed", "web-03": "still_broken",
                     "web-04": "still_broken", "web-05": "changed_problem"}
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    old_path.write_text(json.dumps(old))
    new_path.write_text(json.dumps(new))
    proc = subprocess.run([sys.executable, "-m", "fleet", "diff", str(old_path), str(new_path), "--md"],
                          capture_output=True, text=True)
    assert proc.returncode == 1  # a host got worse
    assert "| web-02 | fixed | backend\\_not\\_running | healthy |" not in proc.stdout
    assert "| web-02 | fixed | backend_not_running | healthy |" in proc.stdout


def test_equal_facts_share_one_json_value_and_only_equal_ones():
    """Hosts of one config have the same nginx facts: the report holds them once. 1, 1.0 and True differ."""
    from dataclasses import replace

    base = result("web-01", "healthy", Severity.OK, "ok")
    facts = [{"nginx": {"upstreams": ["127.0.0.1:8000"], "workers": n}} for n in (1, 1, 1.0, True, 2)]
    entries = [document.entry(replace(base, facts=f)) for f in facts]
    nginx = [e.facts["nginx"] for e in entries]
    assert nginx[0] is nginx[1]
    assert all(nginx[0] is not other for other in nginx[2:])
    assert [document.dumps(n) for n in nginx] == [document.dumps(document.jsonable(f["nginx"])) for f in facts]
