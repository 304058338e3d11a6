"""A playbook's ``mode``: ``enforce`` by default (its canonical JSON unchanged, so stored
playbooks keep their documents), ``shadow`` kept through JSON, anything else refused."""

from __future__ import annotations

import pytest

from tests.tasks.conftest import PLAYBOOK_DOC
from zerolane.errors import InvalidInput
from zerolane.tasks.playbooks import parse_playbook, playbook_from_json, playbook_to_json
from zerolane.tasks.scope import Scope, playbook_scope, requested_scope, requested_subscope


def test_enforce_is_the_default_and_leaves_the_document_as_it_was() -> None:
    enforced = parse_playbook(PLAYBOOK_DOC, "p.yaml")
    assert enforced.mode == "enforce"
    assert "mode" not in playbook_to_json(enforced)
    said = parse_playbook({**PLAYBOOK_DOC, "mode": "enforce"}, "p.yaml")
    assert playbook_to_json(said) == playbook_to_json(enforced)


def test_shadow_is_kept_and_given_to_its_tasks_scopes() -> None:
    trial = parse_playbook({**PLAYBOOK_DOC, "mode": "shadow"}, "p.yaml")
    assert playbook_from_json(playbook_to_json(trial)).mode == "shadow"
    scope = requested_scope(None, trial)
    assert scope.shadow
    narrowed = requested_scope([{"type": "zerolane_task", "actions": ["read"]}], trial)
    assert narrowed.shadow
    child = requested_subscope([{"type": "zerolane_task"}], narrowed, "t1")
    assert child.shadow  # a delegated child inherits it
    assert Scope.from_json(scope.to_json()) == scope
    # the twin: an enforced playbook's scope is not in shadow, and says nothing of it
    plain = playbook_scope(parse_playbook(PLAYBOOK_DOC, "p.yaml"))
    assert not plain.shadow
    assert "shadow" not in plain.to_json()


@pytest.mark.parametrize("mode", ["audit", "", True, None])
def test_an_unknown_mode_is_refused(mode: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_playbook({**PLAYBOOK_DOC, "mode": mode}, "p.yaml")
    assert refused.value.reason == "playbook.mode"
    assert "p.yaml" in refused.value.message
    assert "mode" in refused.value.message
