"""The optional ``grants`` section of a playbook."""

from __future__ import annotations

import pytest

from tests.tasks.conftest import PLAYBOOK_DOC
from zerolane.errors import InvalidInput
from zerolane.grants.broker import GrantTemplate
from zerolane.tasks.playbooks import parse_playbook, playbook_from_json, playbook_to_json


def test_a_playbook_without_grants_keeps_its_canonical_json() -> None:
    playbook = parse_playbook(PLAYBOOK_DOC, "t")
    assert playbook.grants == ()
    assert "grants" not in playbook_to_json(playbook)
    assert playbook.grant("postgres") is None


def test_grants_are_validated_and_round_trip() -> None:
    doc = {
        **PLAYBOOK_DOC,
        "grants": {"postgres": {"role": "reports_reader", "connection_limit": 2}, "hmac": None},
    }
    playbook = parse_playbook(doc, "t")
    assert playbook.grant("postgres") == GrantTemplate(
        "postgres", role="reports_reader", connection_limit=2
    )
    assert playbook.grant("hmac") == GrantTemplate("hmac")
    assert playbook_from_json(playbook_to_json(playbook)) == playbook


@pytest.mark.parametrize(
    ("grants", "detail"),
    [
        (["postgres"], "grants: must be a mapping"),
        ({"ldap": {}}, "grants.ldap"),
        ({"postgres": {}}, "grants.postgres"),
        ({"postgres": {"role": "Robert'); DROP TABLE students;--"}}, "grants.postgres"),
        ({"postgres": {"role": "pg_read_server_files"}}, "reserved"),
    ],
)
def test_bad_grants_are_refused_with_the_field(grants: object, detail: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_playbook({**PLAYBOOK_DOC, "grants": grants}, "pb.yaml")
    assert caught.value.reason.startswith("playbook.")
    assert detail in caught.value.message
    assert caught.value.message.startswith("pb.yaml")
