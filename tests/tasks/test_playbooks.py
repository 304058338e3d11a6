"""Playbook files: every field's rule with its valid twin, loading, canonical JSON, openers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from zerolane.errors import InvalidInput
from zerolane.tasks.playbooks import (
    FIELDS,
    MAX_FILE_BYTES,
    OPTIONAL,
    Openers,
    Playbook,
    format_duration,
    load_playbook_file,
    opener_matches,
    parse_duration,
    parse_playbook,
    parse_spiffe_pattern,
    playbook_as_dict,
    playbook_from_json,
    playbook_to_json,
)
from zerolane.types import Sensitivity

SOURCE = "pb.yaml"


def doc(**changes: Any) -> dict[str, Any]:
    """A valid playbook document; ``changes`` replace keys, ``None`` removes one."""
    base: dict[str, Any] = {
        "name": "quarterly-report",
        "description": "Compile the quarterly report.",
        "actions": ["read", "http:GET"],
        "resources": ["finance/reports/*", "finance/ledger/**"],
        "destinations": ["finance-api.internal"],
        "data_ceiling": "confidential",
        "max_ttl": "15m",
        "max_calls": 50,
        "openers": {"spiffe_ids": ["spiffe://example.org/agents/*"]},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def refused(document: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_playbook(document, SOURCE)
    assert caught.value.message.startswith(f"{SOURCE}: ")
    return caught.value


def test_a_valid_document_parses_into_a_normalized_playbook() -> None:
    pb = parse_playbook(doc(actions=["read", "http:GET", "read"]), SOURCE)
    assert pb == Playbook(
        name="quarterly-report",
        description="Compile the quarterly report.",
        actions=("http:GET", "read"),  # sorted, de-duplicated
        resources=("finance/ledger/**", "finance/reports/*"),
        destinations=("finance-api.internal",),
        data_ceiling=Sensitivity.CONFIDENTIAL,
        max_ttl=900,
        max_calls=50,
        openers=Openers(spiffe_ids=("spiffe://example.org/agents/*",)),
        delegable=False,
        max_depth=0,
    )


# (field, a valid value, an invalid value, the invalid one's reason, dotted field)
FIELD_CASES = [
    ("name", "a", "", "playbook.field", "name"),
    ("name", "ci-deploy.v2_x", "CI-deploy", "playbook.field", "name"),
    ("name", "a" * 64, "a" * 65, "playbook.field", "name"),
    ("name", "0day", "-x", "playbook.field", "name"),
    ("name", "x", "x\n", "playbook.field", "name"),
    ("name", "x", 7, "playbook.field", "name"),
    ("description", "d" * 1000, "d" * 1001, "playbook.field", "description"),
    ("description", "x", "   ", "playbook.field", "description"),
    ("description", "x", ["x"], "playbook.field", "description"),
    ("actions", ["mcp:github/create_issue"], ["mcp github"], "playbook.field", "actions[0]"),
    ("actions", ["read", "x.y-z_1"], ["read", "*"], "playbook.field", "actions[1]"),
    ("actions", ["a" * 256], ["a" * 257], "playbook.field", "actions[0]"),
    ("actions", ["read"], [], "playbook.field", "actions"),
    ("actions", ["read"], "read", "playbook.field", "actions"),
    ("actions", ["read"], [1], "playbook.field", "actions[0]"),
    ("actions", ["a"] * 256, [f"a{i}" for i in range(257)], "playbook.field", "actions"),
    ("resources", ["a/**"], ["a/**/b"], "playbook.pattern", "resources[0]"),
    ("resources", ["a/b*"], ["a/*b"], "playbook.pattern", "resources[0]"),
    ("resources", ["a/b"], ["a//b"], "playbook.pattern", "resources[0]"),
    ("resources", ["a"], [""], "playbook.pattern", "resources[0]"),
    ("resources", ["a"], [], "playbook.field", "resources"),
    (
        "destinations",
        ["api.github.com:443"],
        ["api.github.com/x"],
        "playbook.field",
        "destinations[0]",
    ),
    ("destinations", ["wiki"], ["*.internal"], "playbook.field", "destinations[0]"),
    ("destinations", ["wiki"], [], "playbook.field", "destinations"),
    ("data_ceiling", "restricted", "secret", "playbook.field", "data_ceiling"),
    ("data_ceiling", "public", "Public", "playbook.field", "data_ceiling"),
    ("data_ceiling", "internal", 1, "playbook.field", "data_ceiling"),
    ("max_ttl", 1, 0, "playbook.ttl", "max_ttl"),
    ("max_ttl", "7d", "8d", "playbook.ttl", "max_ttl"),
    ("max_ttl", 604800, 604801, "playbook.ttl", "max_ttl"),
    ("max_ttl", "90s", "90 s", "playbook.ttl", "max_ttl"),
    ("max_ttl", "2h", "2w", "playbook.ttl", "max_ttl"),
    ("max_ttl", "90", "-90", "playbook.ttl", "max_ttl"),
    ("max_ttl", 60, True, "playbook.ttl", "max_ttl"),
    ("max_ttl", 60, 1.5, "playbook.ttl", "max_ttl"),
    ("max_calls", 1, 0, "playbook.field", "max_calls"),
    ("max_calls", 1_000_000, 1_000_001, "playbook.field", "max_calls"),
    ("max_calls", 5, "5", "playbook.field", "max_calls"),
    ("max_calls", 1, True, "playbook.field", "max_calls"),
    ("delegable", False, "no", "playbook.field", "delegable"),
    ("max_depth", 0, -1, "playbook.field", "max_depth"),
    ("max_depth", 0, 1, "playbook.delegation", "max_depth"),
    ("openers", {"spiffe_ids": ["spiffe://e.org/a"]}, ["x"], "playbook.document", "openers"),
    ("openers", {"spiffe_ids": ["spiffe://e.org/a"]}, {}, "playbook.missing", "openers.spiffe_ids"),
]


@pytest.mark.parametrize(("field", "good", "bad", "reason", "where"), FIELD_CASES)
def test_each_field_is_checked_and_its_valid_twin_accepted(
    field: str, good: object, bad: object, reason: str, where: str
) -> None:
    parse_playbook(doc(**{field: good}), SOURCE)
    err = refused(doc(**{field: bad}))
    assert err.reason == reason
    assert err.message.startswith(f"{SOURCE}: {where}: "), err.message


@pytest.mark.parametrize(
    ("depth", "ok"), [(0, False), (1, True), (8, True), (9, False), (None, False)]
)
def test_a_delegable_playbook_needs_a_depth_1_to_8(depth: int | None, ok: bool) -> None:
    document = doc(delegable=True, max_depth=depth)
    if ok:
        pb = parse_playbook(document, SOURCE)
        assert (pb.delegable, pb.max_depth) == (True, depth)
    else:
        assert refused(document).reason in ("playbook.delegation", "playbook.field")


def test_delegation_defaults_to_off() -> None:
    pb = parse_playbook(doc(), SOURCE)
    assert (pb.delegable, pb.max_depth) == (False, 0)
    assert parse_playbook(doc(delegable=False, max_depth=0), SOURCE) == pb


@pytest.mark.parametrize(
    "key",
    sorted(set(FIELDS) - OPTIONAL),
)
def test_every_required_key_is_required(key: str) -> None:
    document = doc()
    del document[key]
    err = refused(document)
    assert (err.reason, err.message) == ("playbook.missing", f"{SOURCE}: {key}: is required")


def test_unknown_keys_are_refused_naming_them() -> None:
    err = refused(doc(max_call=5))
    assert err.reason == "playbook.unknown_key"
    assert err.message.startswith(f"{SOURCE}: max_call: unknown key (known: name, ")
    nested = refused(doc(openers={"spiffe_ids": ["spiffe://e.org/a"], "selector": ["a:b"]}))
    assert nested.reason == "playbook.unknown_key"
    assert nested.message.startswith(f"{SOURCE}: openers.selector: ")


def test_a_document_must_be_a_mapping() -> None:
    err = refused(["name"])
    assert (err.reason, err.message) == (
        "playbook.document",
        f"{SOURCE}: must be a mapping, not list",
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("spiffe://example.org/agents/*", None),
        ("spiffe://example.org/**", None),
        ("spiffe://example.org/agents/rep*", None),
        ("spiffe://example.org/a.b/c-d_e", None),
        ("https://example.org/agents", "spiffe_pattern.scheme"),
        ("spiffe://example.org", "spiffe_pattern.no_path"),
        ("spiffe://example.org/", "spiffe_pattern.no_path"),
        ("spiffe://*/agents", "spiffe_id.trust_domain_chars"),
        ("spiffe://Example.org/agents", "spiffe_id.uppercase_trust_domain"),
        ("spiffe://example.org:443/agents", "spiffe_id.port"),
        ("spiffe:///agents", "spiffe_id.missing_trust_domain"),
        ("spiffe://example.org/agents/", "pattern.empty_segment"),
        ("spiffe://example.org/**/x", "pattern.globstar"),
        ("spiffe://example.org/agents/a+b", "spiffe_pattern.segment"),
        ("spiffe://example.org/../agents", "spiffe_pattern.segment"),
        ("spiffe://example.org/%41*", "spiffe_pattern.segment"),
    ],
)
def test_spiffe_id_patterns(pattern: str, reason: str | None) -> None:
    document = doc(openers={"spiffe_ids": [pattern]})
    if reason is None:
        parse_spiffe_pattern(pattern)
        assert parse_playbook(document, SOURCE).openers.spiffe_ids == (pattern,)
        return
    with pytest.raises(InvalidInput) as caught:
        parse_spiffe_pattern(pattern)
    assert caught.value.reason == reason
    err = refused(document)
    assert err.reason == "playbook.pattern"
    assert err.message.startswith(f"{SOURCE}: openers.spiffe_ids[0]: ")
    assert f"({reason})" in err.message


def test_opener_selectors_are_validated() -> None:
    ok = doc(openers={"spiffe_ids": ["spiffe://e.org/a"], "selectors": ["k8s-ns:x", "k8s-ns:x"]})
    assert parse_playbook(ok, SOURCE).openers.selectors == ("k8s-ns:x",)
    empty = doc(openers={"spiffe_ids": ["spiffe://e.org/a"], "selectors": []})
    assert parse_playbook(empty, SOURCE).openers.selectors == ()
    for bad, where in [(["no-colon"], "[0]"), ("k8s-ns:x", ""), ([None], "[0]")]:
        document = doc(openers={"spiffe_ids": ["spiffe://e.org/a"], "selectors": bad})
        err = refused(document)
        assert err.reason == "playbook.field"
        assert err.message.startswith(f"{SOURCE}: openers.selectors{where}: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(1, 1), ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0s", 0)],
)
def test_duration_parsing(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "1.5h", "1H", "1 h", "1y", "-1s", None, True, 1.0])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "90s"), (900, "15m"), (7200, "2h"), (86400, "1d"), (3690, "3690s")]
)
def test_duration_formatting(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# --- canonical JSON -------------------------------------------------------------------


def test_canonical_json_round_trip() -> None:
    pb = parse_playbook(
        doc(delegable=True, max_depth=2, openers={"spiffe_ids": ["spiffe://e.org/a/**"]}),
        SOURCE,
    )
    text = playbook_to_json(pb)
    assert playbook_from_json(text) == pb
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert json.loads(text)["max_ttl"] == 900
    assert json.loads(text)["data_ceiling"] == "confidential"
    assert json.loads(text) == playbook_as_dict(pb)


def test_canonical_json_does_not_depend_on_the_order_written() -> None:
    a = parse_playbook(doc(actions=["b", "a"], resources=["y", "x"]), SOURCE)
    b = parse_playbook(
        dict(reversed(doc(actions=["a", "b", "a"], resources=["x", "y"]).items())), SOURCE
    )
    assert playbook_to_json(a) == playbook_to_json(b)


def test_canonical_json_keeps_unicode_as_is() -> None:
    pb = parse_playbook(doc(description="Rapport trimestriel — finances"), SOURCE)
    assert "—" in playbook_to_json(pb)
    assert playbook_from_json(playbook_to_json(pb)) == pb


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "playbook.syntax"),
        ('{"name": "a", "name": "b"}', "playbook.syntax"),
        ("[]", "playbook.document"),
        ('{"name": "x"}', "playbook.missing"),
    ],
)
def test_from_json_refusals(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        playbook_from_json(text, "stored")
    assert caught.value.reason == reason
    assert caught.value.message.startswith("stored: ")


# --- files ----------------------------------------------------------------------------

YAML = """\
# a comment
name: quarterly-report
description: >-
  Compile the quarterly report.
