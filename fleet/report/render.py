"""Renderers: the report document as JSON, Markdown and HTML text. They only render."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Iterable, Iterator, Mapping

import xml.etree.ElementTree as ET

import jinja2
from markupsafe import Markup

from fleet.report.document import dumps, hosts_of
from fleet.report.diff import Diff
from fleet.report.files import report_dir, write_private
from fleet.sanitize import show_invisible, strip_control

FORMATS = ("json", "md", "html", "junit")
EXTENSIONS = {"json": "json", "md": "md", "html": "html", "junit": "junit.xml"}
_TEMPLATES = jinja2.PackageLoader("fleet.report", "templates")
_HTML_ENV = jinja2.Environment(loader=_TEMPLATES, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined,
                               finalize=lambda v: strip_control(v) if type(v) is str else v)
_MD_ENV = jinja2.Environment(loader=_TEMPLATES, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
# Characters that would start markup; `_` only at a word's edge (GFM ignores it inside words).
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>#|~]|(?<!\w)_|_(?!\w))")
# Markdown raw blocks are fenced; a fence longer than any backtick run inside can't be closed early.
_BACKTICKS = re.compile(r"`+")
MD_RAW_LIMIT = 4000
# Problem hosts whose raw output the Markdown shows; a channel post is no place for thousands.
MD_MAX_DETAILED = 50
# Characters of each probe's output carried in the HTML; everything is in the JSON.
HTML_RAW_LIMIT = 16000
# Severities worst first: the order of the HTML's hosts and causes.
SEVERITY_RANK = {"critical": 0, "warning": 1, "unknown": 2, "ok": 3}
_ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# What a chat or a Markdown viewer would act on: mentions (@channel, @here, @user) and bare URLs
# (autolinks). Put in code spans, they show as written and do nothing.
_MD_ACTIVE = re.compile(r"@[\w.-]+|\b(?:https?|ftp)://[^\s|`]+|\bwww\.[^\s|`]+", re.I)


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell or line: no markup, no pipes, no line breaks, no
    mention or autolink that could fire."""
    text = " ".join(strip_control(value).split())
    parts, start = [], 0
    for match in _MD_ACTIVE.finditer(text):
        parts += [_MD_SPECIAL.sub(r"\\\1", text[start:match.start()]), md_span(match.group())]
        start = match.end()
    parts.append(_MD_SPECIAL.sub(r"\\\1", text[start:]))
    return "".join(parts)


def md_span(value: Any) -> str:
    """Inline code that host output cannot close early: the fence outgrows any backtick run inside."""
    text = " ".join(strip_control(value).split())
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_code(value: Any, limit: int = MD_RAW_LIMIT) -> str:
    """A fenced code block that host output cannot break out of, trimmed to `limit` characters."""
    text = strip_control(value)
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit} more characters in the JSON/HTML report)"
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


_MD_ENV.filters.update(cell=md_cell, code=md_code, span=md_span)


def probes_json(hosts: list[Mapping[str, Any]]) -> Iterator[Markup]:
    """Every host's probe outputs as JSON safe inside a <script> element, a host at a time (the
    template writes the pieces as they come: a 500-host report's outputs are 6 MB of JSON, which
    as one string, escaped and copied, were most of the memory a run needs at its end).

    Only `<` is escaped: in a script element's text nothing but `</script` or `<!--` ends or
    changes the element, and both start with `<`; there are no entities to decode. (Jinja2's
    htmlsafe_json_dumps also escapes `>`, `&` and `'`, four passes over what is 55 MB of JSON
    at 5,000 hosts.)
    """
    def clipped(probe: Mapping[str, Any]) -> Mapping[str, Any]:
        # The page shows these as text: invisible formatting characters are written out there too.
        return {**probe, "stdout": show_invisible(clip(probe["stdout"])),
                "stderr": show_invisible(clip(probe["stderr"]))}

    texts = (json.dumps({name: clipped(probe) for name, probe in host["probes"].items()}).replace("<", "\\u003c")
             for host in hosts)
    return (Markup(piece) for piece in json_array(texts))


def json_array(items: Iterable[str]) -> Iterator[str]:
    """A JSON array written a value at a time, as `json.dumps` separates them: `[a, b]`."""
    yield "["
    for n, text in enumerate(items):
        yield (", " if n else "") + text
    yield "]"


def clip(value: Any, limit: int = HTML_RAW_LIMIT) -> str:
    """Text cut to `limit` characters, saying how much more the JSON holds.

    Control characters need no stripping here: JSON escapes them and the page shows them as text.
    """
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}\n... ({len(text) - limit} more characters in the JSON report)"


_HTML_ENV.filters["probes_json"] = probes_json


def render_json(doc: Mapping[str, Any]) -> str:
    """Compact JSON: Python's encoder only runs in C without indentation (`jq .` pretty-prints it)."""
    return "".join(json_chunks(doc))


