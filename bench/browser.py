#!/usr/bin/env python3
"""Is a big HTML report usable? Times it in Debian's headless Chromium (Playwright).

    python bench/browser.py bench/work/runs/report/big.html

Prints one JSON line: seconds to load (until the page's script has run), to filter the host
table by a verdict and back, to open a host's row (its raw outputs are put in on opening), and
to sort by time, each with the layout it causes. The file is opened from disk; the page makes no request (its CSP forbids it).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return round(time.perf_counter() - start, 3)


def main() -> int:
    path = Path(sys.argv[1]).resolve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # The script fills "#shown" once it has parsed the data and counted the rows.
            load = timed(lambda: (page.goto(path.as_uri(), timeout=120_000),
                                  page.wait_for_function("document.getElementById('shown').textContent !== ''",
                                                         timeout=120_000)))
            hosts = page.locator("#hosts tr.host").count()
            # Each interaction timed inside the page, script plus the layout it causes (forced by
            # reading offsetHeight): Playwright's own click waits for scrolling and stability
            # checks that cost seconds on a page this size and are not the user's wait.
            timings = page.evaluate("""() => {
              function timed(act) { var t = performance.now(); act(); document.body.offsetHeight;
                                    return Math.round(performance.now() - t) / 1000; }
              var select = document.getElementById("verdict-filter"), out = {};
              var verdicts = Array.from(select.options).map(function (o) { return o.value; }).filter(Boolean);
              out.filter_s = timed(function () { select.value = verdicts[verdicts.length - 1];
                                                 select.dispatchEvent(new Event("change")); });
              out.filtered = document.getElementById("shown").textContent;
              out.unfilter_s = timed(function () { select.value = ""; select.dispatchEvent(new Event("change")); });
              var details = document.querySelector("tr.detail details");
              out.open_row_s = timed(function () { details.open = true; details.dispatchEvent(new Event("toggle")); });
              out.outputs_shown = details.querySelectorAll(".probes pre").length;
              out.sort_s = timed(function () { document.querySelector("#hosts th[data-key='4']").click(); });
              return out;
            }""")
        finally:
            browser.close()
    print(json.dumps({"hosts": hosts, "html_mb": round(path.stat().st_size / 1e6, 1), "load_s": load, **timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