actions: [read, "http:GET"]
resources:
  - finance/reports/*
  - finance/ledger/**
destinations: [finance-api.internal]
data_ceiling: confidential
max_ttl: 15m
max_calls: 50
openers:
  spiffe_ids: ["spiffe://example.org/agents/*"]
"""

TOML = """\
name = "quarterly-report"
description = "Compile the quarterly report."
actions = ["read", "http:GET"]
resources = ["finance/reports/*", "finance/ledger/**"]
destinations = ["finance-api.internal"]
data_ceiling = "confidential"
max_ttl = "15m"
max_calls = 50

[openers]
spiffe_ids = ["spiffe://example.org/agents/*"]
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pb.yaml", YAML),
        ("pb.yml", YAML),
        ("pb.YAML", YAML),
        ("pb.toml", TOML),
        ("pb.json", json.dumps(doc())),
        ("pb.yaml", "---\n" + YAML + "...\n"),
    ],
)
def test_load_each_format(tmp_path: Path, name: str, text: str) -> None:
    assert load_playbook_file(write(tmp_path, name, text)) == parse_playbook(doc(), SOURCE)


@pytest.mark.parametrize(
    ("name", "text", "reason", "detail"),
    [
        ("pb.yaml", YAML + "---\n" + YAML, "playbook.documents", "exactly one YAML document"),
        ("pb.yaml", YAML + "---\n", "playbook.documents", "exactly one YAML document"),
        ("pb.yaml", "", "playbook.documents", "exactly one YAML document"),
        ("pb.yaml", "# only a comment\n", "playbook.documents", "exactly one YAML document"),
        ("pb.yaml", "name: [unclosed\n", "playbook.syntax", "line 2, column 1"),
        ("pb.yaml", YAML + "name: again\n", "playbook.syntax", "duplicate key 'name'"),
        ("pb.yaml", "- a\n- b\n", "playbook.document", "must hold a mapping, not list"),
        ("pb.yaml", "just text\n", "playbook.document", "must hold a mapping, not str"),
        ("pb.yaml", "!!python/object/apply:os.system [id]\n", "playbook.syntax", "constructor"),
        ("pb.toml", "name = \n", "playbook.syntax", "line 1"),
        ("pb.toml", 'name = "x"\n' + TOML, "playbook.syntax", "line 2"),
        ("pb.json", "{,}", "playbook.syntax", "line 1 column 2"),
        ("pb.json", '{"a": 1, "a": 2}', "playbook.syntax", "duplicate key 'a'"),
        ("pb.json", "null", "playbook.document", "not null"),
        ("pb.txt", YAML, "playbook.file", ".yaml, .yml, .toml or .json"),
        ("pb", YAML, "playbook.file", ".yaml, .yml, .toml or .json"),
        ("pb.yaml", b"name: \xff\n", "playbook.syntax", "not UTF-8"),
    ],
)
def test_load_refusals(
    tmp_path: Path, name: str, text: str | bytes, reason: str, detail: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(InvalidInput) as caught:
        load_playbook_file(path)
    assert caught.value.reason == reason
    assert caught.value.message.startswith(f"{path}: ")
    assert detail.lower() in caught.value.message.lower()
    assert "\n" not in caught.value.message


def test_a_field_error_in_a_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "pb.yaml", YAML.replace("max_ttl: 15m", "max_ttl: 8d"))
    with pytest.raises(InvalidInput) as caught:
        load_playbook_file(str(path))
    assert caught.value.reason == "playbook.ttl"
    assert caught.value.message == f"{path}: max_ttl: must be 1s..7d, not '8d'"


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot be read") as caught:
        load_playbook_file(tmp_path / "nope.yaml")
    assert caught.value.reason == "playbook.file"
    big = write(tmp_path, "big.yaml", YAML + "#" * MAX_FILE_BYTES)
    with pytest.raises(InvalidInput, match="larger than") as caught:
        load_playbook_file(big)
    assert caught.value.reason == "playbook.file"


def test_the_example_playbooks_are_valid() -> None:
    examples = Path(__file__).parents[2] / "examples" / "playbooks"
    report = load_playbook_file(examples / "quarterly-report.yaml")
    assert (report.name, report.data_ceiling, report.max_ttl, report.max_calls) == (
        "quarterly-report",
        Sensitivity.CONFIDENTIAL,
        900,
        50,
    )
    assert report.openers.spiffe_ids == ("spiffe://demo.zerolane.dev/agents/*",)
    deploy = load_playbook_file(examples / "ci-deploy.toml")
    assert (deploy.name, deploy.delegable, deploy.max_depth) == ("ci-deploy", False, 0)


# --- openers --------------------------------------------------------------------------


def playbook(*spiffe_ids: str, selectors: tuple[str, ...] = ()) -> Playbook:
    openers: dict[str, Any] = {"spiffe_ids": list(spiffe_ids), "selectors": list(selectors)}
    return parse_playbook(doc(openers=openers), SOURCE)


@pytest.mark.parametrize(
    ("pattern", "spiffe_id", "expected"),
    [
        ("spiffe://example.org/agents/*", "spiffe://example.org/agents/reporter", True),
        ("spiffe://example.org/agents/*", "spiffe://example.org/agents/eu/reporter", False),
        ("spiffe://example.org/agents/*", "spiffe://example.org/agents", False),
        ("spiffe://example.org/agents/**", "spiffe://example.org/agents/eu/reporter", True),
        ("spiffe://example.org/agents/**", "spiffe://example.org/agents/reporter", True),
        ("spiffe://example.org/agents/**", "spiffe://example.org/agents", False),
        ("spiffe://example.org/agents/rep*", "spiffe://example.org/agents/reporter", True),
        ("spiffe://example.org/agents/rep*", "spiffe://example.org/agents/writer", False),
        ("spiffe://example.org/agents/reporter", "spiffe://example.org/agents/reporter", True),
        ("spiffe://example.org/agents/reporter", "spiffe://example.org/agents/Reporter", False),
        ("spiffe://example.org/agents/*", "spiffe://partner.org/agents/reporter", False),
        ("spiffe://example.org/agents/*", "spiffe://example.org.evil/agents/reporter", False),
        ("spiffe://example.org/**", "spiffe://example.org", False),
        ("spiffe://example.org/agents/*", "spiffe://example.org/agents/x/", False),
        ("spiffe://example.org/agents/*", "spiffe://example.org/agents/..", False),
        ("spiffe://example.org/agents/*", "not a spiffe id", False),
        ("spiffe://example.org/**", "spiffe://example.org/" + "a/" * 600 + "b", False),
    ],
)
def test_opener_spiffe_id_matching(pattern: str, spiffe_id: str, expected: bool) -> None:
    assert opener_matches(playbook(pattern), spiffe_id, []) is expected


def test_any_one_pattern_is_enough() -> None:
    pb = playbook("spiffe://example.org/agents/*", "spiffe://partner.org/ci/*")
    assert opener_matches(pb, "spiffe://partner.org/ci/deploy", [])
    assert opener_matches(pb, "spiffe://example.org/agents/a", [])
    assert not opener_matches(pb, "spiffe://partner.org/agents/a", [])


def test_required_selectors_must_all_be_held() -> None:
    pb = playbook("spiffe://example.org/ci/*", selectors=("ci-repo:acme/app", "jwt_issuer:ci"))
    agent = "spiffe://example.org/ci/deploy"
    assert opener_matches(pb, agent, ["jwt_issuer:ci", "ci-repo:acme/app", "ci-ref:main"])
    assert not opener_matches(pb, agent, ["jwt_issuer:ci"])
    assert not opener_matches(pb, agent, [])
    assert not opener_matches(pb, agent, ["jwt_issuer:ci", "ci-repo:acme/other"])
    # the selectors never stand in for the SPIFFE ID
    assert not opener_matches(
        pb, "spiffe://example.org/agents/x", ["jwt_issuer:ci", "ci-repo:acme/app"]
    )


def test_selectors_must_be_a_sequence_of_selectors() -> None:
    with pytest.raises(TypeError):
        opener_matches(playbook("spiffe://example.org/a"), "spiffe://example.org/a", "k8s:x")


def test_playbook_is_frozen() -> None:
    pb = playbook("spiffe://example.org/a")
    with pytest.raises(AttributeError):
        pb.name = "other"  # type: ignore[misc]
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", pb.name)


def test_every_problem_is_reported_at_once() -> None:
    bad = doc(
        name="Bad Name",
        resources=[],
        data_ceiling="secretish",
        max_ttl="-5m",
        max_calls=0,
        extra_key=1,
        openers={"spiffe_ids": ["spiffe://example.org/a"], "colour": "red"},
        description=None,
    )
    with pytest.raises(InvalidInput) as refused:
        parse_playbook(bad, SOURCE)
    lines = refused.value.message.splitlines()
    assert refused.value.reason == "playbook.invalid"  # problems of several kinds
    fields = [line.split(": ")[1] for line in lines]
    assert fields == [  # in the playbook's order, unknown keys last
        "name",
        "description",
        "resources",
        "data_ceiling",
        "max_ttl",
        "max_calls",
        "openers.colour",
        "extra_key",
    ]
    assert all(line.startswith(f"{SOURCE}: ") for line in lines)
    # the twin: the valid document parses
    assert parse_playbook(doc(), SOURCE).name == "quarterly-report"
