"""The SDKs' delegation against a real control plane: a planner delegates to a sub-agent,
which uses the child with its own key; the planner's completion ends the child."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.server.conftest import AGENT
from tests.server.task_fixtures import (
    ADMIN,
    FINANCE,
    INTENT,
    OTHER_AGENT,
    READ,
    Served,
    add_test_point,
    claims_of,
    playbook,
    served,
)
from zerolane.cli.background import BackgroundServer
from zerolane.config import CONFIG_NAME, parse_config, render_config
from zerolane.sdk import Agent, AsyncAgent, ZerolaneApiError
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.types import TaskState

REPORT = f"{FINANCE}/reports/q3"
TEAM = "team-report"
SSO = "https://sso.example.org"
ONLY_READ = [{"type": "zerolane_task", "actions": ["read"], "locations": ["finance.example.org"]}]


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("sdk-delegation") / "home") as plane:
        document = playbook(name=TEAM, delegable=True, max_depth=2)
        plane.deployment.playbooks.apply(parse_playbook(document, "t"), ADMIN)
        yield plane


def test_a_planner_delegates_to_a_sub_agent(cp: Served) -> None:
    with (
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(AGENT)
        ) as planner,
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(OTHER_AGENT)
        ) as helper,
    ):
        assert helper.svid is not None
        with planner.task(playbook=TEAM, intent=INTENT, max_calls=10) as task:
            grant = task.delegate(
                delegate_svid=helper.svid.token,
                authorization_details=ONLY_READ,
                max_calls=3,
                ttl=60,
                intent="Fetch the Q3 figures",
            )
            assert claims_of(grant.token)["act"] == {"sub": OTHER_AGENT, "act": {"sub": AGENT}}
            assert grant.scope["actions"] == ["read"]
            child = helper.adopt(grant)
            assert child.decide("GET", REPORT, **READ).allowed
            # the planner holds the token too, but not the key it is bound to
            stolen = planner.adopt(grant).decide("GET", REPORT, **READ)
            assert (stolen.allowed, stolen.reasons) == (False, ("dpop.key_mismatch",))
            with pytest.raises(ZerolaneApiError) as wider:
                task.delegate(delegate_svid=helper.svid.token, max_calls=8)
            assert (wider.value.status, wider.value.reason) == (403, "delegation.budget")
        # the planner completed its task on exit: the child ended with it
        after = child.decide("GET", REPORT, **READ)
        assert (after.allowed, after.reasons) == (False, ("task.revoked",))
        stored = cp.deployment.lifecycle.get(child.task_id)
        assert (stored.state, stored.end_reason) == (TaskState.REVOKED, "parent.completed")


def test_a_sub_agent_delegates_further_and_completes_its_own_part(cp: Served) -> None:
    third = "spiffe://example.org/agents/a3"
    if cp.deployment.stores.get_workload(third) is None:
        cp.deployment.registry.register(third, selectors=[], owner=None, actor=ADMIN)
    with (
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(AGENT)
        ) as planner,
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(OTHER_AGENT)
        ) as helper,
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(third)
        ) as worker,
    ):
        assert helper.svid is not None
        assert worker.svid is not None
        with planner.task(playbook=TEAM, intent=INTENT, max_calls=10) as task:
            with helper.adopt(task.delegate(delegate_svid=helper.svid.token, max_calls=5)) as mid:
                leaf = worker.adopt(mid.delegate(delegate_svid=worker.svid.token, max_calls=2))
                assert leaf.decide("GET", REPORT, **READ).allowed
            # the helper completed its child on exit: the worker's grandchild ended too
            assert not leaf.decide("GET", REPORT, **READ).allowed
            assert task.decide("GET", REPORT, **READ).allowed  # the planner's task goes on


def test_the_async_agent_delegates_the_same_way(cp: Served) -> None:
    async def main() -> None:
        planner = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(AGENT)
        )
        helper = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(OTHER_AGENT)
        )
        async with planner, helper:
            assert helper.svid is not None
            async with planner.task(playbook=TEAM, intent=INTENT, max_calls=6) as task:
                grant = await task.delegate(
                    delegate_svid=helper.svid.token, authorization_details=ONLY_READ, max_calls=2
                )
                child = helper.adopt(grant)
                assert (await child.decide("GET", REPORT, **READ)).allowed
            refused = await child.decide("GET", REPORT, **READ)
            assert refused.reasons == ("task.revoked",)

    asyncio.run(main())


@dataclass
class Sso:
    """A control plane trusting one OpenID provider (``SSO``), and that provider's key."""

    url: str
    deployment: Deployment
    key: ec.EllipticCurvePrivateKey
    enforcement_point: str

    def id_token(self, sub: str = "alice") -> str:
        now = int(time.time())
        claims = {"iss": SSO, "sub": sub, "aud": "zl", "iat": now, "exp": now + 300}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    key = ec.generate_private_key(ec.SECP256R1())
    home = tmp_path_factory.mktemp("sdk-sso") / "home"
    first, _ = init_home(home, "example.org")
    first.close()
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    (home / "sso.json").write_text(json.dumps({"keys": [jwk]}))
    doc = tomllib.loads((home / CONFIG_NAME).read_text())
    issuer = {"name": "sso", "issuer": SSO, "audience": "zl", "jwks_file": "sso.json"}
    doc["users"] = {"issuers": [issuer]}
    (home / CONFIG_NAME).write_text(render_config(parse_config(doc)))
    deployment = Deployment.open(home)
    try:
        deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
        deployment.playbooks.apply(parse_playbook(playbook(), "t"), ADMIN)
        point = add_test_point(deployment)
        with BackgroundServer(deployment) as server:
            yield Sso(server.url, deployment, key, point)
    finally:
        deployment.close()


def test_an_agent_opens_a_task_for_a_person(sso: Sso) -> None:
    join = sso.deployment.join_tokens.create(AGENT, ttl=60, actor=ADMIN).token
    with Agent.attest(sso.url, join_token=join, enforcement_point=sso.enforcement_point) as agent:
        quarterly = str(playbook()["name"])
        with agent.open_task_for_user(
            id_token=sso.id_token(), playbook=quarterly, intent=INTENT
        ) as task:
            act = claims_of(task.token)["act"]
            assert act == {"sub": AGENT, "act": {"sub": "alice", "iss": SSO}}
            assert task.decide("GET", REPORT, **READ).allowed
        with pytest.raises(ZerolaneApiError) as refused:
            agent.open_task_for_user(id_token="not.a.jwt", playbook=quarterly, intent=INTENT)
        assert (refused.value.status, refused.value.reason) == (401, "id_token.malformed")


def test_the_async_agent_opens_a_task_for_a_person(sso: Sso) -> None:
    async def main() -> None:
        join = sso.deployment.join_tokens.create(AGENT, ttl=60, actor=ADMIN).token
        async with await AsyncAgent.attest(
            sso.url, join_token=join, enforcement_point=sso.enforcement_point
        ) as agent:
            task = await agent.open_task_for_user(
                id_token=sso.id_token("bob"), playbook=str(playbook()["name"]), intent=INTENT
            )
            async with task:
                assert (await task.decide("GET", REPORT, **READ)).allowed
            stored = sso.deployment.lifecycle.get(task.task_id)
            assert (stored.user_subject, stored.user_issuer) == ("bob", SSO)

    asyncio.run(main())
