"""The HTML report in a real browser (Debian's headless Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fleet.report.render import write_reports
from fleet.models import Severity
from fleet.report import document
from tests.test_report import FakeRunbook, result, sample_doc

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
SCREENSHOT = Path(os.environ.get("FLEET_SCREENSHOT_DIR", "reports")) / "report-screenshot.png"


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def test_report_renders_filters_and_makes_no_request(tmp_path):
    [path] = write_reports(sample_doc(), str(tmp_path), "run", ("html",))
    url = Path(path).as_uri()
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            assert page.text_content("#headline").startswith("3 of 5 hosts have a problem")
            rows = page.locator("#hosts tr.host")
            assert rows.count() == 5
            assert page.text_content("#shown") == "5 of 5 hosts shown"

            page.select_option("#verdict-filter", "backend_not_running")
            visible = [r.inner_text().split("\t")[0] for r in rows.all() if r.is_visible()]
            assert visible == ["web-02", "web-03"]

            page.select_option("#verdict-filter", "")
            page.fill("#text-filter", "web-04")
            assert [r.inner_text().split("\t")[0] for r in rows.all() if r.is_visible()] == ["web-04"]
            page.fill("#text-filter", "")

            # The hostile host's output shows as text; no script from it ran.
            # Rows are in severity order (issue 16), so the hostile host's detail row is found by its anchor.
            hostile = page.locator("#host-web-05 + tr.detail")
            hostile.locator("details summary").click()
            raw = hostile.locator(".probes pre")
            raw.first.wait_for(state="attached", timeout=5000)  # the toggle event fires after the click
            assert raw.count() == 1  # the probe's output, put in as text when the row opened
            assert raw.first.inner_text().startswith("<script>alert(1)</script></textarea>")
            assert "<script>alert(1)</script>" in hostile.inner_text()

            page.click("#hosts th[data-key='4']")  # sort by time: must not lose rows
            assert rows.count() == 5
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [url]  # the page itself, and nothing else


LONG_FIX = ("no systemd unit or container named bandarupay-backend: start it by hand from its directory, as its "
            "usual user: cd /srv/app && nohup ./venv/bin/python main.py >>/var/log/bandarupay/app.log 2>&1 &")


def triage_doc() -> dict:
    """The sample with a warning, an unknown and a long command: every severity, and wrapping to do."""
    doc = sample_doc()
    for host in doc["hosts"]:
        if host["name"] == "web-02":
            host["fix"] = [LONG_FIX, "sudo systemctl status bandarupay-backend"]
    extra = [("web-06", "memory_pressure", Severity.WARNING), ("web-07", "inconclusive", Severity.UNKNOWN)]
    entries = doc["hosts"] + [document.host_entry(result(n, v, sev, f"{v} on {n}")) for n, v, sev in extra]
    return document.build(entries, runbook=FakeRunbook(), params={}, inventory="inv.yml", limit=None, options={},
                          started_at="2026-11-24T03:00:00+00:00", duration_s=1.0)


def test_triage_colours_copy_sort_filter_and_anchors(tmp_path):
    [path] = write_reports(triage_doc(), str(tmp_path), "run", ("html",))
    url = Path(path).as_uri()
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 700, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            rows = page.locator("#hosts tr.host")

            # Severities in distinct colours, on the badges and on the rows' edges.
            colours = {sev: page.eval_on_selector(f"tr.host[data-severity={sev}] .v",
                                                  "e => getComputedStyle(e).backgroundColor")
                       for sev in ("critical", "warning", "unknown", "ok")}
            assert len(set(colours.values())) == 4, colours
            edges = {sev: page.eval_on_selector(f"tr.host[data-severity={sev}] td",
                                                "e => getComputedStyle(e).borderLeftColor")
                     for sev in ("critical", "warning", "unknown", "ok")}
            assert len(set(edges.values())) == 4, edges

            # Worst first, not alphabetical: critical hosts, then the warning, the unknown, the healthy one.
            def order():
                return [r.get_attribute("id") for r in rows.all() if r.is_visible()]
            assert [page.get_attribute(f"#{i}", "data-severity") for i in order()] == \
                ["critical"] * 4 + ["warning", "unknown", "ok"]
            causes = page.locator(".cause[data-severity]")
            assert [causes.nth(i).get_attribute("data-severity") for i in range(causes.count())] == \
                sorted([causes.nth(i).get_attribute("data-severity") for i in range(causes.count())],
                       key=["critical", "warning", "unknown", "ok"].index)
            page.click("#hosts th[data-key='0']")  # by name...
            assert order()[0] == "host-web-01"
            page.click("#hosts th[data-key='2']")  # ...then by verdict: by severity again
            assert page.get_attribute(f"#{order()[0]}", "data-severity") == "critical"
            assert page.get_attribute(f"#{order()[-1]}", "data-severity") == "ok"

            # Problems only.
            page.check("#problems-only")
            assert "host-web-01" not in order() and len(order()) == 6
            assert page.text_content("#shown") == "6 of 7 hosts shown"
            page.uncheck("#problems-only")

            # Each command has a copy button; in a 700px window the long one wraps, never inside a word.
            cause = page.locator(".cause", has_text="backend_not_running")
            # web-01 and web-02 share the cause but not the fix: each shows its own (1 + 2 lines)
            assert cause.locator(".muted", has_text="fix for").count() == 2
            assert cause.locator(".cmd").count() == 3 and cause.locator(".cmd button.copy").count() == 3
            commands = cause.locator(".cmd", has_text="no systemd unit")
            code = commands.first.locator("code")
            lines, split_words = code.evaluate("""c => {
                const text = c.firstChild, words = [], tops = new Set();
                let at = 0;
                for (const w of text.data.split(' ')) {
                    const r = document.createRange(); r.setStart(text, at); r.setEnd(text, at + w.length);
                    const rects = [...r.getClientRects()].filter(x => x.width > 0);
                    rects.forEach(x => tops.add(Math.round(x.top)));
                    if (new Set(rects.map(x => Math.round(x.top))).size > 1) words.push(w);
                    at += w.length + 1;
                }
                return [tops.size, words];
            }""")
            assert lines > 1 and split_words == []
            commands.first.locator("button.copy").click()
            cause.locator("button.copy", has_text="copied").wait_for(timeout=5000)
            assert page.evaluate("navigator.clipboard.readText()") == LONG_FIX

            # A link per host: opening it shows that host with its details open.
            page.goto(url + "#host-web-03")
            page.wait_for_selector("#host-web-03.targeted", timeout=5000)
            assert page.locator("#host-web-03 + tr.detail details").get_attribute("open") is not None
            page.locator(".cause a[href='#host-web-02']").first.click()
            page.wait_for_selector("#host-web-02.targeted", timeout=5000)
        finally:
            browser.close()
    assert errors == []
