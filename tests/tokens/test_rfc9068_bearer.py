"""Unbound task tokens of standard MCP clients that prove no key (``"bearer": true``):
issued and verified only as such; every other unbound token stays refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.tokens.test_rfc9068 import CLAIMS, World, body, verify, world
from zerolane.errors import InvalidInput
from zerolane.tokens.rfc9068 import TokenError

__all__ = ["world"]  # the fixture, shared
BEARER = replace(CLAIMS, jkt=None, bearer=True)


def test_a_bearer_token_round_trips_marked_and_without_cnf(world: World) -> None:
    token = world.issue(BEARER)
    claims = verify(world, token)
    assert claims.bearer is True
    assert (claims.jkt, claims.x5t) == (None, None)
    assert verify(world, world.issue()).bearer is False  # the bound twin


def test_issue_refuses_a_bearer_token_that_is_bound(world: World) -> None:
    with pytest.raises(InvalidInput):
        world.issue(replace(CLAIMS, bearer=True))


@pytest.mark.parametrize(
    "claims",
    [
        body(cnf=None),  # neither bound nor marked
        body(bearer=True),  # marked and bound
        body(cnf=None, bearer="true"),  # a mark that is not true
        body(cnf=None, bearer=1),
    ],
)
def test_unbound_tokens_other_than_marked_ones_are_refused(
    world: World, claims: dict[str, object]
) -> None:
    with pytest.raises(TokenError):
        verify(world, world.sign(claims))
    assert verify(world, world.sign(body(cnf=None, bearer=True))).bearer is True
