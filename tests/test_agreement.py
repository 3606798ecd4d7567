from __future__ import annotations

import json
from pathlib import Path

import pytest

from nospy import agreement as agr
from nospy.agreement.load import parse_yaml
from nospy.agreement.schema import Clause
from nospy.errors import InputError

MINIMAL = "nospy: 1\nid: t\ntitle: T\nvendor: V\ncustomer: C\n"


def _error(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse_yaml(text, "agreement.yaml")
    return str(info.value)


def test_template_and_example_load(examples: Path) -> None:
    template = parse_yaml(agr.template(), "template.yaml")
    assert [c.value for c in template.clauses()] == [c.value for c in Clause]
    example = agr.load(examples / "agreement.yaml")
    assert example.data is not None and example.data.countries == ["IN"]


def test_port_out_of_range_names_line_and_field() -> None:
    text = MINIMAL + "services:\n  - {name: ssh, port: 22}\n  - name: web\n    port: 70000\n"
    assert _error(text) == "agreement.yaml:9: services[1].port: must be 1-65535"


def test_unknown_key_is_an_error_with_suggestion() -> None:
    msg = _error(MINIMAL + "sevices: []\n")
    assert msg.startswith("agreement.yaml:6: sevices: unknown key 'sevices' (did you mean 'services'?)")


def test_unknown_nested_key() -> None:
    msg = _error(MINIMAL + "data:\n  countries: [IN]\n  stored_in: [IN]\n")
    assert msg.startswith("agreement.yaml:8: data.stored_in: unknown key 'stored_in'")
    assert "allowed here: countries" in msg


def test_missing_required_field() -> None:
    msg = _error("nospy: 1\nid: t\ntitle: T\nvendor: V\n")
    assert msg == "agreement.yaml:1: customer: required field is missing"


def test_several_errors_are_all_reported() -> None:
    msg = _error(MINIMAL + "data:\n  countries: [India, GB, XX]\nendpoints:\n  - {host: a.example, cidr: 10.0.0.0/8}\n")
    lines = msg.splitlines()
    assert "agreement.yaml:7: data.countries[0]: 'India' is not an ISO 3166-1 alpha-2 country code" in lines[0]
    assert "data.countries[2]: 'XX'" in lines[1]
    assert lines[2] == "agreement.yaml:9: endpoints[0]: give exactly one of host or cidr"


def test_version_must_be_1() -> None:
    assert "unsupported format version" in _error(MINIMAL.replace("nospy: 1", "nospy: 2"))


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("nospy: 1\nid: [unclosed\n", "agreement.yaml:3:"),
        ("nospy: 1\n\tid: x\n", "agreement.yaml:2:"),
        ("nospy: 1\nid: a\nid: b\n", "agreement.yaml:3:"),  # duplicate key
        ("- just\n- a list\n", "agreement.yaml:1: an agreement is a mapping"),
        ("", "agreement.yaml:1: an agreement is a mapping"),
        ("a: &x [1]\nb: *x\n", "agreement.yaml:2: YAML anchors and aliases are not allowed"),
    ],
)
def test_malformed_yaml(text: str, expect: str) -> None:
    assert _error(text).startswith(expect)


def test_cidr_and_host_are_normalised() -> None:
    a = parse_yaml(MINIMAL + "endpoints:\n  - {host: Update.ACME.example.}\n  - {cidr: 2001:db8::/32}\n")
    assert a.endpoints is not None
    assert [e.host or e.cidr for e in a.endpoints] == ["update.acme.example", "2001:db8::/32"]
    assert "not a network" in _error(MINIMAL + "endpoints:\n  - {cidr: 10.0.0.1/8}\n")


def test_key_paths_must_be_absolute() -> None:
    assert "absolute path" in _error(MINIMAL + "keys:\n  private: [etc/key]\n")
    assert "'..'" in _error(MINIMAL + "keys:\n  private: [/etc/../key]\n")


def test_canonical_json_keeps_absent_and_empty_apart() -> None:
    absent = parse_yaml(MINIMAL)
    empty = parse_yaml(MINIMAL + "services: []\n")
    assert b"services" not in agr.canonical_json(absent)
    assert b'"services":[]' in agr.canonical_json(empty)
    assert absent.clauses() == [Clause.BACKDOORS]
    assert empty.clauses() == [Clause.BACKDOORS, Clause.SERVICES]


def test_canonical_json_is_rfc8785() -> None:
    a = parse_yaml(MINIMAL + "placement:\n  max_share_percent: 35\n  zones: [access]\n")
    data = agr.canonical_json(a)
    obj = json.loads(data)
    assert data == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert b'"max_share_percent":35,' in data  # RFC 8785 number form: 35, not 35.0


def test_json_agreement_loads(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps({"nospy": 1, "id": "t", "title": "T", "vendor": "V", "customer": "C", "data": {"countries": ["IN"]}})
    )
    assert agr.load(path).data is not None


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        agr.load(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="UTF-8"):
        agr.load(tmp_path / "bin.yaml")
