"""libyaml reads fleet's YAML files the way PyYAML's own parser does, nodes, values and lines alike."""

from pathlib import Path

import pytest
import yaml

from fleet import yamlfile
from fleet.inventory import yaml_source

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("fleet/runbooks/*.yml"), *ROOT.glob("inventories/*.yml"),
                *ROOT.glob("tests/fixtures/**/*.yml"), *ROOT.glob("tests/fixtures/**/*.yaml")])

pytestmark = pytest.mark.skipif(yamlfile._FastLoader is None, reason="PyYAML built without libyaml")


def _lines(value):
    """Values with the line of every mapping, key and list, as LineDict/LineList remember them."""
    if isinstance(value, yamlfile.LineDict):
        return ("map", value.line, sorted(((repr(k), value.line_of(k), _lines(v)) for k, v in value.items())))
    if isinstance(value, yamlfile.LineList):
        return ("list", value.line, [_lines(v) for v in value])
    return value


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_libyaml_and_pyyaml_agree(path):
    text = path.read_text()
    assert yamlfile.libyaml_can_take(text)
    def values(loader):
        try:
            return _lines(yaml.load(text, Loader=loader))  # noqa: S506 - SafeLoader subclasses
        except yaml.YAMLError as exc:  # Ansible's tags (!vault) are the inventory loader's business
            return type(exc).__name__, exc.problem, exc.problem_mark.line

    assert values(yamlfile._FastLoader) == values(yamlfile._Loader)

    def nodes(loader):
        node = loader(text).get_single_node()
        return [(type(n).__name__, n.tag, n.start_mark.line, n.start_mark.column) for n in _walk(node)]

    assert nodes(yaml_source._FastLoader) == nodes(yaml_source._Loader)


def _walk(node):
    yield node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(key)
            yield from _walk(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)


@pytest.mark.parametrize("text, expected", [
    ("a: 1\n", True),
    ("[" * 3000, False),
    ("- " * 3000, False),
    ("? " * 3000, False),
    ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 2500)), False),  # nesting by indentation
])
def test_documents_that_could_nest_too_deep_go_to_pyyaml(text, expected):
    assert yamlfile.libyaml_can_take(text) is expected


def test_an_error_is_worded_by_pyyaml(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("a: 1\nb: [unclosed\nc: 2\n")
    with pytest.raises(Exception) as fast:
        yamlfile.load_yaml(path)
    with pytest.raises(yaml.YAMLError) as slow:
        yaml.load(path.read_text(), Loader=yamlfile._Loader)  # noqa: S506
    assert slow.value.problem in str(fast.value)
    assert f":{slow.value.problem_mark.line + 1}" in str(fast.value)
