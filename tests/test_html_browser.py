"""The HTML report in a real browser (Debian's headless Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fleet.report.render import write_reports
from tests.test_report import sample_doc

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
SCREENSHOT = Path(os.environ.get("FLEET_SCREENSHOT_DIR", "reports")) / "report-screenshot.png"


def test_report_renders_filters_and_makes_no_request(tmp_path):
    [path] = write_reports(sample_doc(), str(tmp_path), "run", ("html",))
    url = Path(path).as_uri()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
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
            page.locator("tr.detail details").nth(4).locator("summary").click()
            raw = page.locator("tr.detail").nth(4).locator(".probes pre")
            raw.first.wait_for(state="attached", timeout=5000)  # the toggle event fires after the click
            assert raw.count() == 1  # the probe's output, put in as text when the row opened
            assert raw.first.inner_text().startswith("<script>alert(1)</script></textarea>")
            assert "<script>alert(1)</script>" in page.locator("tr.detail").nth(4).inner_text()

            page.click("#hosts th[data-key='4']")  # sort by time: must not lose rows
            assert rows.count() == 5
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [url]  # the page itself, and nothing else