def json_chunks(doc: Mapping[str, Any]) -> Iterator[str]:
    """The document's JSON a host at a time, the same text as `dumps(doc)`: a 500-host report is
    9 MB of JSON, which need never be one string. (Python's encoder streams only in pure Python,
    ten times slower, so each host is encoded whole, in C.)"""
    if not doc or list(doc)[-1] != "hosts":
        yield dumps(doc) + "\n"
        return
    head = dumps({k: v for k, v in doc.items() if k != "hosts"})
    yield head[:-1] + (", " if len(doc) > 1 else "") + '"hosts": '
    yield from json_array(dumps(host) for host in doc["hosts"])
    yield "}\n"


def render_markdown(doc: Mapping[str, Any]) -> str:
    return "".join(markdown_chunks(doc))


def markdown_chunks(doc: Mapping[str, Any]) -> Iterator[str]:
    return _MD_ENV.get_template("report.md.j2").generate(doc=doc, max_detailed=MD_MAX_DETAILED)


def render_diff_markdown(diff: Diff, old_name: str, new_name: str) -> str:
    return _MD_ENV.get_template("diff.md.j2").render(diff=diff, old=old_name, new=new_name)


def render_html(doc: Mapping[str, Any]) -> str:
    return "".join(html_chunks(doc))


def html_chunks(doc: Mapping[str, Any]) -> Iterator[str]:
    # Tallied here in one pass: Jinja2's selectattr over thousands of hosts per verdict was slow.
    by_severity: dict[str, int] = {}
    verdict_severity: dict[str, str] = {}
    for host in doc["hosts"]:
        by_severity[host["severity"]] = by_severity.get(host["severity"], 0) + 1
        verdict_severity.setdefault(host["verdict"], host["severity"])
    # Worst first: hosts and causes by severity, then in the document's order.
    ordered = sorted(enumerate(doc["hosts"]), key=lambda ih: (SEVERITY_RANK.get(ih[1]["severity"], 9), ih[0]))
    causes = sorted(doc["summary"]["causes"], key=lambda c: SEVERITY_RANK.get(c["severity"], 9))
    return _HTML_ENV.get_template("report.html.j2").generate(doc=doc, by_severity=by_severity,
                                                            verdict_severity=verdict_severity, ordered=ordered,
                                                            causes=causes, ranks=SEVERITY_RANK,
                                                            anchors=host_anchors(doc["hosts"]))


def host_anchors(hosts: list[Mapping[str, Any]]) -> dict[str, str]:
    """An id per host for links (`report.html#host-web01`): its name where that is a clean id, unique."""
    anchors: dict[str, str] = {}
    taken: set[str] = set()
    for n, host in enumerate(hosts):
        anchor = "host-" + _ANCHOR_UNSAFE.sub("-", str(host["name"]))
        if anchor in taken:
            anchor = f"{anchor}-{n}"
        taken.add(anchor)
        anchors[host["name"]] = anchor
    return anchors


def render_junit(doc: Mapping[str, Any]) -> str:
    """JUnit XML, one testcase per host, so a CI pipeline can gate on fleet health."""
    hosts = hosts_of(doc)
    failed = [h for h in hosts if h.problem and h.reached]
    errored = [h for h in hosts if not h.reached]
    runbook = _xml_text(doc["runbook"])
    suite = ET.Element("testsuite", name=f"fleet {runbook}", tests=str(len(hosts)),
                       failures=str(len(failed)), errors=str(len(errored)), time=f"{doc['duration_s']:.3f}",
                       timestamp=_xml_text(doc["started_at"]))
    for host in hosts:
        case = ET.SubElement(suite, "testcase", classname=f"fleet.{runbook}", name=_xml_text(host.name),
                             time=f"{host.duration_s:.3f}")
        if not host.problem:
            continue
        kind = "failure" if host.reached else "error"
        problem = ET.SubElement(case, kind, type=_xml_text(host.verdict), message=_xml_text(host.summary))
        problem.text = _xml_text("\n".join([*host.evidence, *(f"fix: {f}" for f in host.fix)]))
    # Hosts an interrupted run never reached: skipped, so CI shows them rather than losing them.
    missing = doc.get("not_diagnosed", ())
    for name in missing:
        case = ET.SubElement(suite, "testcase", classname=f"fleet.{doc['runbook']}", name=_xml_text(name), time="0")
        ET.SubElement(case, "skipped", message="never diagnosed: the run was interrupted")
    suite.set("tests", str(len(hosts) + len(missing)))
    suite.set("skipped", str(len(missing)))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _xml_text(value: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped.
    return _XML_INVALID.sub("", strip_control(value))


RENDERERS: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "json": render_json, "md": render_markdown, "html": render_html, "junit": render_junit,
}
# The same texts in pieces, for files: no report is ever held whole in memory.
_CHUNKS: Mapping[str, Callable[[Mapping[str, Any]], Iterable[str]]] = {
    "json": json_chunks, "md": markdown_chunks, "html": html_chunks, "junit": lambda doc: (render_junit(doc),),
}


def write_reports(doc: Mapping[str, Any], out_dir: str, stem: str, formats: tuple[str, ...]) -> list[str]:
    """Write each format as `<out_dir>/<stem>.<fmt>`, readable by the owner only: reports hold host output."""
    report_dir(out_dir)
    paths = []
    for fmt in formats:
        path = os.path.join(out_dir, f"{stem}.{EXTENSIONS[fmt]}")
        write_private(path, _CHUNKS[fmt](doc))
        paths.append(path)
    return paths
