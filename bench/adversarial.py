#!/usr/bin/env python3
"""Worst case per parser on adversarial host output, through fleet's own interpretation path.

    python bench/adversarial.py                  # every parser x every input, table on stdout
    python bench/adversarial.py --json out.json  # also the raw figures

Each input is as big as a probe's output can be (1 MiB, the host-side cap), built to make a
backtracking regex or a naive loop go quadratic or worse: trailing blanks after
`Authorization:`, a 300 KB config line without `;`, 30,000 nested `location` blocks, a long
word where `key=value` pairs are read, and more. It is put under every section header the
parser reads, and `fleet.interpret.interpret` (split, line caps, redaction, parser, rules)
runs it with a generous budget, so a figure is the real cost, not the budget's cut-off.
No host, network or root needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.interpret import interpret  # noqa: E402
from fleet.models import Host, ProbeOutput  # noqa: E402
from fleet.runbook import Probe, Runbook  # noqa: E402
from fleet.script import DEFAULT_PROBE_CAP  # noqa: E402

# Section headers each parser reads (from their docstrings), so the payload reaches every handler.
SECTIONS: dict[str, tuple[str, ...]] = {
    "processes": ("ps source=ps", "cwd"),
    "service_state": ("systemd", "docker exit=0"),
    "listeners": ("listen source=netstat", "listen source=ss", "listen source=proc-tcp"),
    "http_checks": ("http client=curl",),
    "log_signatures": ("logs source=file",),
    "nginx_state": ("nginx-T", "nginx-ps", "nginx-t exit=1 priv=root"),
    "text": ("",),
    "filesystems": ("fstypes", "df source=gnu exit=0", "df-i source=gnu exit=0", "statfs-i",
                    "du kind=blocks timeout=5"),
    "kernel_log": ("clock now=1700000000 uptime=100 tz=+0000", "kernel source=dmesg priv=root"),
    "memory": ("meminfo", "loadavg cpus=2", "psi-memory"),
}


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


# name -> builder(size in characters) of one section's payload
INPUTS: dict[str, Callable[[int], str]] = {
    "authorization + blanks": lambda n: "Authorization:" + " " * (n - 15) + "\n",
    "authorization lines + blanks": lambda n: _fill("Authorization:" + " " * 8000 + "\n", n),
    "300 KB config line without ;": lambda n: ("http { server { listen 80;\nlocation / {\n"
                                               + "a" * min(n - 50, 300_000) + "\n"),
    "30,000 nested location blocks": lambda n: ("http { server { listen 80;\n" + "location /a {\n" * 30_000
                                                + "proxy_pass http://127.0.0.1:1;\n" + "}\n" * 30_000 + "}}\n"),
    "long word in key=value": lambda n: _fill("target=x " + "a" * 8000 + "\n", n),
    "key= runs": lambda n: _fill("a=" * 4000 + "\n", n),
    "one 1 MiB line of one word": lambda n: "a" * n + "\n",
    "lines of one 8,000-character word": lambda n: _fill("a" * 8000 + "\n", n),
    "lines of 8,000 blanks": lambda n: _fill(" " * 8000 + "\n", n),
    "config lines of 8,000 characters without ;": lambda n: _fill("proxy_pass " + "a " * 3995 + "\n", n),
    "== header lookalikes": lambda n: _fill("== a " + "k=v " * 2000 + "\n", n),
    "nginx regex location, catastrophic": lambda n: ("http { server { listen 80;\nlocation ~ ^/(a+)+$ { proxy_pass http://x; }\n"
                                                     "location / { proxy_pass http://127.0.0.1:1; }}}\n"),
    "unclosed quotes": lambda n: _fill('"a ', n),
    "braces only": lambda n: _fill("{", n),
    "URL credentials lookalike": lambda n: _fill("://a:" + "b" * 100 + " ", n),
    "ps with secret flags": lambda n: _fill("123 mysql -h db " + "-x " * 500 + "-pSECRET\n", n),
}


def payload(parser: str, build: Callable[[int], str]) -> str:
    """The probe's whole stdout: the input under each section the parser reads, 1 MiB at most."""
    heads = SECTIONS[parser]
    each = DEFAULT_PROBE_CAP // len(heads) - 200
    body = "".join((f"== {h} ==\n" if h else "") + build(each) for h in heads)
    # An input bigger than its share (the nested blocks) keeps the first section whole.
    return body[:DEFAULT_PROBE_CAP]


def measure(parser: str, text: str, budget_s: float) -> dict:
    book = Runbook("adversarial", "", "<bench>", (), (Probe("p", parser, "true"),), ())
    probes = {"p": ProbeOutput("p", 0, text, "", 0.1)}
    params = {"login_path": "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", "proxy_url": "http://localhost"}
    wall = time.monotonic()
    result = interpret(book, Host("h", ""), probes, params, budget_s=budget_s)
    return {"wall_s": time.monotonic() - wall, "cpu_s": dict(result.cpu_s), "verdict": result.diagnosis.verdict,
            "over_budget": "budget" in result.diagnosis.summary, "chars": len(text)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=120.0, help="seconds per host (default: 120, far above any figure)")
    p.add_argument("--parsers", default=",".join(SECTIONS), help="comma list")
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for parser in a.parsers.split(","):
        results[parser] = {name: measure(parser, payload(parser, build), a.budget) for name, build in INPUTS.items()}
    print("| parser | worst input (by CPU) | CPU s, all stages | of which redact / parse | wall s |")
    print("|---|---|---:|---:|---:|")
    for parser, by_input in results.items():
        name, worst = max(by_input.items(), key=lambda kv: sum(kv[1]["cpu_s"].values()))
        flag = " (stopped by the budget)" if worst["over_budget"] else ""
        print(f"| {parser} | {name}{flag} | {sum(worst['cpu_s'].values()):.3f} | "
              f"{worst['cpu_s'].get('redact', 0):.3f} / {worst['cpu_s'].get('parse', 0):.3f} | {worst['wall_s']:.3f} |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
