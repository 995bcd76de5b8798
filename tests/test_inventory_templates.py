"""Templates in inventory variables: Ansible's scope and types, a sandbox, failures kept to the host."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from fleet.inventory import load_inventory
from fleet.inventory.templating import Renderer, TemplateFailed
from fleet.models import TransportStatus, Unusable


def load(tmp_path: Path, text: str):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return {host.name: host for host in load_inventory(path).hosts}


def render(raw: dict, key: str):
    return Renderer({"h": raw}, {"h": ("web",)}, {"all": ("h",), "web": ("h",)}, {}).value("h", key)


@pytest.mark.parametrize("template, expected", [
    ("{{ 8000 + 1 }}", 8001),            # one expression keeps its type
    ("{{ '22' }}", "22"),                # text stays text (no literal_eval, as in ansible-core 2.19)
    ("{{ n }}{{ n }}", "77"),            # anything else is text
    (" {{ n }}", " 7"),
    ("{{ [n, 1] }}", [7, 1]),
    ("{{ n | default(0) + 1 }}", 8),
    ("{{ undefined_thing | default('fallback') }}", "fallback"),
    ("{% if n > 5 %}big{% endif %}", "big"),
    ("{{ inventory_hostname }}/{{ group_names | join(',') }}/{{ groups['web'] | length }}", "h/web/1"),
])
def test_values_render_like_ansible(template, expected):
    assert render({"n": 7, "t": template}, "t") == expected


@pytest.mark.parametrize("template, reason", [
    ("{{ nope }}", "'nope' is undefined"),
    ("{{ t }}", "refers to itself"),
    ("{{ lookup('env', 'HOME') }}", "lookup() runs only inside Ansible"),
    ("{{ 'a' | regex_replace('a', 'b') }}", "No filter named 'regex_replace'"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),                    # the sandbox refuses attribute escapes
    ("{{ 'x' * 10000000 }}", "too large"),                       # and values built to exhaust memory
    ("{{ 10 ** 100000 }}", "too large"),
    ("{{ 'x' | center(1000000000) }}", "too large"),
    ("{{ '%1000000000d' % 1 }}", "too large"),
    ("{{ '{:>1000000000}'.format(1) }}", "too large"),
    ("{{ broken", "syntax error"),
])
def test_failures_name_their_cause(template, reason):
    with pytest.raises(TemplateFailed, match=re.escape(reason)):
        render({"t": template}, "t")


def test_a_failed_template_fails_only_the_host_that_needs_it(tmp_path):
    hosts = load(tmp_path, """
        all:
          vars:
            domain: example.com
          hosts:
            good:
              ansible_host: "{{ inventory_hostname }}.{{ domain }}"
              notes: "{{ lookup('file', '/etc/passwd') }}"
            bad_address:
              ansible_host: "{{ missing_domain }}"
            bad_port:
              ansible_port: "{{ domain }}"
    """)
    good = hosts["good"]
    # A runbook parameter that failed stays unusable in the vars; only a runbook needing it fails the host.
    assert (good.address, good.problem) == ("good.example.com", None)
    assert isinstance(good.vars["notes"], Unusable) and "lookup() runs only inside Ansible" in good.vars["notes"].reason
    assert good.templates == {"notes": "{{ lookup('file', '/etc/passwd') }}"}
    for name, reason in (("bad_address", "ansible_host of host 'bad_address': template '{{ missing_domain }}' failed: "
                                         "'missing_domain' is undefined"),
                         ("bad_port", "ansible_port of host 'bad_port' rendered to 'example.com', which is not a "
                                      "port number from 1 to 65535")):
        assert hosts[name].problem.status is TransportStatus.INVENTORY_ERROR
        assert hosts[name].problem.reason == reason


def test_unsafe_values_are_never_rendered(tmp_path):
    hosts = load(tmp_path, """
        all:
          hosts:
            h:
              raw: !unsafe "{{ lookup('pipe', 'id') }}"
              listed: !unsafe ["{{ a }}", 1]
    """)
    assert hosts["h"].vars == {"raw": "{{ lookup('pipe', 'id') }}", "listed": ["{{ a }}", 1]}
    assert hosts["h"].templates == {}
